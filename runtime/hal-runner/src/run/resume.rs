//! What a resumed run acts on, and what it refuses: the newest reply whose calls have no result yet (only when
//! HAL wrote it and left the branch at its tip, by its local record), calls refused together in one step, and the
//! chain of starts and relays a run continues.

use std::collections::HashSet;

use gix::ObjectId;
use hal_model::{Message, Reply, ToolCall};
use hal_store::{NewStep, StepKind, ThreadRef, ThreadStatus, identity::HAL_ACTOR};

use super::{Limits, RunState, Runner, tool_message, without_nul};
use crate::conversation::{Conversation, is_persons_message};
use crate::error::RunError;
use crate::record::{ReplyData, StepData, ToolData, fact};
use crate::tools::{RunScope, ToolResult};

impl Runner {
    /// Answer every call of `calls` with the same error instead of running them, in one tool step.
    pub(super) fn refuse_all(
        &self,
        state: &mut RunState<'_>,
        conversation: &mut Conversation,
        calls: &[&ToolCall],
        reason: String,
    ) -> Result<(), RunError> {
        let Some((first, rest)) = calls.split_first() else { return Ok(()) };
        if rest.is_empty() {
            return self.refuse(state, conversation, first, reason);
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
        for call in calls {
            conversation.push(tool_message(call, ToolResult::error(text.clone())));
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
        self.refuse_all(state, conversation, &open, reason)?;
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

/// The request of the run that `thread`'s tip continues (an interrupted run resumed): the newest message of a
/// person or relayed by HAL since the last finished run, looked for among the newest steps only.
pub(super) fn interrupted_request(home: &hal_store::Home, thread: &ThreadRef) -> Result<Option<ObjectId>, RunError> {
    const LOOK_BACK: usize = 1000;
    for step in home.steps_back(thread).take(LOOK_BACK) {
        let step = step?;
        match &step.kind {
            StepKind::Finish => return Ok(None),
            _ if is_persons_message(&step) => return Ok(Some(step.commit)),
            _ => {}
        }
    }
    Ok(None)
}

/// The scope of a run on `branch` answering the message `request`: its chain of starts and relays by runs is the
/// longer of its thread's and its request's, as HAL's local record has them (never as commits claim).
pub(super) fn chain_scope(
    home: &hal_store::Home,
    limits: Limits,
    branch: &str,
    request: Option<ObjectId>,
) -> Result<RunScope, RunError> {
    let thread = home.depth_of(branch)?.unwrap_or(0);
    let request = match request {
        Some(commit) => home.depth_of(&commit.to_string())?.unwrap_or(0),
        None => 0,
    };
    let mut scope = RunScope::new(limits);
    scope.chain_depth = thread.max(request);
    Ok(scope)
}

/// A committed reply a resumed run still has to act on.
pub(super) struct PendingReply {
    pub(super) reply: Reply,
    /// Ids of its tool calls that already have a result step.
    pub(super) answered: HashSet<String>,
    /// Its commit.
    pub(super) commit: ObjectId,
    /// Whether this HAL wrote it (its local record says so): only then are its calls run and its ending taken.
    pub(super) ours: bool,
}

/// The newest reply of `thread` if the run stopped before acting on all of it: some of its tool calls have no
/// result step, or it ended the run (plain text, or a `finish` call) without a `finish` step.
pub(super) fn unanswered_reply(home: &hal_store::Home, thread: &ThreadRef) -> Result<Option<PendingReply>, RunError> {
    let mut answered = HashSet::new();
    // Whether every step between the tip and the reply is HAL's, written on this branch.
    let mut hal_between = true;
    for step in home.steps_back(thread) {
        let step = step?;
        match &step.kind {
            StepKind::Tool => {
                hal_between = hal_between && home.wrote_on(step.commit, &thread.branch)?;
                match ToolData::of(&step) {
                    Ok(Some(data)) => answered.extend(data.call_ids().map(str::to_owned)),
                    _ => answered.extend(step.fact(fact::CALL).map(str::to_owned)),
                }
            }
            // Notes written beside a run (a runtime note, a merge) do not end it.
            StepKind::System | StepKind::Merged => {
                hal_between = hal_between && home.wrote_on(step.commit, &thread.branch)?;
            }
            StepKind::Reply => {
                let reply = ReplyData::required(&step)?.reply;
                let open = reply.tool_calls.is_empty() || reply.tool_calls.iter().any(|c| !answered.contains(&c.id));
                if !open {
                    return Ok(None);
                }
                // HAL acts on a reply only when it wrote it on this branch, every step since is HAL's on this
                // branch, and it left the branch at the tip it has now: a branch rewound to an old reply of HAL's,
                // or another branch pointed at one (even with a step of HAL's written on top), replays nothing.
                let ours = home.wrote_on(step.commit, &thread.branch)?
                    && home.is_tip_written(&thread.branch, thread.tip)?
                    && hal_between;
                return Ok(Some(PendingReply { reply, answered, commit: step.commit, ours }));
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}
