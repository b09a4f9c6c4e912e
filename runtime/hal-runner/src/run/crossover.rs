//! A sub-help's question crosses over to its caller: a run of a help called by another help that ends PENDING
//! gives its question back as the call's result (with its thread), and the calling model may answer it by calling
//! the same help with `{thread, answer}`: the sub-run goes on, on its own thread, with the answer as its next
//! message, and its ending is that call's result. Only a question a run of this thread started and left waiting
//! can be answered so; anything else is refused with the reason.

use hal_store::{StepKind, ThreadRef, ThreadStatus};

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
        let caller = ThreadRef { tip: state.tip, ..state.thread.clone() };
        let mut started = false;
        for step in home.steps_back(&caller).take(LOOK_BACK) {
            let step = step?;
            if step.kind == StepKind::Tool
                && step.fact(fact::SUBTHREAD) == Some(thread)
                && step.fact(fact::TOOL) == Some(help)
                && home.wrote_on(step.commit, &caller.branch)?
            {
                started = true;
                break;
            }
        }
        if !started {
            return Ok(Err(format!("thread {thread} is no thread a call of `{help}` on this thread started")));
        }
        let sub = match home.resolve_thread(thread) {
            Ok(sub) => sub,
            Err(error) => return Ok(Err(format!("thread {thread}: {error}"))),
        };
        let tip = home.steps_back(&sub).next().transpose()?;
        let asks = tip.as_ref().is_some_and(|tip| {
            tip.kind == StepKind::Finish
                && tip.status == Some(ThreadStatus::Pending)
                && tip.fact(fact::HELP) == Some(help)
        });
        if !asks || !home.is_tip_written(&sub.branch, sub.tip)? {
            return Ok(Err(format!("thread {thread} asks no question now: its run is not waiting for an answer")));
        }
        Ok(Ok(sub))
    }
}
