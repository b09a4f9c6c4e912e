//! Watching the repo: the observer of runs, reloading what `main` holds, and the scan that plans each thread
//! whose tip moved.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use hal_runner::{Event, Observer, SharedHome};
use hal_store::identity::HAL_ACTOR;
use hal_store::{BACKCHAT, Home, NewStep, StepKind, ThreadRef, ThreadStatus};

use super::*;
use crate::command;
use crate::engine::Mode;
use crate::error::DaemonError;
use crate::loaded::{self};
use crate::protocol::Command;
use crate::turn::Why;
use hal_runner::plan::{Plan, plan_for};

impl Shared {
    pub(crate) fn observer(self: &Arc<Self>) -> Observer {
        let weak = Arc::downgrade(self);
        Arc::new(move |event: &Event<'_>| {
            let Some(shared) = weak.upgrade() else { return };
            match event {
                Event::Text { branch, delta, .. } => {
                    if shared.notices.receiver_count() > 0 {
                        let (branch, delta) = ((*branch).to_owned(), (*delta).to_owned());
                        let _ = shared.notices.send(Notice::Text { branch, delta });
                    }
                }
                Event::Step { thread, branch, kind, facts, caller, summary, .. } => {
                    shared.metrics.step(kind, facts);
                    let (thread, branch) = ((*thread).to_owned(), (*branch).to_owned());
                    if let Some(caller) = caller
                        && shared.notices.receiver_count() > 0
                    {
                        // One line for a progress view, not the step: a tool's result can be a page.
                        let summary: String = summary.chars().take(200).collect();
                        let kind = kind.as_str().to_owned();
                        let progress =
                            Notice::Progress { branch: (*caller).to_owned(), thread: thread.clone(), kind, summary };
                        let _ = shared.notices.send(progress);
                    }
                    let _ = shared.notices.send(Notice::Tip { thread, branch });
                }
                // A long tool call's own notes, as progress of the run the person follows.
                Event::Progress { thread, caller, tool, done, total, message, .. } => {
                    if shared.notices.receiver_count() > 0 {
                        let of = if *total > 0 { format!("{done}/{total} ") } else { String::new() };
                        let summary: String = format!("{tool}: {of}{message}").chars().take(200).collect();
                        let (branch, thread) = ((*caller).to_owned(), (*thread).to_owned());
                        let kind = "progress".to_owned();
                        let _ = shared.notices.send(Notice::Progress { branch, thread, kind, summary });
                    }
                }
            }
        })
    }

    /// Load helps, agents, isolates and settings from `main`, keeping valid versions of files that broke, building
    /// as `builds` says, and report problems that are new in the owner's backchat and the log.
    pub(crate) fn reload_with(self: &Arc<Self>, builds: hal_sandbox::Builds) {
        let _reloading = lock(&self.reloading);
        let previous = self.loaded();
        let previous = previous.main.is_some().then_some(previous.as_ref());
        let weak = Arc::downgrade(self);
        let dispatch: crate::backchat::Dispatch = Arc::new(move |_: &SharedHome, command: &Command| {
            let shared = weak.upgrade().ok_or("the daemon is stopping")?;
            shared.command(command).map_err(|e| e.to_string())
        });
        let mut loaded = match loaded::load(
            &self.root,
            &self.journal,
            previous,
            &self.models,
            dispatch,
            self.observer(),
            &self.secrets,
            builds,
        ) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(target: "hal_daemon", %error, "cannot load main; what was loaded stays in force");
                return;
            }
        };
        tracing::info!(
            target: "hal_daemon",
            main = ?loaded.main,
            helps = loaded.runner.catalog().helps.len(),
            isolates = loaded.isolates.len(),
            problems = loaded.problems.len(),
            "loaded main"
        );
        let tools = loaded.runner.tools();
        let helps = loaded.runner.catalog().helps.iter().map(|entry| entry.name.as_str());
        self.metrics.reload(loaded.problems.len(), tools.iter().map(String::as_str).chain(helps));
        let problems = loaded.problems.clone();
        // Every model call and tool call of its runs asks whether an owner halted HAL meanwhile.
        let weak = Arc::downgrade(self);
        loaded.runner = loaded.runner.with_halt(Arc::new(move || weak.upgrade().and_then(|shared| shared.halted())));
        // What runs at AL2 (act and tell) is told in the owner's backchat.
        let weak = Arc::downgrade(self);
        loaded.runner = loaded.runner.with_teller(Arc::new(move |branch: &str, text: &str| {
            // A run in the owner's own backchat shows them its calls there already.
            if let Some(shared) = weak.upgrade()
                && branch != format!("threads/{}/{BACKCHAT}", shared.owner)
            {
                shared.tell_owner(text);
            }
        }));
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        self.report(&problems);
        self.report_trust();
    }

    pub(crate) fn scan_loop(self: &Arc<Self>, wake: &Receiver<()>, poll: Duration) {
        loop {
            match wake.recv_timeout(poll) {
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            // A burst of events (every commit is one) makes one scan: the daemon's own commits alone would
            // otherwise scan the refs a thousand times a second under load.
            std::thread::sleep(COALESCE);
            while wake.try_recv().is_ok() {}
            self.scan(false);
        }
    }

    /// Look at every ref: reload when `main` moved; plan every idle thread whose tip moved.
    pub(crate) fn scan(self: &Arc<Self>, startup: bool) {
        let refs = self.journal.with(|home| -> hal_store::Result<_> { Ok((home.main_tip()?, home.threads()?)) });
        let (main, threads) = match refs {
            Ok(refs) => refs,
            Err(error) => {
                tracing::error!(target: "hal_daemon", %error, "cannot read the refs");
                return;
            }
        };
        let halted = self.halted().is_some();
        if main != self.loaded().main || (!halted && self.built_while_halted.load(Ordering::SeqCst)) {
            // Halted, nothing is built (a build runs code): what was built before is loaded, and built after.
            self.built_while_halted.store(halted, Ordering::SeqCst);
            self.reload_with(if halted { hal_sandbox::Builds::CachedOnly } else { hal_sandbox::Builds::Run });
        }
        // Halted: nothing is planned (the threads are looked at again after the resume moves the switch), and the
        // runs a start would resume wait for the first scan after it.
        let startup = startup || self.resume_pending.swap(false, Ordering::SeqCst);
        if halted {
            self.resume_pending.fetch_or(startup, Ordering::SeqCst);
            // Clients waiting for messages no turn will answer now hear why, instead of waiting for the resume.
            let reason = self.halted().unwrap_or_default();
            let waiting: Vec<(String, Vec<u64>)> = {
                let active = lock(&self.active);
                let mut tickets = lock(&self.tickets);
                let idle: Vec<String> = tickets.keys().filter(|b| !active.contains_key(*b)).cloned().collect();
                idle.into_iter().filter_map(|b| tickets.remove(&b).map(|t| (b, t))).collect()
            };
            for (branch, tickets) in waiting {
                let id = branch.rsplit('/').next().unwrap_or_default().to_owned();
                self.answer_unrun(&branch, &id, tickets, &reason);
            }
            return;
        }
        let answering = match self.mode {
            Mode::Daemon => None,
            Mode::InProcess => Some(lock(&self.answering).clone()),
        };
        for thread in threads {
            if answering.as_ref().is_some_and(|branches| !branches.contains(&thread.branch)) {
                continue;
            }
            // A busy branch is looked at again when its turn ends.
            if self.is_active(&thread.branch) {
                continue;
            }
            {
                let mut seen = lock(&self.seen);
                if seen.get(&thread.branch) == Some(&thread.tip) {
                    continue;
                }
                seen.insert(thread.branch.clone(), thread.tip);
            }
            let _ = self.notices.send(Notice::Tip { thread: thread.id.clone(), branch: thread.branch.clone() });
            if self.stopping.load(Ordering::SeqCst) {
                continue;
            }
            match self.journal.with(|home| plan_for(home, &thread, startup, self.admit(home))) {
                Ok(Plan::Nothing) => {}
                Ok(Plan::Ignore { reason }) => {
                    tracing::warn!(target: "hal_daemon", branch = %thread.branch, %reason, "a message not answered");
                    self.note_on_tip(&thread, &reason);
                }
                Ok(Plan::Frozen { left }) => {
                    // Reported by `hal status` and refused to every command that would write on it.
                    tracing::warn!(target: "hal_daemon", branch = %thread.branch, %left, tip = %thread.tip,
                        "the branch was moved back or sideways: the thread is frozen until an owner unfreezes it");
                }
                Ok(Plan::Turn { .. }) => self.start_turn(thread.branch, Why::Scan { startup }),
                Ok(Plan::Abandon) => self.note(
                    &thread,
                    "interrupted: the daemon stopped during this sub-help's run; its caller runs the help again \
                     on a new sub-thread when it resumes",
                    ThreadStatus::Error,
                ),
                Err(error) => {
                    tracing::warn!(target: "hal_daemon", branch = %thread.branch, %error, "cannot read the thread")
                }
            }
        }
    }

    /// What HAL believes of people's steps, by the `hal.yaml` in force and the repo's remotes now.
    pub(crate) fn admit(&self, home: &Home) -> hal_runner::plan::Admit {
        let loaded = self.loaded();
        let settings = &loaded.runner.catalog().settings;
        hal_runner::plan::Admit::for_repo(home, &settings.trust).with_members(settings.members.as_ref())
    }

    /// A system step on `thread` right on the tip it was planned at (`Open`): when the branch moved meanwhile, the
    /// next scan plans for what is there, and no note hides it.
    pub(crate) fn note_on_tip(&self, thread: &ThreadRef, text: &str) {
        let mut step = NewStep::new(StepKind::System, text, ThreadStatus::Open);
        step.on_tip = Some(thread.tip);
        if let Err(error) = self.journal.with(|home| home.append_step(HAL_ACTOR, thread, &step)) {
            tracing::warn!(target: "hal_daemon", branch = %thread.branch, %error, "no system step written");
        }
    }

    /// A system step on `thread`.
    pub(crate) fn note(&self, thread: &ThreadRef, text: &str, status: ThreadStatus) {
        // Never on a frozen thread (a note would move HAL's mark onto the moved branch), nor on one moved since.
        let step = NewStep { descends_from: Some(thread.tip), ..NewStep::new(StepKind::System, text, status) };
        let written = self.journal.with(|home| {
            command::refuse_frozen(home, thread)?;
            Ok::<_, DaemonError>(home.append_step(HAL_ACTOR, thread, &step)?)
        });
        if let Err(error) = written {
            tracing::error!(target: "hal_daemon", branch = %thread.branch, %error, "cannot write a system step");
        }
    }
}
