//! Following one thread: the steps committed on it, the text of replies as they stream, and its turns' starts
//! and ends, in order, as [`ThreadEvent`]s. The HTTP API streams them; a handle in the same process reads them
//! directly.

use std::collections::VecDeque;
use std::sync::Arc;

use gix::ObjectId;
use hal_store::{BACKCHAT, Step};
use tokio::sync::broadcast;

use crate::daemon::{Notice, Shared};
use crate::error::DaemonError;
use crate::protocol::ThreadEvent;

/// Most steps one catch-up sends; older ones are read with `hal thread log`.
const MAX_CATCH_UP: usize = 1000;

/// One subscriber's position in a thread.
pub(crate) struct Follower {
    shared: Arc<Shared>,
    notices: broadcast::Receiver<Notice>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    branch: String,
    /// The newest step sent; `None` before the thread's first (a backchat not made yet).
    last: Option<ObjectId>,
    out: VecDeque<ThreadEvent>,
}

impl Follower {
    /// Follow `thread` (id, prefix, branch, or `backchat`: the backchat of `actor`, which need not exist yet) with
    /// `notices`, subscribed before anything it should see happened. Its steps after `after` come first (default:
    /// from the current tip on); with `after`, so does the end of a turn that already ended there.
    pub(crate) fn new(
        shared: Arc<Shared>,
        notices: broadcast::Receiver<Notice>,
        actor: &str,
        thread: &str,
        after: Option<ObjectId>,
    ) -> Result<Follower, DaemonError> {
        let target = shared.journal.with(|home| -> hal_store::Result<(String, Option<ObjectId>)> {
            if thread == BACKCHAT {
                let branch = format!("threads/{}/{BACKCHAT}", home.resolve_actor(Some(actor))?);
                let tip = home.resolve_thread(&branch).ok().map(|t| t.tip);
                return Ok((branch, tip));
            }
            let found = home.resolve_thread(thread)?;
            Ok((found.branch, Some(found.tip)))
        })?;
        let (branch, tip) = target;
        let shutdown = shared.shutdown.clone();
        let ended = after.and_then(|_| (!shared.is_active(&branch)).then(|| shared.last_end(&branch)).flatten());
        let last = after.or(tip);
        let mut follower = Follower { shared, notices, shutdown, branch, last, out: VecDeque::new() };
        follower.catch_up();
        if let Some(end) = ended {
            follower.out.push_back(ThreadEvent::TurnEnded(end));
        }
        Ok(follower)
    }

    /// Queue the steps committed since the last one sent.
    fn catch_up(&mut self) {
        let (shared, branch, last) = (self.shared.clone(), self.branch.clone(), self.last);
        let read = shared.journal.with(|home| -> hal_store::Result<Option<(ObjectId, Vec<Step>)>> {
            // A backchat that is not made yet has no steps.
            let Ok(thread) = home.resolve_thread(&branch) else { return Ok(None) };
            let mut steps = Vec::new();
            for step in home.steps_back(&thread).take(MAX_CATCH_UP) {
                let step = step?;
                if Some(step.commit) == last {
                    break;
                }
                steps.push(step);
            }
            Ok(Some((thread.tip, steps)))
        });
        match read {
            Ok(Some((tip, steps))) => {
                self.last = Some(tip);
                for mut step in steps.into_iter().rev() {
                    step.data = None;
                    self.out.push_back(ThreadEvent::Step { step });
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(target: "hal_daemon", %branch, %error, "cannot read new steps"),
        }
    }

    /// The next event; `None` when the engine stops.
    pub(crate) async fn next(&mut self) -> Option<ThreadEvent> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Some(event);
            }
            if *self.shutdown.borrow() {
                return None;
            }
            let notice = tokio::select! {
                notice = self.notices.recv() => notice,
                _ = self.shutdown.changed() => return None,
            };
            match notice {
                Ok(Notice::Text { branch, delta }) if branch == self.branch => {
                    self.out.push_back(ThreadEvent::Text { delta });
                }
                Ok(Notice::Tip { branch, .. }) if branch == self.branch => self.catch_up(),
                Ok(Notice::TurnStarted { branch, help, tickets }) if branch == self.branch => {
                    self.out.push_back(ThreadEvent::TurnStarted { help, tickets });
                }
                Ok(Notice::TurnEnded { branch, end }) if branch == self.branch => {
                    self.catch_up();
                    self.out.push_back(ThreadEvent::TurnEnded(end));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Notices were lost; the commits were not. A turn end that may be among the lost is sent again.
                    tracing::warn!(target: "hal_daemon", branch = %self.branch, missed, "an event stream fell behind");
                    self.catch_up();
                    if !self.shared.is_active(&self.branch)
                        && let Some(end) = self.shared.last_end(&self.branch)
                    {
                        self.out.push_back(ThreadEvent::TurnEnded(end));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
