//! What a client is shown of the repo as the engine that answers has it in force: the catalogue (helps, agents,
//! models, isolates, problems, who needs which secret), the status of turns and threads, an isolate called by
//! hand, a replay. Built by the engine from what it loaded (`crate::answer`), never by a client.

use std::collections::BTreeMap;

use gix::ObjectId;
use hal_spec::{Capabilities, TreeAccess};
use hal_store::ThreadSummary;
use serde::{Deserialize, Serialize};

use super::{DaemonInfo, optional_id};

/// What `main` offers, as loaded by the engine that answers (the daemon's version in force, when one runs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Catalogue {
    /// The commit of `main` it was loaded from (none when `main` has no commit).
    pub main: Option<String>,
    /// Helps in force, by name.
    pub helps: Vec<String>,
    /// Agents in force, by name.
    pub agents: Vec<String>,
    /// The models of `hal.yaml`.
    pub models: Vec<ModelReport>,
    /// Task classes routed to model names.
    pub tasks: BTreeMap<String, String>,
    /// Every isolate and plugin, loaded or not.
    pub isolates: Vec<IsolateReport>,
    /// The tools a help's commands may name (`files.read`, `threads.start`; a group such as `files` selects
    /// every `files.*`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Files on `main` that do not load (or changed when they may not).
    pub problems: Vec<Problem>,
    /// What loads but is likely a mistake (a grant in `hal.yaml` for an isolate that does not exist).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Each secret something here needs, with who needs it.
    pub secrets: Vec<SecretNeed>,
}

/// A model of `hal.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelReport {
    /// Its name in `hal.yaml`.
    pub name: String,
    /// `openai` or `anthropic`.
    pub provider: String,
    /// The model id sent to the server.
    pub model: String,
    /// Where it is served.
    pub base_url: Option<String>,
    /// The secret holding its API key, when it needs one.
    pub key: Option<KeyReport>,
}

/// A model's API key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyReport {
    /// The secret's name.
    pub secret: String,
    /// Whether the engine that answers finds a value for it.
    pub set: bool,
}

/// An isolate (or plugin version) of the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IsolateReport {
    /// Its name (`files`, `notes`, `notes@v1`).
    pub name: String,
    /// `built-in`, `main:isolates/<name>` or `main:plugins/<name>/v<N>`.
    pub source: String,
    /// What it offers, when it loaded.
    pub loaded: Option<IsolateDetails>,
    /// Why it did not load.
    pub error: Option<String>,
    /// It is source the answering engine has not built yet (`error` says how it gets built); a read-only
    /// command never builds.
    #[serde(default)]
    pub not_built: bool,
}

/// What a loaded isolate offers and may do.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IsolateDetails {
    /// Its manifest's version.
    pub version: u32,
    /// What it does.
    pub description: String,
    /// Its functions, as a model sees them.
    pub functions: Vec<FunctionReport>,
    /// What it is granted: the manifest's asks that `hal.yaml` allows.
    pub granted: Granted,
    /// What its manifest asks for.
    #[schema(value_type = Object)]
    pub asked: Capabilities,
    /// The limits of each call.
    pub limits: CallLimits,
}

/// A function of an isolate.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunctionReport {
    /// `<isolate>.<function>`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its arguments.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
}

/// What an isolate may do.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Granted {
    /// Access to the thread's tree.
    #[schema(value_type = String, example = "write")]
    pub tree: TreeAccess,
    /// Hosts it may fetch from.
    pub http: Vec<String>,
    /// Secrets it may read.
    pub secrets: Vec<String>,
}

/// The limits of one isolate call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallLimits {
    /// Wall time, in milliseconds.
    pub wall_ms: u64,
    /// Units of work.
    pub fuel: u64,
    /// Memory, in MiB.
    pub memory_mb: u64,
    /// Largest result, in KiB.
    pub output_kb: u64,
}

/// A file on `main` that does not load, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// What kind of file it is.
    #[serde(default)]
    pub kind: FileKind,
    /// Its path on `main` (`helps/x.yaml`, `hal.yaml`, `isolates/x`, `plugins/x/v1/`).
    pub file: String,
    /// The error, with line and field where known.
    pub error: String,
    /// Whether an earlier valid version is in force meanwhile.
    pub previous_in_force: bool,
}

/// The kinds of file on `main` that HAL loads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// `helps/<name>.yaml`.
    Help,
    /// `agents/<name>.yaml`.
    Agent,
    /// `hal.yaml`.
    Settings,
    /// `isolates/<name>/`.
    Isolate,
    /// `plugins/<name>/v<N>/`.
    Plugin,
    /// Anything else.
    #[default]
    Other,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Help => "help",
            FileKind::Agent => "agent",
            FileKind::Settings => "settings",
            FileKind::Isolate => "isolate",
            FileKind::Plugin => "plugin",
            FileKind::Other => "file",
        })
    }
}

/// A secret something in the repo needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretNeed {
    /// The secret's name.
    pub name: String,
    /// Who needs it (`model default`, `isolate probe (granted)`, `isolate probe (asks)`).
    pub needed_by: Vec<String>,
}

/// The engine's state as `hal status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusReport {
    /// The daemon that answered; none when the answer was made in the asking process (no daemon runs).
    pub daemon: Option<DaemonInfo>,
    /// What `main` offers, as loaded by the engine that answered.
    pub catalogue: Catalogue,
    /// Branches with a turn in progress.
    pub running: Vec<String>,
    /// Threads waiting for a person (`pending`); their tip's text is the question.
    pub waiting: Vec<AtTip>,
    /// Threads whose tip says `running`: a turn in progress, or one that was cut off.
    pub interrupted: Vec<AtTip>,
    /// Whether an owner halted HAL in this repo.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub halt: hal_trust::halt::Halt,
}

/// A thread and the text of its tip step.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AtTip {
    /// The thread.
    #[schema(value_type = Object)]
    pub thread: ThreadSummary,
    /// Its tip step's text (at most 2,000 characters); `question` in versions before it was named so.
    #[serde(alias = "question")]
    pub text: String,
}

/// How an isolate called by hand went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Called {
    /// It answered.
    Ok {
        /// The result text.
        result: String,
        /// Log lines it wrote.
        logs: Vec<String>,
        /// The step holding its writes, when it was called on a thread and wrote something.
        #[serde(default, with = "optional_id", skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        commit: Option<ObjectId>,
    },
    /// It failed: its error, a trap, or the sandbox could not make the call.
    Failed {
        /// Why.
        error: String,
    },
}

/// A stuck request, as a router recorded it on a thread (see [`hal_runner::stuck`]).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StuckEntry {
    /// The thread whose tree holds it (empty for `main`).
    pub thread: String,
    /// Its branch.
    pub branch: String,
    /// The file.
    pub path: String,
    /// When the branch's tip was committed (Unix seconds).
    pub time: i64,
    /// The record; absent when the file is not one.
    #[schema(value_type = Option<Object>)]
    pub stuck: Option<hal_runner::stuck::Stuck>,
    /// Why the file is not a stuck record, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Whether a step HAL wrote on this thread recorded it (else it is a file someone put there, or a copy in a
    /// thread started from the one that recorded it, or on main).
    pub verified: bool,
}
