//! Commands from clients and HAL's own tools: the turn-taking around the store-side half (`crate::command`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gix::ObjectId;
use hal_store::{BACKCHAT, ThreadRef};

use super::*;
use crate::command;
use crate::engine::Mode;
use crate::error::DaemonError;
use crate::protocol::{Command, Response};

impl Shared {
    /// Apply a command from a client or from HAL's own tools. A message is checked first: the turn that answers
    /// it must be able to run (its help and agent exist, a model is configured), else nothing is written. A
    /// message to a thread in the middle of a turn waits for the turn's end; a merge of it is refused until then.
    pub(crate) fn command(self: &Arc<Self>, command: &Command) -> Result<Response, DaemonError> {
        if command::starts_work(command) {
            self.refresh_halt();
            if let Some(reason) = self.halted() {
                return Err(DaemonError::Halted(reason));
            }
        }
        let _keyed = command::idempotency_key(command).map(|key| self.keyed.hold(key));
        if let Some(response) = self.journal.with(|home| command::repeated(home, command))? {
            return self.see_answered(command, response);
        }
        match command {
            Command::Say { actor, thread, text, help, agent, idempotency_key, relayed, signature } => {
                if text.trim().is_empty() {
                    return Err(hal_store::StoreError::InvalidText("the message is empty").into());
                }
                // The backchat is made with its first message, once that message is known to be answerable.
                let (who, existing) = self.journal.with(|home| -> hal_store::Result<_> {
                    let who = home.resolve_actor(actor.as_deref())?;
                    let existing = match thread.as_str() {
                        BACKCHAT => home.resolve_thread(&format!("threads/{who}/{BACKCHAT}")).ok(),
                        _ => Some(home.resolve_thread(thread)?),
                    };
                    Ok((who, existing))
                })?;
                if relayed.is_none() {
                    self.check_member(&who)?;
                }
                self.check_turn(existing.as_ref(), help.as_deref(), agent.as_deref())?;
                let target = match (existing, signature) {
                    (Some(target), Some(signature)) => {
                        self.journal.with(|home| command::refuse_frozen(home, &target))?;
                        self.journal.with(|home| command::check_signature(home, &who, &target, text, signature))?;
                        target
                    }
                    (Some(target), None) => {
                        self.journal.with(|home| command::refuse_frozen(home, &target))?;
                        target
                    }
                    (None, Some(_)) => {
                        let reason = "the message is signed after a step of a thread that does not exist yet";
                        return Err(DaemonError::BadSignature(reason.to_owned()));
                    }
                    (None, None) => self.journal.with(|home| command::thread_of(home, &who, thread))?,
                };
                let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst);
                let help_blob = self.help_blob(help.as_deref());
                // Held while the message is committed: a turn starting now sees it, one running queues it.
                let mut active = lock(&self.active);
                if let Some(key) = idempotency_key {
                    // The first try may have been queued, or committed from the queue since the look-up above.
                    if let Some(response) = self.journal.with(|home| command::repeated(home, command))? {
                        drop(active);
                        return self.see_answered(command, response);
                    }
                    for (branch, queue) in active.iter() {
                        let Some(first) = queue.iter().find(|m| m.idempotency_key.as_deref() == Some(key.as_str()))
                        else {
                            continue;
                        };
                        let lenient = |asked: &Option<String>, first: &Option<String>| {
                            asked.is_none() || first.is_none() || asked == first
                        };
                        let same = *branch == target.branch
                            && first.actor == who
                            && first.text == *text
                            && lenient(help, &first.help)
                            && lenient(agent, &first.agent);
                        if !same {
                            return Err(DaemonError::KeyReused(key.clone()));
                        }
                        let (thread, ticket, answer) = (target, Some(first.ticket), None);
                        return Ok(Response::Said {
                            thread,
                            message: None,
                            queued: true,
                            ticket,
                            repeated: true,
                            answer,
                        });
                    }
                }
                // In process, the turns the command's own messages ask for are taken; a message HAL's tools relay
                // waits for a daemon, as the threads they start do.
                if self.mode == Mode::InProcess && relayed.is_none() {
                    lock(&self.answering).insert(target.branch.clone());
                }
                if let Some(queue) = active.get_mut(&target.branch) {
                    // The same signed message twice (a retry without an idempotency key) is one message.
                    if let Some(signature) = signature
                        && queue
                            .iter()
                            .any(|q| q.signature.as_ref().is_some_and(|s| s.signature == signature.signature))
                    {
                        return Err(DaemonError::BadSignature(
                            "this signed message is already waiting for the turn's end; it is sent once".to_owned(),
                        ));
                    }
                    let queued = Queued {
                        actor: who,
                        text: text.clone(),
                        help: help.clone(),
                        help_blob,
                        agent: agent.clone(),
                        idempotency_key: idempotency_key.clone(),
                        relayed: relayed.clone(),
                        signature: signature.clone(),
                        ticket,
                    };
                    queue.push(queued);
                    let (thread, ticket, answer) = (target, Some(ticket), None);
                    return Ok(Response::Said { thread, message: None, queued: true, ticket, repeated: false, answer });
                }
                let asks = command::Asks {
                    help: help.as_deref(),
                    help_blob,
                    agent: agent.as_deref(),
                    idempotency_key: idempotency_key.as_deref(),
                };
                let (writer, step) = command::message_step(&who, text, asks, relayed.as_ref());
                let step = command::signed(step, signature.as_ref());
                let appended = self.journal.with(|home| home.append_step(&writer, &target, &step))?;
                lock(&self.tickets).entry(target.branch.clone()).or_default().push(ticket);
                drop(active);
                self.wake();
                let thread = ThreadRef { tip: appended.commit, ..target };
                let (message, ticket) = (Some(appended), Some(ticket));
                Ok(Response::Said { thread, message, queued: false, ticket, repeated: false, answer: None })
            }
            Command::NewThread { actor, input, help, agent, started_by_run, .. } => {
                let asks = input.as_deref().is_some_and(|text| !text.trim().is_empty());
                if asks {
                    if started_by_run.is_none() {
                        let who = self.journal.with(|home| home.resolve_actor(actor.as_deref()))?;
                        self.check_member(&who)?;
                    }
                    self.check_turn(None, help.as_deref(), agent.as_deref())?;
                }
                // Held while the thread is made: a scan cannot plan it before its ticket is in place.
                let active = lock(&self.active);
                let help_blob = self.help_blob(help.as_deref());
                let mut response = self.journal.with(|home| command::apply_with(home, command, help_blob))?;
                if let Response::Started { thread, message: Some(_), ticket, .. } = &mut response {
                    let number = self.next_ticket.fetch_add(1, Ordering::SeqCst);
                    if self.mode == Mode::InProcess && started_by_run.is_none() {
                        lock(&self.answering).insert(thread.branch.clone());
                    }
                    lock(&self.tickets).entry(thread.branch.clone()).or_default().push(number);
                    *ticket = Some(number);
                }
                drop(active);
                self.wake();
                Ok(response)
            }
            // Reads take a handle of their own: a long thread or ten thousand of them never holds up the writers.
            Command::ListThreads
            | Command::Stucks { .. }
            | Command::Log { .. }
            | Command::Verify { .. }
            | Command::AllowedSigners => Ok(command::apply(&self.journal.handle(), command)?),
            Command::Fork { .. } => {
                let response = self.journal.with(|home| command::apply(home, command))?;
                self.wake();
                Ok(response)
            }
            Command::Halt { .. } => {
                let response = self.journal.with(|home| command::apply(home, command))?;
                // In force at once for this engine's runs (the scan of other daemons finds the moved switch).
                self.refresh_halt();
                self.wake();
                Ok(response)
            }
            // Calling an isolate by hand or replaying a run acts in someone's name: a member's or an owner's, once
            // hal.yaml names members.
            Command::CallIsolate { actor, .. } | Command::Replay { actor, .. } => {
                let who = self.journal.with(|home| home.resolve_actor(actor.as_deref()))?;
                self.check_member(&who)?;
                self.answer(command)
            }
            Command::HelpTests { .. } => {
                let who = self.journal.with(|home| home.resolve_actor(None))?;
                self.check_member(&who)?;
                self.answer(command)
            }
            Command::Catalogue | Command::BuildIsolates | Command::Status => self.answer(command),
            Command::Decide { actor, thread, .. } => {
                // The answer lands on the request at the tip, between turns; the turn that goes on from it carries
                // the response's ticket.
                let (who, target) = self.journal.with(|home| -> hal_store::Result<(String, ThreadRef)> {
                    let who = home.resolve_actor(actor.as_deref())?;
                    let target = command::thread_of(home, &who, thread)?;
                    Ok((who, target))
                })?;
                // An owner's act; and, while hal.yaml names no owners, still only a member's.
                self.check_member(&who)?;
                // The same answer sent again gets what it made even while the turn it started runs.
                let repeated = self.journal.with(|home| crate::decide::repeated(home, &target, command, &who))?;
                if let Some(response) = repeated {
                    return Ok(response);
                }
                let active = lock(&self.active);
                if active.contains_key(&target.branch) {
                    return Err(DaemonError::Busy(target.branch));
                }
                let mut response = self.journal.with(|home| command::apply(home, command))?;
                if let Response::Decided { thread, ticket, repeated: false, .. } = &mut response {
                    let number = self.next_ticket.fetch_add(1, Ordering::SeqCst);
                    if self.mode == Mode::InProcess {
                        lock(&self.answering).insert(thread.branch.clone());
                    }
                    lock(&self.tickets).entry(thread.branch.clone()).or_default().push(number);
                    *ticket = Some(number);
                }
                drop(active);
                self.wake();
                Ok(response)
            }
            Command::Merge { actor, thread, .. }
            | Command::Write { actor, thread, .. }
            | Command::Unfreeze { actor, thread, .. } => {
                // A merge or a file written in the middle of a turn would land between its steps: wait for the
                // turn's end.
                let target = self.journal.with(|home| -> hal_store::Result<ThreadRef> {
                    let who = home.resolve_actor(actor.as_deref())?;
                    command::thread_of(home, &who, thread)
                })?;
                // Held while the merge or write is made: no turn starts between the check and it.
                let active = lock(&self.active);
                if active.contains_key(&target.branch) {
                    return Err(DaemonError::Busy(target.branch));
                }
                let response = self.journal.with(|home| command::apply(home, command))?;
                drop(active);
                self.wake();
                Ok(response)
            }
        }
    }

    /// The blob of the version of `help` in force.
    pub(crate) fn help_blob(&self, help: Option<&str>) -> Option<ObjectId> {
        help.and_then(|name| self.loaded().runner.catalog().entry(name).map(|entry| entry.blob))
    }

    /// Check that the turn answering a new message on `thread` (a new thread when `None`) can run: `help` and
    /// `agent` when given, else those the thread's next turn would run.
    pub(crate) fn check_turn(
        &self,
        thread: Option<&ThreadRef>,
        help: Option<&str>,
        agent: Option<&str>,
    ) -> Result<(), DaemonError> {
        let (next_help, next_agent) = match thread {
            Some(thread) => self.journal.with(|home| hal_runner::plan::next_turn(home, thread))?,
            None => (hal_runner::plan::DEFAULT_HELP.to_owned(), hal_runner::catalog::DEFAULT_AGENT.to_owned()),
        };
        let (help, agent) = (help.unwrap_or(&next_help), agent.unwrap_or(&next_agent));
        let loaded = self.loaded();
        loaded.runner.clone().with_agent(agent).check(loaded.models.as_ref(), help)?;
        Ok(())
    }

    /// Refuse a message in the name of `who` when `hal.yaml` names members and they are neither one nor an owner.
    pub(crate) fn check_member(&self, who: &str) -> Result<(), DaemonError> {
        let admit = self.journal.with(|home| self.admit(home));
        if admit.members.is_none() {
            return Ok(());
        }
        let keyring = self.journal.with(hal_trust::Keyring::load)?;
        match admit.not_member(&keyring, who) {
            Some(reason) => Err(DaemonError::NotMember(reason.replace("Not answered: ", "Refused: "))),
            None => Ok(()),
        }
    }
}
