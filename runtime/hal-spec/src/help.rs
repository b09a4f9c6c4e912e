//! Helps: invocation specs for one kind of job.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::problem::SpecError;
use crate::validate::Schema;

/// The schema every help is validated against (`schemas/help.schema.json`).
pub const HELP_SCHEMA: &str = include_str!("../../../schemas/help.schema.json");

/// A validated help. The fields mirror `schemas/help.schema.json`, which documents them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Help {
    /// What the help does.
    pub description: String,
    /// Free-form data for the run.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// How to run the model.
    pub runner: Runner,
    /// What the model may call.
    pub commands: Vec<String>,
    /// Paragraphs of the system prompt.
    pub instructions: Vec<String>,
    /// The completion check.
    pub done: Option<Done>,
    /// Requests this help is for.
    pub examples: Vec<Example>,
    /// Cases for `hal help test`.
    pub tests: Vec<HelpTest>,
    /// Makes the help a router: its answer names the help to run.
    pub route: Option<Route>,
}

/// The `route` section: the loop of a router help (the goalie).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Route {
    /// The help asked what is missing when no help fits.
    pub stuck_finder: Option<String>,
    /// The help that writes a new help when the stuck-finder proposes one.
    pub author: Option<String>,
    /// Most helps tried for one request.
    pub rounds: Option<u32>,
}

impl Route {
    /// Helps tried for one request when `rounds` is not set.
    pub const DEFAULT_ROUNDS: u32 = 3;

    /// The stuck-finder's name.
    pub fn stuck_finder(&self) -> &str {
        self.stuck_finder.as_deref().unwrap_or("stuck-finder")
    }

    /// The help author's name.
    pub fn author(&self) -> &str {
        self.author.as_deref().unwrap_or("help-author")
    }

    /// Most helps tried for one request.
    pub fn rounds(&self) -> u32 {
        self.rounds.unwrap_or(Self::DEFAULT_ROUNDS)
    }
}

/// The `runner` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runner {
    /// A model named in `hal.yaml`.
    pub model: Option<String>,
    /// A task class routed to a model by `hal.yaml`.
    pub task: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Most model turns in one run.
    pub max_steps: Option<u32>,
    /// Most tokens in and out over one run.
    pub max_tokens: Option<u64>,
    /// Wall time limit of one run, in seconds.
    pub max_seconds: Option<f64>,
}

/// The `done` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Done {
    /// A regular expression the output must match.
    pub output_matches: Option<String>,
    /// Paths that must exist in the thread's tree.
    pub files: Vec<String>,
}

/// One entry of `examples`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Example {
    /// A request this help is for.
    pub request: String,
    /// What the help should make of it.
    pub outcome: Option<String>,
}

/// One entry of `tests`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HelpTest {
    /// A name for reports.
    pub name: Option<String>,
    /// The input text.
    pub input: String,
    /// The expected status.
    pub status: Option<String>,
    /// Checks on the output.
    pub output: Option<OutputCheck>,
    /// Criteria in words that an assessor (a help) judges the run by.
    pub assess: Option<Assess>,
}

/// A test case's criteria in words, judged by an assessor reading the run's output and files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Assess {
    /// What the result must be, in words.
    pub criteria: String,
    /// The help that judges (default: the built-in `assessor`).
    pub help: Option<String>,
}

/// Checks on a test's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputCheck {
    /// The exact output.
    pub equals: Option<String>,
    /// Texts the output must contain.
    pub contains: Vec<String>,
    /// A regular expression the output must match.
    pub matches: Option<String>,
}

impl Help {
    /// Parse and validate a help file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Help, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(HELP_SCHEMA)).load(file, text)
    }

    /// [`Help::parse`], and every command must be one `unknown` has nothing to say about: it answers, for a
    /// command that names no tool, group of tools or help, why (located at the command, like a schema error).
    pub fn parse_resolving(
        file: &str,
        text: &str,
        unknown: impl Fn(&str) -> Option<String>,
    ) -> Result<Help, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(HELP_SCHEMA)).load_checked(file, text, |help: &Help| {
            let commands =
                help.commands.iter().enumerate().map(|(index, command)| (format!("/commands/{index}"), command));
            // A router's stuck-finder and author are helps it runs, as its commands are.
            let route = help.route.iter().flat_map(|route| {
                [("/route/stuck_finder", route.stuck_finder()), ("/route/author", route.author())]
                    .map(|(at, name)| (at.to_owned(), name))
            });
            commands
                .map(|(at, name)| (at, name.as_str()))
                .chain(route)
                .filter_map(|(at, name)| unknown(name).map(|why| (at, why)))
                .collect()
        })
    }

    /// The system prompt: the instructions joined by newlines.
    pub fn system_prompt(&self) -> String {
        self.instructions.join("\n")
    }
}
