//! Turns on branches: starting one (one at a time per branch), ending it (queued messages committed, waiters
//! told), and seeing that a repeated command's message gets an answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;
use crate::command;
use crate::engine::Mode;
use crate::error::DaemonError;
use crate::protocol::{Command, Response, Status, TurnEnd};
use crate::turn::{TurnGuard, Why, turn};
use hal_runner::plan::{Plan, plan_for};

impl Shared {
    /// Start a turn on `branch` unless one runs there already.
    pub(crate) fn start_turn(self: &Arc<Self>, branch: String, why: Why) {
        {
            let mut active = lock(&self.active);
            if active.contains_key(&branch) || self.stopping.load(Ordering::SeqCst) {
                return;
            }
            active.insert(branch.clone(), Vec::new());
        }
        let guard = TurnGuard { shared: self.clone(), branch: branch.clone(), tickets: Vec::new(), ended: None };
        let mut turns = lock(&self.turns);
        let handle = self.runtime.spawn(async move { turn(guard, why).await });
        turns.insert(branch, handle.abort_handle());
    }

    /// Release `branch` after a turn: commit the messages queued behind it, announce the end, and look again.
    pub(crate) fn end_turn(self: &Arc<Self>, branch: &str, tickets: Vec<u64>, mut end: TurnEnd) {
        // Queued messages that could not be written (the thread froze meanwhile, say): their senders hear why.
        let mut unwritten = Vec::new();
        {
            let mut active = lock(&self.active);
            let queued = active.remove(branch).unwrap_or_default();
            for message in queued {
                let asks = command::Asks {
                    help: message.help.as_deref(),
                    help_blob: message.help_blob,
                    agent: message.agent.as_deref(),
                    idempotency_key: message.idempotency_key.as_deref(),
                };
                let (writer, step) =
                    command::message_step(&message.actor, &message.text, asks, message.relayed.as_ref());
                let step = command::signed(step, message.signature.as_ref());
                let result = self.journal.with(|home| {
                    let current = home.resolve_thread(branch)?;
                    home.append_step(&writer, &current, &step)
                });
                match result {
                    Ok(_) => lock(&self.tickets).entry(branch.to_owned()).or_default().push(message.ticket),
                    Err(error) => {
                        tracing::error!(target: "hal_daemon", %branch, %error, "cannot add a queued message");
                        unwritten.push((message.ticket, error.to_string()));
                    }
                }
            }
            // Who joined this turn, taken while the branch is still this turn's: a client that joins later joins
            // the next one.
            end.tickets = tickets;
            end.tickets.extend(lock(&self.joining).remove(branch).unwrap_or_default());
            // With the branch: a turn started right after this one's release keeps its abort handle.
            lock(&self.turns).remove(branch);
        }
        lock(&self.seen).remove(branch);
        self.metrics.turn_ended(end.status.as_str());
        tracing::info!(target: "hal_daemon", %branch, status = %end.status, "turn ends");
        let id = end.thread.clone();
        lock(&self.recent_ends).add(branch, end.clone());
        let _ = self.notices.send(Notice::TurnEnded { branch: branch.to_owned(), end });
        for (ticket, error) in unwritten {
            self.answer_unrun(branch, &id, vec![ticket], &format!("the message was not written: {error}"));
        }
        self.wake();
    }

    /// Tell the clients holding `tickets` on `branch` that no turn answers their messages, and why.
    pub(crate) fn answer_unrun(&self, branch: &str, thread: &str, tickets: Vec<u64>, why: &str) {
        if tickets.is_empty() {
            return;
        }
        let mut end = TurnEnd::without_run(Status::Error, thread, why.to_owned());
        end.tickets = tickets;
        let _ = self.notices.send(Notice::TurnEnded { branch: branch.to_owned(), end });
    }

    /// See that a repeated command's message gets its answer: when no run answered it yet, the client gets a
    /// ticket that the end of the turn answering it carries: the turn in progress on its thread, or one started
    /// now (a run this engine left unfinished is resumed, as at a start, when no turn of its runs at all: then no
    /// sub-help run can be writing that thread either). Without either, nothing would answer it: the response
    /// has neither ticket nor answer.
    pub(crate) fn see_answered(
        self: &Arc<Self>,
        command: &Command,
        response: Response,
    ) -> Result<Response, DaemonError> {
        if matches!(&response, Response::Started { answer: Some(_), .. } | Response::Said { answer: Some(_), .. }) {
            return Ok(response);
        }
        let active = lock(&self.active);
        // Looked up again under the lock: a turn may have answered it since.
        let Some(mut response) = self.journal.with(|home| command::repeated(home, command))? else {
            return Ok(response);
        };
        let (Response::Started { thread, ticket, answer: None, .. }
        | Response::Said { thread, ticket, answer: None, .. }) = &mut response
        else {
            return Ok(response);
        };
        let number = self.next_ticket.fetch_add(1, Ordering::SeqCst);
        if active.contains_key(&thread.branch) {
            lock(&self.joining).entry(thread.branch.clone()).or_default().push(number);
            *ticket = Some(number);
            return Ok(response);
        }
        let resume = active.is_empty();
        if let Plan::Turn { .. } = self.journal.with(|home| plan_for(home, thread, resume, self.admit(home)))? {
            if self.mode == Mode::InProcess {
                lock(&self.answering).insert(thread.branch.clone());
            }
            lock(&self.tickets).entry(thread.branch.clone()).or_default().push(number);
            *ticket = Some(number);
            let branch = thread.branch.clone();
            drop(active);
            self.start_turn(branch, Why::Scan { startup: resume });
        }
        Ok(response)
    }
}
