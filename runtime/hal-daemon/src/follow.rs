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
    /// from the current tip on); with `after`, so do the ends of the last few turns there.
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
        // With `after`, the client may have started the turn before it subscribed: the ends it may have missed.
        let ended = if after.is_some() { shared.recent_ends(&branch) } else { Vec::new() };
        let last = after.or(tip);
        let mut follower = Follower { shared, notices, shutdown, branch, last, out: VecDeque::new() };
        follower.catch_up_blocking();
        follower.out.extend(ended.into_iter().map(ThreadEvent::TurnEnded));
        Ok(follower)
    }

    /// Queue the steps committed since the last one sent. The store's lock is taken on a blocking thread, never
    /// on an async worker (a writer can hold it through a compare-and-swap retry).
    async fn catch_up(&mut self) {
        let (shared, branch, last) = (self.shared.clone(), self.branch.clone(), self.last);
        match tokio::task::spawn_blocking(move || read_after(&shared, &branch, last)).await {
            Ok(read) => self.queue(read),
            Err(error) => tracing::warn!(target: "hal_daemon", branch = %self.branch, %error, "cannot read new steps"),
        }
    }

    /// [`Follower::catch_up`] on the calling thread, which may block (one that is not an async worker).
    fn catch_up_blocking(&mut self) {
        let read = read_after(&self.shared, &self.branch, self.last);
        self.queue(read);
    }

    fn queue(&mut self, read: hal_store::Result<Option<(ObjectId, Vec<Step>)>>) {
        let branch = &self.branch;
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
                Ok(Notice::Tip { branch, .. }) if branch == self.branch => self.catch_up().await,
                Ok(Notice::Progress { branch, thread, kind, summary }) if branch == self.branch => {
                    self.out.push_back(ThreadEvent::Progress { thread, kind, summary });
                }
                Ok(Notice::TurnStarted { branch, help, tickets }) if branch == self.branch => {
                    self.out.push_back(ThreadEvent::TurnStarted { help, tickets });
                }
                Ok(Notice::TurnEnded { branch, end }) if branch == self.branch => {
                    self.catch_up().await;
                    self.out.push_back(ThreadEvent::TurnEnded(end));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Notices were lost; the commits were not. Turn ends that may be among the lost are sent again.
                    tracing::warn!(target: "hal_daemon", branch = %self.branch, missed, "an event stream fell behind");
                    self.catch_up().await;
                    let ends = self.shared.recent_ends(&self.branch);
                    self.out.extend(ends.into_iter().map(ThreadEvent::TurnEnded));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The steps of `branch` after `last` (all of them without it), newest first, with its tip; `None` while the
/// branch does not exist (a backchat not made yet).
fn read_after(
    shared: &Shared,
    branch: &str,
    last: Option<ObjectId>,
) -> hal_store::Result<Option<(ObjectId, Vec<Step>)>> {
    shared.journal.with(|home| {
        let Ok(thread) = home.resolve_thread(branch) else { return Ok(None) };
        let mut steps = Vec::new();
        for step in home.steps_back(&thread).take(MAX_CATCH_UP) {
            let step = step?;
            if Some(step.commit) == last {
                break;
            }
            steps.push(step);
        }
        Ok(Some((thread.tip, steps)))
    })
}
