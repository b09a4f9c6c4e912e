//! What a resumed run refuses (the plan, [`crate::plan::Turn`], says what it acts on): calls refused together in
//! one step, a reply HAL did not write, and the chain of starts and relays a run continues.

use gix::ObjectId;
use hal_model::{Message, ToolCall};
use hal_store::{NewStep, StepKind, ThreadStatus, identity::HAL_ACTOR};

use super::{RunLimits, RunState, Runner, tool_message, without_nul};
use crate::conversation::Conversation;
use crate::error::RunError;
use crate::plan::PendingReply;
use crate::record::{StepData, ToolData, fact};
use crate::tools::{RunScope, ToolResult};

impl Runner {
    /// Answer every call of `calls` with the same error instead of running them, in one tool step, and in
    /// `conversation` when the model sees those calls.
    pub(super) fn refuse_all(
        &self,
        state: &mut RunState<'_>,
        conversation: Option<&mut Conversation>,
        calls: &[&ToolCall],
        reason: String,
    ) -> Result<(), RunError> {
        let Some((first, rest)) = calls.split_first() else { return Ok(()) };
        if rest.is_empty() {
            let result = self.record_tool(state, first, ToolResult::error(reason), None)?;
            if let Some(conversation) = conversation {
                conversation.push(tool_message(first, result));
            }
            return Ok(());
        }
        let text = without_nul(reason);
        let step = NewStep::new(StepKind::Tool, text.clone(), ThreadStatus::Running)
            .fact(fact::HELP, &state.prepared.entry.name)
            .fact(fact::TOOL, &first.name)
            .fact(fact::CALL, &first.id)
            .fact(fact::CALLS, calls.len())
            .fact(fact::OUTCOME, "error");
        // The further calls are kept by id and name only: their answer is the same, and a flood of refused calls
        // must not double the bytes of the reply that made them.
        let also = rest.iter().map(|call| ToolCall { arguments: String::new(), ..(*call).clone() }).collect();
        let data = ToolData { call: (*first).clone(), also };
        let mut step = step;
        data.put(&mut step)?;
        self.append(state, HAL_ACTOR, &step)?;
        if let Some(conversation) = conversation {
            for call in calls {
                conversation.push(tool_message(call, ToolResult::error(text.clone())));
            }
        }
        Ok(())
    }

    /// Act on none of a committed reply this HAL did not write (it arrived by push or fetch, whatever it claims):
    /// its calls are answered as not run, a system step says why, and the model is asked again.
    pub(super) fn distrust(
        &self,
        state: &mut RunState<'_>,
        conversation: &mut Conversation,
        pending: &PendingReply,
    ) -> Result<(), RunError> {
        let open: Vec<&ToolCall> =
            pending.reply.tool_calls.iter().filter(|call| !pending.answered.contains(&call.id)).collect();
        let reason = "not run: HAL did not write the reply that asks for this call".to_owned();
        // Recorded, so the reply counts as answered; the model never sees the reply (the conversation leaves it
        // out), so nor its calls' results.
        self.refuse_all(state, None, &open, reason)?;
        let note = format!(
            "The reply {} was not written by this HAL, or the branch was moved since HAL last wrote to it (HAL's \
             local record of the steps it wrote, .git/hal/record, says so), so none of its tool calls ran and its \
             ending does not count; the model is asked again.",
            pending.commit
        );
        tracing::warn!(target: "hal_runner", thread = %state.thread.branch, commit = %pending.commit,
            "a reply HAL did not write was not acted on");
        let step =
            NewStep::new(StepKind::System, &note, ThreadStatus::Running).fact(fact::HELP, &state.prepared.entry.name);
        self.append(state, HAL_ACTOR, &step)?;
        conversation.push(Message::User { text: format!("[a note from the HAL runtime] {note}") });
        Ok(())
    }

    /// Answer `call` with an error instead of running it: recorded as its tool step and added to the conversation.
    pub(super) fn refuse(
        &self,
        state: &mut RunState<'_>,
        conversation: &mut Conversation,
        call: &ToolCall,
        reason: String,
    ) -> Result<(), RunError> {
        let result = self.record_tool(state, call, ToolResult::error(reason), None)?;
        conversation.push(tool_message(call, result));
        Ok(())
    }
}

/// How far back from the message a run answers the messages it also answers are looked for.
const REQUESTS_LOOK_BACK: usize = 1_000;

/// The scope of a run on `branch` answering the message `request`: its chain of starts and relays by runs is the
/// longest of its thread's and those of the messages it answers (`request`, and the messages since the last run
/// that ended other than PENDING: several can arrive between turns, and an answer to a question goes on with the
/// conversation that asked it), and the helps whose rules hold for it are all those recorded for them, as HAL's
/// local record has them (never as commits claim).
pub(super) fn chain_scope(
    home: &hal_store::Home,
    limits: RunLimits,
    branch: &str,
    request: Option<ObjectId>,
) -> Result<RunScope, RunError> {
    let mut keys = vec![branch.to_owned()];
    if let Some(request) = request {
        keys.push(request.to_string());
    }
    if let Some(request) = request
        && let Ok(thread) = home.resolve_thread(branch)
    {
        let from = hal_store::ThreadRef { tip: request, ..thread };
        for step in home.steps_back(&from).skip(1).take(REQUESTS_LOOK_BACK) {
            let Ok(step) = step else { break };
            if step.kind == StepKind::Finish && step.status != Some(ThreadStatus::Pending) {
                break;
            }
            if crate::conversation::is_persons_message(&step) {
                keys.push(step.commit.to_string());
            }
        }
    }
    let mut scope = RunScope::new(limits);
    (scope.chain_depth, scope.callers) = home.chain_of(keys.iter().map(String::as_str))?;
    Ok(scope)
}
