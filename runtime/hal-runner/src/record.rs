//! What the runner writes into each step: trailer keys and the machine data of the `hal-data` header.

use hal_model::{Reply, ToolCall};
use hal_store::{NewStep, Step};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::RunError;

/// Trailer keys the runner adds to steps.
pub mod fact {
    /// The help being run.
    pub const HELP: &str = "Hal-Help";
    /// The agent the run works as.
    pub const AGENT: &str = "Hal-Agent";
    /// The git blob id of the help file used: the exact version.
    pub const HELP_BLOB: &str = "Hal-Help-Blob";
    /// The model's name in `hal.yaml` (or `recording` for a replay).
    pub const MODEL: &str = "Hal-Model";
    /// Prompt tokens of a model call.
    pub const TOKENS_IN: &str = "Hal-Tokens-In";
    /// Completion tokens of a model call.
    pub const TOKENS_OUT: &str = "Hal-Tokens-Out";
    /// Milliseconds a model call took, retries included.
    pub const LATENCY_MS: &str = "Hal-Latency-Ms";
    /// The tool called.
    pub const TOOL: &str = "Hal-Tool";
    /// The id the model gave the call.
    pub const CALL: &str = "Hal-Call";
    /// `ok` or `error`: how a tool call went.
    pub const OUTCOME: &str = "Hal-Outcome";
    /// The autonomy level that kept a call from running (`AL0`: proposed, not executed).
    pub const AUTONOMY: &str = "Hal-Autonomy";
    /// The thread a sub-help ran on.
    pub const SUBTHREAD: &str = "Hal-Subthread";
    /// The final status of a run (`DONE`, …).
    pub const RESULT: &str = "Hal-Result";
    /// The confidence the model gave with `finish`.
    pub const CONFIDENCE: &str = "Hal-Confidence";
    /// Model turns in the run.
    pub const TURNS: &str = "Hal-Turns";
    /// How deep in helps calling helps this run is (0 for a run started by a person).
    pub const DEPTH: &str = "Hal-Depth";
    /// On whose behalf HAL wrote a message (a message HAL relays to another thread is HAL's, not the person's).
    pub const FOR: &str = "Hal-For";
    /// How many tool calls a `tool` step answers, when more than one (calls refused together).
    pub const CALLS: &str = "Hal-Calls";
    /// Who a proposal to merge a thread is for (HAL's `threads.propose_merge`).
    pub const PROPOSED_FOR: &str = "Hal-Proposed-For";
}

/// The built-in tool that ends a run.
pub const FINISH: &str = "finish";

/// The machine data of one kind of step, in the commit's `hal-data` header: encoded ([`StepData::put`]) and decoded
/// ([`StepData::of`], [`StepData::required`]) here and nowhere else.
pub trait StepData: Serialize + DeserializeOwned {
    /// The kind of step it belongs to, for messages.
    const KIND: &'static str;

    /// The data `step` carries; `None` when it has none.
    fn of(step: &Step) -> Result<Option<Self>, RunError> {
        let Some(data) = step.data.as_deref() else { return Ok(None) };
        serde_json::from_str(data).map(Some).map_err(|e| RunError::BadRecord {
            commit: step.commit.to_string(),
            reason: format!("its hal-data is not the data of a {} step: {e}", Self::KIND),
        })
    }

    /// The data `step` must carry.
    fn required(step: &Step) -> Result<Self, RunError> {
        Self::of(step)?.ok_or_else(|| RunError::BadRecord {
            commit: step.commit.to_string(),
            reason: format!("a {} step has no hal-data", Self::KIND),
        })
    }

    /// Put it into `step`.
    fn put(&self, step: &mut NewStep) -> Result<(), RunError> {
        let data = serde_json::to_string(self).map_err(|e| RunError::BadRecord {
            commit: String::new(),
            reason: format!("cannot encode the data of a {} step: {e}", Self::KIND),
        })?;
        step.data = Some(data);
        Ok(())
    }
}

impl StepData for ReplyData {
    const KIND: &'static str = "reply";
}

impl StepData for ToolData {
    const KIND: &'static str = "tool";
}

impl StepData for FinishData {
    const KIND: &'static str = "finish";
}

/// The data of a `reply` step: what the model said, exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyData {
    /// The reply as decoded: text and tool calls with their arguments byte for byte.
    pub reply: Reply,
    /// The response body as received (the event stream), when it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Size of the request body sent.
    #[serde(default)]
    pub request_bytes: usize,
}

/// The data of a `tool` step: the call as the model made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolData {
    /// The call.
    pub call: ToolCall,
    /// Further calls of the same reply that the step answers with the same result: calls refused together
    /// (over the limit of calls per reply, or a reply HAL did not write), recorded as one step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<ToolCall>,
}

impl ToolData {
    /// The ids of every call the step answers.
    pub fn call_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.call.id.as_str()).chain(self.also.iter().map(|call| call.id.as_str()))
    }
}

/// The data of a `finish` step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FinishData {
    /// The id of the `finish` tool call, when the model ended the run with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

/// Responses larger than this are never kept in the step, whatever `limits.reply.raw_kb` says (the client keeps
/// at most that much; this ceiling also holds for models that are not HAL's client, such as a recording), so a
/// reply step stays far below the size HAL reads back (`hal_store::MAX_STEP_BYTES`). The decoded reply is always
/// kept.
pub const MAX_KEPT_RESPONSE: usize = 2 << 20;
