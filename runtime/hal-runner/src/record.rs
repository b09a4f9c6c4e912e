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
    /// The step of a sub-help's run that asks the question its caller was given (it ended PENDING there).
    pub const SUBTHREAD_ASKS: &str = "Hal-Subthread-Asks";
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
    /// An owner's answer to an approval request: `approve` or `deny`.
    pub const DECISION: &str = "Hal-Decision";
    /// How far an approval reaches: `once` or `thread`.
    pub const SCOPE: &str = "Hal-Scope";
    /// The owner who answered an approval request.
    pub const DECIDED_BY: &str = "Hal-Decided-By";
    /// Which pick of a router's loop a step ends (1, 2, …).
    pub const ROUND: &str = "Hal-Round";
    /// The help a router ran for the request (on the thread named by `Hal-Subthread`).
    pub const ROUTED: &str = "Hal-Routed";
    /// The thread a router's stuck-finder ran on.
    pub const STUCK_FINDER: &str = "Hal-Stuck-Finder";
    /// The file a router recorded a stuck request in.
    pub const STUCK: &str = "Hal-Stuck";
    /// The thread a router's author wrote a proposed help on.
    pub const AUTHORED: &str = "Hal-Authored";
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

impl StepData for ApprovalData {
    const KIND: &'static str = "approval";
}

impl StepData for DecisionData {
    const KIND: &'static str = "decision";
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

/// The data of an `approval` step: what a run waits to have approved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "asks", rename_all = "kebab-case")]
pub enum ApprovalData {
    /// One tool call (autonomy level AL1).
    Call(CallRequest),
    /// More of a budget the run reached.
    Budget(BudgetRequest),
}

/// A tool call a run waits to have approved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    /// The call, as the model made it.
    pub call: ToolCall,
    /// The reply that makes it.
    pub reply: String,
    /// Its index among the reply's tool calls.
    pub index: u32,
    /// The SHA-256 (hex) of its arguments.
    pub args_sha256: String,
    /// The help whose run makes it.
    pub help: String,
    /// The call's other names the owners' policy may use (the plugin version it runs, `wc@v2.count`): where an
    /// owner's `--scope always` change goes when a rule named that version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The helps whose own rules hold for the run too (it was started or messaged by their runs): the level an
    /// owner's `--scope always` change must leave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<String>,
}

/// A budget a run reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetRequest {
    /// Which budget (`thread`, `help-per-day writer`, `actor-per-day alice`).
    pub budget: String,
    /// `tokens` or `usd`.
    pub unit: String,
    /// What was spent, in the unit.
    pub spent: f64,
    /// The budget with what owners granted so far, in the unit.
    pub limit: f64,
}

impl ApprovalData {
    /// What an owner's answer to the request at `request` on `thread` is signed over; `amount` is what a budget's
    /// answer grants (tokens, or US cents).
    pub fn asked(&self, thread: &str, request: &str, amount: u64) -> hal_trust::approval::Asked {
        let subject = match self {
            ApprovalData::Call(call) => hal_trust::approval::Subject::Call {
                index: call.index,
                tool: call.call.name.clone(),
                args_sha256: call.args_sha256.clone(),
                help: call.help.clone(),
            },
            ApprovalData::Budget(budget) => hal_trust::approval::Subject::Budget {
                budget: budget.budget.clone(),
                unit: budget.unit.clone(),
                amount,
            },
        };
        hal_trust::approval::Asked { thread: thread.to_owned(), request: request.to_owned(), subject }
    }

    /// One line about what is asked.
    pub fn summary(&self) -> String {
        match self {
            ApprovalData::Call(call) => format!("call {} ({})", call.index, call.call.name),
            ApprovalData::Budget(budget) => {
                let show = |amount: f64| crate::ledger::show(amount, &budget.unit);
                format!("the budget {} ({} spent of {})", budget.budget, show(budget.spent), show(budget.limit))
            }
        }
    }
}

/// The data of a `decision` step: an owner's answer to an approval request, with their signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionData {
    /// What was asked (the request's commit among it).
    pub asked: hal_trust::approval::Asked,
    /// Whether the call may run.
    pub approve: bool,
    /// How far the approval reaches.
    pub scope: hal_trust::approval::Scope,
    /// Why it was denied (empty for an approval).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The owner who answered.
    pub by: String,
    /// Their signature of the statement (`hal_trust::approval::approval_statement`); none before `hal.yaml` names
    /// owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl DecisionData {
    /// Why this answer does not count now (`keyring` holds the owners in force), if it does not: it must be an
    /// owner's signed answer once `hal.yaml` names owners.
    pub fn problem(&self, keyring: &hal_trust::Keyring) -> Option<String> {
        if keyring.owners.is_empty() && keyring.rewritten.is_none() {
            return None;
        }
        let Some(signature) = &self.signature else {
            return Some(format!("the answer of {} is not signed, and hal.yaml names owners", self.by));
        };
        let (approve, scope, reason) = (self.approve, self.scope, &self.reason);
        hal_trust::approval::check_approval(keyring, &self.by, &self.asked, approve, scope, reason, signature).err()
    }
}

/// Responses larger than this are never kept in the step, whatever `limits.reply.raw_kb` says (the client keeps
/// at most that much; this ceiling also holds for models that are not HAL's client, such as a recording), so a
/// reply step stays far below the size HAL reads back (`hal_store::MAX_STEP_BYTES`). The decoded reply is always
/// kept.
pub const MAX_KEPT_RESPONSE: usize = 2 << 20;
