//! A sub-help's question crosses over to its caller: a run of a help called by another help that ends PENDING
//! gives its question back as the call's result (with its thread), and the calling model may answer it by calling
//! the same help with `{thread, answer}`: the sub-run goes on, on its own thread, with the answer as its next
//! message, and its ending is that call's result. Only a question a run of this thread started and left waiting
//! can be answered so; anything else is refused with the reason.

use hal_store::{StepKind, ThreadRef};

use super::{RunState, Runner};
use crate::error::RunError;
use crate::record::fact;

/// How far back the caller's thread is read for the sub-threads its runs started.
const LOOK_BACK: usize = 2_000;

impl Runner {
    /// The sub-thread `thread` when a run on this thread started it with help `help` and its run waits with a
    /// question; else why it cannot be answered.
    pub(super) fn asking_thread(
        &self,
        state: &RunState<'_>,
        help: &str,
        thread: &str,
    ) -> Result<Result<ThreadRef, String>, RunError> {
        // Read on a handle of its own: a long thread never holds the store's lock.
        let home = self.journal.handle();
        let refused = |why: &str| Ok(Err(format!("thread {thread} {why}")));
        if thread.is_empty() || !thread.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return refused("is no thread id");
        }
        // The newest call of this help that ran on it, among the steps the calling model saw (before the reply
        // whose call this is): its question is the one the model was given.
        let seen = ThreadRef { tip: state.reply, ..state.thread.clone() };
        let mut asked = None;
        for step in home.steps_back(&seen).take(LOOK_BACK) {
            let step = step?;
            if step.kind == StepKind::Tool
                && step.fact(fact::SUBTHREAD) == Some(thread)
                && step.fact(fact::TOOL) == Some(help)
                && home.wrote_on(step.commit, &seen.branch)?
            {
                asked = Some(step.fact(fact::SUBTHREAD_ASKS).map(str::to_owned));
                break;
            }
        }
        let Some(asked) = asked else {
            return refused(&format!("is no thread a call of `{help}` on this thread started"));
        };
        let Some(asks) = asked.and_then(|commit| gix::ObjectId::from_hex(commit.as_bytes()).ok()) else {
            return refused("asked no question in the result you were given");
        };
        // The sub-thread is this actor's, as the call started it (never another branch with the same id).
        let sub = match home.resolve_thread(&format!("threads/{}/{thread}", state.actor)) {
            Ok(sub) => sub,
            Err(error) => return Ok(Err(format!("thread {thread}: {error}"))),
        };
        // Still at that question, as HAL left it: answered since (by a person, or by another call), it is not
        // this answer's to take.
        if sub.tip != asks || !home.is_tip_written(&sub.branch, sub.tip)? {
            return refused("no longer waits on the question you were given (it was answered, or it moved on)");
        }
        Ok(Ok(sub))
    }
}
