//! The daemon's life: lock, load, scan, run turns, serve, stop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gix::ObjectId;
use hal_runner::model::{Models, SecretLookup};
use hal_runner::{Event, Journal, Observer};
use hal_store::identity::HAL_ACTOR;
use hal_store::{BACKCHAT, Home, NewStep, StepKind, ThreadRef, ThreadStatus};
use tokio::sync::{broadcast, watch};

use crate::command;
use crate::engine::Mode;
use crate::error::DaemonError;
use crate::loaded::{self, Loaded, ModelSource};
use crate::metrics::Metrics;
use crate::protocol::{Command, DaemonInfo, MessageSignature, Problem, Response, Status, StatusReport, TurnEnd};
use crate::turn::{TurnGuard, Why, turn};
use hal_runner::plan::{Plan, plan_for};

/// How long the scanner waits after a wake-up for more of the same burst.
const COALESCE: Duration = Duration::from_millis(10);
/// Turn ends kept per branch for readers that subscribe late (a client that starts a thread and then follows it).
const RECENT_ENDS: usize = 8;
/// Branches whose recent turn ends are kept (those that ended a turn most recently).
const RECENT_BRANCHES: usize = 1024;

/// The ends of the last few turns of the branches that ended turns most recently.
#[derive(Default)]
pub(crate) struct RecentEnds {
    ends: HashMap<String, VecDeque<TurnEnd>>,
    /// Branches, least recently ended first.
    order: VecDeque<String>,
}

impl RecentEnds {
    fn add(&mut self, branch: &str, end: TurnEnd) {
        if let Some(at) = self.order.iter().position(|b| b == branch) {
            self.order.remove(at);
        }
        self.order.push_back(branch.to_owned());
        let ends = self.ends.entry(branch.to_owned()).or_default();
        if ends.len() == RECENT_ENDS {
            ends.pop_front();
        }
        ends.push_back(end);
        while self.order.len() > RECENT_BRANCHES {
            if let Some(oldest) = self.order.pop_front() {
                self.ends.remove(&oldest);
            }
        }
    }

    fn of(&self, branch: &str) -> Vec<TurnEnd> {
        self.ends.get(branch).map(|ends| ends.iter().cloned().collect()).unwrap_or_default()
    }
}
/// Notices kept for slow event-stream readers.
pub(crate) const NOTICE_BUFFER: usize = 16_384;

/// How the daemon is set up.
#[derive(Clone)]
pub struct DaemonOptions {
    /// Use these models for every run instead of the ones `hal.yaml` configures (a recording, a test's server).
    pub models: Option<Arc<dyn Models>>,
    /// Port of the HTTP API on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// How often refs are scanned when no change event arrives.
    pub poll: Duration,
    /// How long a stop waits for turns in progress before cutting them off (each committed step is kept; a cut
    /// turn resumes at the next start).
    pub grace: Duration,
    /// Worker threads of the async runtime (0: one per core).
    pub workers: usize,
}

impl Default for DaemonOptions {
    fn default() -> DaemonOptions {
        DaemonOptions {
            models: None,
            port: 0,
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(5),
            workers: 0,
        }
    }
}

/// What happens in the daemon, for the threads' followers.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A thread's tip moved (a step committed here or pushed by anyone).
    Tip {
        /// The thread's id.
        thread: String,
        /// Its branch.
        branch: String,
    },
    /// Text of a model reply streaming in.
    Text {
        /// The thread's branch.
        branch: String,
        /// The new text.
        delta: String,
    },
    /// A step of a help run by another help, as progress of the run on `branch` that called it.
    Progress {
        /// The calling run's branch.
        branch: String,
        /// The sub-thread.
        thread: String,
        /// The step's kind.
        kind: String,
        /// One line about it.
        summary: String,
    },
    /// A turn started.
    TurnStarted {
        /// Its branch.
        branch: String,
        /// The help it runs.
        help: String,
        /// The tickets of the messages it answers.
        tickets: Vec<u64>,
    },
    /// A turn ended.
    TurnEnded {
        /// Its branch.
        branch: String,
        /// How.
        end: TurnEnd,
    },
}

/// A message that arrived while its thread was running a turn.
pub(crate) struct Queued {
    actor: String,
    text: String,
    help: Option<String>,
    agent: Option<String>,
    /// The version of `help` in force when it came.
    help_blob: Option<ObjectId>,
    /// The idempotency key of the command that sent it.
    idempotency_key: Option<String>,
    /// HAL relays it from a run, at the end of a chain this long.
    relayed: Option<u32>,
    /// The person's signature of it, checked when it came.
    signature: Option<MessageSignature>,
    ticket: u64,
}

/// State shared by the scanner, the turns and the clients.
pub(crate) struct Shared {
    pub(crate) journal: Journal,
    pub(crate) owner: String,
    pub(crate) token: String,
    pub(crate) info: DaemonInfo,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) metrics: Metrics,
    /// Becomes `true` when the engine stops: event streams end.
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) mode: Mode,
    pub(crate) root: PathBuf,
    pub(crate) loaded: RwLock<Arc<Loaded>>,
    /// Branches with a turn in progress, with the messages queued behind it.
    pub(crate) active: Mutex<HashMap<String, Vec<Queued>>>,
    /// Abort handles of the turns in progress.
    pub(crate) turns: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// The tip each idle branch had when last scanned.
    pub(crate) seen: Mutex<HashMap<String, ObjectId>>,
    /// In process: the branches this engine's commands wrote to, the only ones it takes turns on.
    pub(crate) answering: Mutex<HashSet<String>>,
    /// Tickets of messages committed and not answered yet, by branch.
    pub(crate) tickets: Mutex<HashMap<String, Vec<u64>>>,
    pub(crate) next_ticket: AtomicU64,
    /// The ends of the last few turns of each branch, for a reader that missed them.
    pub(crate) recent_ends: Mutex<RecentEnds>,
    /// Tickets of clients that joined a turn in progress (a repeated command whose message it answers), by
    /// branch: the turn's end carries them too.
    pub(crate) joining: Mutex<HashMap<String, Vec<u64>>>,
    /// Problems already reported in the owner's backchat.
    pub(crate) reported: Mutex<Vec<Problem>>,
    /// The halt in force, with the tip of `refs/hal/halt` it was judged at (`None`: not judged yet; judged again
    /// when the tip moves).
    pub(crate) halt: Mutex<(Option<Option<ObjectId>>, hal_trust::halt::Halt)>,
    /// A start found HAL halted: the runs it would resume wait for the first scan after the resume.
    pub(crate) resume_pending: AtomicBool,
    /// `main` was loaded while halted, so without building: the first scan after the resume loads it again, built.
    pub(crate) built_while_halted: AtomicBool,
    /// Trust problems already reported there (commit and text), since this daemon started.
    pub(crate) reported_trust: Mutex<std::collections::HashSet<(ObjectId, String)>>,
    /// Held by a command with an idempotency key, per key, from its look-up to its write: two tries of one key
    /// never both write.
    pub(crate) keyed: crate::keys::KeyLocks,
    /// Held by a load of `main` (the scanner's, or a build asked for): one at a time, so an older load never
    /// finishes after a newer one and puts what it read back in force.
    pub(crate) reloading: Mutex<()>,
    pub(crate) wake: Mutex<Sender<()>>,
    pub(crate) models: ModelSource,
    pub(crate) secrets: SecretLookup,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) stopping: AtomicBool,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn loaded(&self) -> Arc<Loaded> {
        self.loaded.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Ask the scanner to look at the refs now.
    pub(crate) fn wake(&self) {
        let _ = lock(&self.wake).send(());
    }

    /// Whether a turn runs on `branch`.
    pub(crate) fn is_active(&self, branch: &str) -> bool {
        lock(&self.active).contains_key(branch)
    }

    /// How the last turn of `branch` ended, if one did since the start.
    pub(crate) fn recent_ends(&self, branch: &str) -> Vec<TurnEnd> {
        lock(&self.recent_ends).of(branch)
    }

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
        let dispatch: crate::backchat::Dispatch = Arc::new(move |_: &Journal, command: &Command| {
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
        self.metrics.reload(loaded.problems.len());
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
                let (writer, step) = command::message_step(&message.actor, &message.text, asks, message.relayed);
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
                        relayed: *relayed,
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
                let (writer, step) = command::message_step(&who, text, asks, *relayed);
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
            Command::ListThreads | Command::Log { .. } | Command::Verify { .. } | Command::AllowedSigners => {
                Ok(command::apply(&self.journal.handle(), command)?)
            }
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
                let active = lock(&self.active);
                if active.contains_key(&target.branch) {
                    return Err(DaemonError::Busy(target.branch));
                }
                let mut response = self.journal.with(|home| command::apply(home, command))?;
                if let Response::Decided { thread, ticket, .. } = &mut response {
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

    /// The state `hal status` shows.
    pub(crate) fn status(&self) -> Result<StatusReport, DaemonError> {
        let running = lock(&self.active).keys().cloned().collect();
        let daemon = (self.mode == Mode::Daemon).then(|| self.info.clone());
        crate::answer::status(&self.journal.handle(), &self.loaded(), daemon, running, &self.secrets)
    }

    /// Prometheus text.
    pub(crate) fn metrics_text(&self) -> Result<String, DaemonError> {
        let threads = self.journal.handle().list_threads()?;
        Ok(self.metrics.render(&threads, lock(&self.active).len()))
    }

    /// Stop: no new turns; wait up to `grace` for those in progress, then cut them off at their next await (a
    /// cut turn's committed steps stay, its queued messages are committed, and the next start resumes it).
    pub(crate) fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        while !lock(&self.active).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (branch, handle) in lock(&self.turns).drain() {
            tracing::warn!(target: "hal_daemon", %branch, "turn cut off by the stop; it resumes at the next start");
            handle.abort();
        }
        // The cut turns' guards release their branches as their tasks are dropped.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !lock(&self.active).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
