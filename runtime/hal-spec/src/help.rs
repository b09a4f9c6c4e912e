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
            help.commands
                .iter()
                .enumerate()
                .filter_map(|(index, command)| unknown(command).map(|why| (format!("/commands/{index}"), why)))
                .collect()
        })
    }

    /// The system prompt: the instructions joined by newlines.
    pub fn system_prompt(&self) -> String {
        self.instructions.join("\n")
    }
}
