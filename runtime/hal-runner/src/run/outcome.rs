//! What a run is given and gives back: its limits, how it ended (and what a `PENDING` run waits for), and the
//! events it reports while it goes.

use std::sync::Arc;

use gix::ObjectId;
use hal_model::Usage;
use hal_spec::Help;
use hal_store::StepKind;

use crate::status::Status;

/// Limits of one run when neither the help nor `hal.yaml` sets them.
pub const DEFAULT_LIMITS: RunLimits =
    RunLimits { max_steps: 30, max_tokens: 200_000, max_seconds: 600.0, max_depth: 4, max_starts: 8 };

/// How far one run may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunLimits {
    /// Model turns.
    pub max_steps: u32,
    /// Tokens in and out.
    pub max_tokens: u64,
    /// Wall time in seconds.
    pub max_seconds: f64,
    /// Depth of helps calling helps, and length of a chain of threads started by runs.
    pub max_depth: u32,
    /// Threads one run may start.
    pub max_starts: u32,
}

impl RunLimits {
    /// The help's limits, else `hal.yaml`'s, else the defaults.
    pub fn for_help(help: &Help, settings: &hal_spec::LimitSettings) -> RunLimits {
        RunLimits {
            max_steps: help.runner.max_steps.or(settings.max_steps).unwrap_or(DEFAULT_LIMITS.max_steps),
            max_tokens: help.runner.max_tokens.or(settings.max_tokens).unwrap_or(DEFAULT_LIMITS.max_tokens),
            max_seconds: help.runner.max_seconds.or(settings.max_seconds).unwrap_or(DEFAULT_LIMITS.max_seconds),
            max_depth: settings.max_depth.unwrap_or(DEFAULT_LIMITS.max_depth),
            max_starts: settings.max_starts.unwrap_or(DEFAULT_LIMITS.max_starts),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Its status.
    pub status: Status,
    /// The result, the question (`PENDING`) or the reason (`ERROR`, `NOCANDO`).
    pub output: String,
    /// The thread it ran on.
    pub thread: String,
    /// The commit of its `finish` step.
    #[serde(serialize_with = "hal_store::serialize_id")]
    pub commit: ObjectId,
    /// Model turns taken.
    pub turns: u32,
    /// Tokens used by its own model turns.
    pub usage: Usage,
    /// The confidence the model gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// What a `PENDING` run waits for, when it is not an answer to its question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// For a router's run: the help it ran for the request and its thread, whose ending this is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routed: Option<Routed>,
}

/// The help a router ran for a request, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Routed {
    /// The help.
    pub help: String,
    /// The thread it ran on (its work, its files, are there).
    pub thread: String,
}

/// What a `PENDING` run waits for besides a person's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "for", rename_all = "kebab-case")]
pub enum Waiting {
    /// An owner's approval of one tool call (`hal approve`, `hal deny`).
    Approval {
        /// The tool.
        tool: String,
        /// The call's index in its reply.
        call: u32,
    },
    /// Its turn under a rate limit (`rate_limits` in `hal.yaml`): a person's answer after `until` goes on.
    RateLimit {
        /// The tool it would call.
        tool: String,
        /// When the call may be made, in seconds since the Unix epoch.
        until: i64,
    },
    /// More of a budget the run reached (`hal approve --amount`).
    Budget {
        /// Which (`thread`, `help-per-day <help>`, `actor-per-day <actor>`).
        budget: String,
        /// `tokens` or `usd`.
        unit: String,
        /// What was spent.
        spent: f64,
        /// The budget, with what owners granted.
        limit: f64,
    },
}

/// What a run reports while it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Text of a model reply as it streams in.
    Text {
        /// The thread's id.
        thread: &'a str,
        /// Its branch.
        branch: &'a str,
        /// The new text.
        delta: &'a str,
    },
    /// A step was committed.
    Step {
        /// The thread's id.
        thread: &'a str,
        /// Its branch.
        branch: &'a str,
        /// Its kind.
        kind: &'a StepKind,
        /// One line about it.
        summary: &'a str,
        /// How deep in sub-helps.
        depth: u32,
        /// Its `Hal-*` facts (help, model, tokens, latency, tool, outcome…).
        facts: &'a [(String, String)],
        /// For a step of a help run by another help: the branch of the run the person asked for, whose followers
        /// see it as that run's progress.
        caller: Option<&'a str>,
    },
    /// A tool (an isolate's `log.progress`) said how far a long call is.
    Progress {
        /// The thread the call runs on.
        thread: &'a str,
        /// Its branch.
        branch: &'a str,
        /// The branch of the run the person asked for, whose followers see it (this branch, for a call of that
        /// run itself).
        caller: &'a str,
        /// The tool.
        tool: &'a str,
        /// How much is done.
        done: u64,
        /// Of how much (0 when unknown).
        total: u64,
        /// What it says (scrubbed of secrets by the sandbox).
        message: &'a str,
    },
}

/// Receives [`Event`]s.
pub type Observer = Arc<dyn Fn(&Event<'_>) + Send + Sync>;
