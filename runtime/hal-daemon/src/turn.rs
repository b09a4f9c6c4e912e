//! One turn on a branch: planned and read once when it starts, run by the runner, and followed by another when a
//! person's commit landed in the middle of it.

use std::sync::Arc;
use std::time::Instant;

use gix::ObjectId;
use hal_runner::conversation::is_persons_step;
use hal_runner::plan::{Plan, Turn, plan_for};
use hal_store::{Home, ThreadRef, ThreadStatus};

use crate::daemon::{Notice, Shared, lock};
use crate::protocol::{Status, TurnEnd};

/// Ends a turn however its task ends (finished, failed, panicked or cut off by a stop): the branch is released
/// and the messages queued behind the turn are committed, so none is lost.
pub(crate) struct TurnGuard {
    pub(crate) shared: Arc<Shared>,
    pub(crate) branch: String,
    pub(crate) tickets: Vec<u64>,
    pub(crate) ended: Option<TurnEnd>,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        let end = self.ended.take().unwrap_or_else(|| {
            TurnEnd::without_run(
                Status::Error,
                &thread_id(&self.branch),
                "the turn was cut off; a daemon resumes it when it starts",
            )
        });
        self.shared.end_turn(&self.branch, std::mem::take(&mut self.tickets), end);
    }
}

/// Why a turn starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Why {
    /// A scan found a message (or, at startup, an interrupted run) at the tip.
    Scan {
        /// Whether this is the first scan after the start.
        startup: bool,
    },
    /// A person's commit landed in the middle of the previous turn, which did not see it.
    FollowUp {
        /// The previous turn's last step: the branch must still grow from it.
        after: ObjectId,
    },
}

/// One turn on the guard's branch: re-read the tip (messages committed since the scan planned it are part of
/// this turn), run the help, and if a person's commit landed in the middle of the turn, answer it too.
pub(crate) async fn turn(mut guard: TurnGuard, why: Why) {
    let shared = guard.shared.clone();
    let branch = guard.branch.clone();
    // Planned again (messages committed since the scan are part of this turn) and read once: the runner acts on
    // this reading and does not read the tip again.
    let planned = shared.journal.with(|home| -> Result<_, hal_runner::RunError> {
        let thread = home.resolve_thread(&branch)?;
        let plan = match why {
            Why::Scan { startup } => plan_for(home, &thread, startup, shared.admit(home))?,
            Why::FollowUp { after } => {
                let tip = home.steps_back(&thread).next().transpose()?;
                if !home.grows_from(after, thread.tip) || hal_runner::plan::moved_from(home, &thread)?.is_some() {
                    // Moved back or sideways since the turn: the next scan plans it (frozen, most likely).
                    Plan::Nothing
                } else if tip.as_ref().is_some_and(is_persons_step) {
                    // A person's step at the tip is judged as any is.
                    plan_for(home, &thread, false, shared.admit(home))?
                } else {
                    let (help, agent) = hal_runner::plan::next_turn(home, &thread)?;
                    Plan::Turn { help, agent, actor: thread.actor.clone() }
                }
            }
        };
        let Plan::Turn { help, agent, actor } = plan else { return Ok(Err(thread)) };
        // Claimed here, under the store's lock, before it runs: of two branches pointing at one person's message,
        // one turn answers it.
        if is_persons_step_at_tip(home, &thread)? && !home.record_answered(thread.tip, &thread.branch)? {
            return Ok(Err(thread));
        }
        Ok(Ok(Turn::read(home, &thread, &help, &agent, &actor).map_err(|error| (thread, help, agent, error))))
    });
    // The messages this turn answers (or, when there is nothing to run, whose waiters hear that).
    guard.tickets = lock(&shared.tickets).remove(&branch).unwrap_or_default();
    // Halted since the turn was asked for (a follow-up, a queued message): it does not start.
    if let Some(reason) = shared.halted() {
        guard.ended = Some(TurnEnd::without_run(Status::Error, &thread_id(&branch), reason));
        return;
    }
    let turn = match planned {
        Ok(Ok(Ok(turn))) => turn,
        Ok(Ok(Err((thread, help, agent, error)))) => {
            // What the thread holds cannot be acted on (a damaged reply, say): the thread says so, as a failed run.
            let text = format!("could not run help `{help}` as agent `{agent}`: {error}");
            tracing::warn!(target: "hal_daemon", %branch, %error, "turn failed");
            shared.note(&thread, &text, ThreadStatus::Error);
            guard.ended = Some(TurnEnd::without_run(Status::Error, &thread.id, text));
            return;
        }
        Ok(Err(_)) => {
            guard.ended = Some(TurnEnd::without_run(Status::Done, &thread_id(&branch), "nothing to answer"));
            return;
        }
        Err(error) => {
            guard.ended = Some(TurnEnd::without_run(Status::Error, &thread_id(&branch), error.to_string()));
            return;
        }
    };
    let (thread, help, agent) = (&turn.thread, &turn.help, &turn.agent);
    let _ = shared.notices.send(Notice::TurnStarted {
        branch: branch.clone(),
        help: help.clone(),
        tickets: guard.tickets.clone(),
    });
    tracing::info!(target: "hal_daemon", %branch, %help, %agent, "turn starts");
    let started = Instant::now();
    let loaded = shared.loaded();
    let runner = &loaded.runner;
    let end = match runner.run_turn(loaded.models.clone(), &turn).await {
        Ok(outcome) => TurnEnd::of_run(outcome),
        Err(error) => {
            let text = format!("could not run help `{help}` as agent `{agent}`: {error}");
            tracing::warn!(target: "hal_daemon", %branch, %error, "turn failed");
            let current = shared.journal.with(|home| home.resolve_thread(&branch)).unwrap_or(thread.clone());
            shared.note(&current, &text, ThreadStatus::Error);
            TurnEnd::without_run(Status::Error, &thread.id, text)
        }
    };
    shared.metrics.turn_seconds(started.elapsed().as_secs_f64());
    let end_commit = end.commit;
    let between = end.commit.map(|end| {
        shared.journal.with(|home| persons_commits_between(home, &branch, thread.tip, end, shared.admit(home)))
    });
    let pushed = match between {
        Some(Ok(between)) => {
            if !between.refused.is_empty() {
                tracing::warn!(target: "hal_daemon", %branch, "a message pushed during a turn is not answered");
                let current = shared.journal.with(|home| home.resolve_thread(&branch));
                if let Ok(current) = current {
                    shared.note(&current, &between.refused.join("\n"), ThreadStatus::Open);
                }
            }
            between.answer
        }
        Some(Err(error)) => {
            tracing::warn!(target: "hal_daemon", %branch, %error, "cannot read what was pushed during the turn");
            false
        }
        None => false,
    };
    guard.ended = Some(end);
    if let (true, Some(after)) = (pushed, end_commit) {
        // The turn did not see it: read the thread again from its commits and answer in a follow-up turn.
        runner.forget(&branch);
        drop(guard);
        shared.start_turn(branch, Why::FollowUp { after });
    }
}

/// The id of the thread on `branch` (its last component).
fn thread_id(branch: &str) -> String {
    branch.rsplit('/').next().unwrap_or_default().to_owned()
}

/// What people pushed on `branch` while a turn ran.
#[derive(Default)]
struct Between {
    /// A message or plain commit of a person's that HAL answers sits between the turn's start and end.
    answer: bool,
    /// Why the others are not answered (unsigned where that is not accepted, or signed wrongly).
    refused: Vec<String>,
}

/// The people's messages and plain commits between `from` (exclusive) and `to` on `branch`, judged as the plan
/// judges a message at the tip ([`hal_runner::plan::refusal`]): a follow-up turn answers only what a turn would.
fn persons_commits_between(
    home: &Home,
    branch: &str,
    from: ObjectId,
    to: ObjectId,
    admit: hal_runner::plan::Admit,
) -> Result<Between, hal_runner::RunError> {
    /// How many refusals one note lists.
    const REFUSED_LISTED: usize = 20;
    let thread = ThreadRef { id: String::new(), actor: String::new(), branch: branch.to_owned(), tip: to };
    let mut between = Between::default();
    let mut keyring = None;
    // A turn writes a few hundred steps at most; a branch whose first parents do not lead back to the turn's start
    // within that (a merge of main pushed meanwhile) is not read further.
    for step in home.steps_back(&thread).take(1_000) {
        let step = step?;
        if step.commit == from {
            break;
        }
        if is_persons_step(&step) {
            let keyring = match &keyring {
                Some(keyring) => keyring,
                None => keyring.insert(hal_trust::Keyring::load(home).map_err(hal_runner::RunError::from_trust)?),
            };
            match hal_runner::plan::refusal_with(home, keyring, branch, &step, &admit)? {
                None => between.answer = true,
                Some(_) if between.refused.len() >= REFUSED_LISTED => {}
                Some(reason) => between.refused.push(reason),
            }
        }
    }
    Ok(between)
}

/// Whether the step at `thread`'s tip is a person's (a message to answer).
fn is_persons_step_at_tip(home: &Home, thread: &ThreadRef) -> hal_store::Result<bool> {
    Ok(home.steps_back(thread).next().transpose()?.as_ref().is_some_and(is_persons_step))
}
