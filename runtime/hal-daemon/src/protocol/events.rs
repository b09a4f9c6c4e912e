//! What a client hears back besides a command's response: how a turn ended, the events of a followed thread, and
//! what a running daemon publishes about itself.

use gix::ObjectId;
use hal_model::Usage;
use serde::{Deserialize, Serialize};

use hal_store::Step;

use super::Status;

/// How a turn ended: the run's status and output, where it ended, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnEnd {
    /// How the run ended.
    #[schema(value_type = String, example = "DONE")]
    pub status: Status,
    /// The result, the question (`PENDING`) or the reason (`ERROR`, `NOCANDO`).
    pub output: String,
    /// The thread's id.
    pub thread: String,
    /// The commit of the run's `finish` step; none when the turn could not run.
    #[serde(default, with = "optional_id", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub commit: Option<ObjectId>,
    /// Model turns taken.
    #[serde(default)]
    pub turns: u32,
    /// Tokens used by the run's own model turns.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub usage: Usage,
    /// The confidence the model gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The tickets of the messages it answered (see [`Response::Said`]).
    #[serde(default)]
    pub tickets: Vec<u64>,
    /// What a `PENDING` run waits for, when it is not an answer to its question (an owner's approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub waiting: Option<hal_runner::Waiting>,
}

impl TurnEnd {
    /// A turn on `thread` that ended with `status` without a run behind it (it could not start, or was cut off).
    pub fn without_run(status: Status, thread: &str, output: impl Into<String>) -> TurnEnd {
        TurnEnd {
            status,
            output: output.into(),
            thread: thread.to_owned(),
            commit: None,
            turns: 0,
            usage: Usage::default(),
            confidence: None,
            tickets: Vec::new(),
            waiting: None,
        }
    }

    /// The end of `outcome`'s run.
    pub fn of_run(outcome: hal_runner::Outcome) -> TurnEnd {
        TurnEnd {
            status: outcome.status,
            output: outcome.output,
            thread: outcome.thread,
            commit: Some(outcome.commit),
            turns: outcome.turns,
            usage: outcome.usage,
            confidence: outcome.confidence,
            tickets: Vec::new(),
            waiting: outcome.waiting,
        }
    }
}

/// What following a thread yields, one JSON object per event on the HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ThreadEvent {
    /// A new step (its machine data left out).
    Step {
        /// The step.
        #[schema(value_type = Object)]
        step: Step,
    },
    /// Text of a model reply streaming in.
    Text {
        /// The new text.
        delta: String,
    },
    /// A step of a help this thread's run called, on its own sub-thread: the run's progress while it waits.
    Progress {
        /// The sub-thread.
        thread: String,
        /// The step's kind.
        kind: String,
        /// One line about it.
        summary: String,
    },
    /// A turn started.
    TurnStarted {
        /// The help it runs.
        help: String,
        /// The tickets of the messages it answers (see [`Response::Said`]).
        #[serde(default)]
        tickets: Vec<u64>,
    },
    /// A turn ended.
    TurnEnded(TurnEnd),
}

impl ThreadEvent {
    /// Its name, as its `event` field has it (and the `event:` line of the API's server-sent events).
    pub fn name(&self) -> &'static str {
        match self {
            ThreadEvent::Step { .. } => "step",
            ThreadEvent::Text { .. } => "text",
            ThreadEvent::Progress { .. } => "progress",
            ThreadEvent::TurnStarted { .. } => "turn-started",
            ThreadEvent::TurnEnded(_) => "turn-ended",
        }
    }
}

/// What a running daemon publishes about itself (in `.git/hal/daemon.json`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DaemonInfo {
    /// Its process id.
    pub pid: u32,
    /// `127.0.0.1:<port>` of its HTTP API.
    pub address: String,
    /// When it started, seconds since the Unix epoch.
    pub started: u64,
    /// HAL's version.
    pub version: String,
}

/// An optional commit id as its hex text.
pub(crate) mod optional_id {
    use gix::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(id: &Option<ObjectId>, serializer: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => serializer.serialize_str(&id.to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ObjectId>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(hex) => ObjectId::from_hex(hex.as_bytes()).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
