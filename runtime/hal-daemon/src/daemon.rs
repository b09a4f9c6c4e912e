//! The daemon's life: lock, load, scan, run turns, serve, stop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gix::ObjectId;
use hal_runner::conversation::is_persons_step;
use hal_runner::model::{Models, SecretLookup};
use hal_runner::{Event, Journal, Observer};
use hal_store::identity::HAL_ACTOR;
use hal_store::{Home, NewStep, StepKind, ThreadRef, ThreadStatus, ThreadSummary};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::command::{self, Command, Response};
use crate::error::DaemonError;
use crate::files::{self, DaemonInfo};
use crate::loaded::{self, Loaded, ModelSource, Problem};
use crate::lock::DaemonLock;
use crate::metrics::Metrics;
use crate::plan::{Plan, plan_for};

/// How long the scanner waits after a wake-up for more of the same burst.
const COALESCE: Duration = Duration::from_millis(10);
/// Notices kept for slow event-stream readers.
const NOTICE_BUFFER: usize = 16_384;

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

/// What happens in the daemon, as the API streams it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
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
        /// `DONE`, `PENDING`, `ERROR` or `NOCANDO`.
        status: String,
        /// The result, question or reason.
        output: String,
        /// The tickets of the messages it answered.
        tickets: Vec<u64>,
    },
}

/// The daemon's state as `hal status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Where it runs.
    pub info: DaemonInfo,
    /// The commit of `main` in force.
    pub main: Option<String>,
    /// Helps in force, by name.
    pub helps: Vec<String>,
    /// Isolates offered, by name.
    pub isolates: Vec<String>,
    /// Files on `main` that do not load.
    pub problems: Vec<Problem>,
    /// Branches with a turn in progress.
    pub running: Vec<String>,
    /// Threads waiting for a person (`pending`).
    pub waiting: Vec<ThreadSummary>,
}

/// A message that arrived while its thread was running a turn.
struct Queued {
    actor: String,
    text: String,
    help: Option<String>,
    agent: Option<String>,
    /// HAL relays it from a run, at the end of a chain this long.
    relayed: Option<u32>,
    ticket: u64,
}

/// State shared by the watcher, the turns and the API.
pub(crate) struct Shared {
    pub(crate) journal: Journal,
    pub(crate) owner: String,
    pub(crate) token: String,
    pub(crate) info: DaemonInfo,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) metrics: Metrics,
    /// Becomes `true` when the daemon stops: event streams end.
    pub(crate) shutdown: watch::Receiver<bool>,
    root: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
    /// Branches with a turn in progress, with the messages queued behind it.
    active: Mutex<HashMap<String, Vec<Queued>>>,
    /// Abort handles of the turns in progress.
    turns: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// The tip each idle branch had when last scanned.
    seen: Mutex<HashMap<String, ObjectId>>,
    /// Tickets of messages committed and not answered yet, by branch.
    tickets: Mutex<HashMap<String, Vec<u64>>>,
    next_ticket: AtomicU64,
    /// The end of the last turn of each branch, for a reader that missed it.
    last_end: Mutex<HashMap<String, Notice>>,
    /// Problems already reported in the owner's backchat.
    reported: Mutex<Vec<Problem>>,
    wake: Mutex<Sender<()>>,
    models: ModelSource,
    secrets: SecretLookup,
    runtime: tokio::runtime::Handle,
    stopping: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running daemon.
pub struct Daemon;

impl Daemon {
    /// Run the daemon for the home repo at `path` until SIGINT or SIGTERM. `ready` is called once the API
    /// listens, with what the daemon published in `.git/hal/daemon.json`.
    pub fn run(path: &Path, options: DaemonOptions, ready: impl FnOnce(&DaemonInfo)) -> Result<(), DaemonError> {
        Daemon::run_until(path, options, ready, std::future::pending())
    }

    /// [`Daemon::run`] until `stop` resolves (or a signal comes).
    pub fn run_until(
        path: &Path,
        options: DaemonOptions,
        ready: impl FnOnce(&DaemonInfo),
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        let home = Home::open(path)?;
        let root = home.path().to_owned();
        let hal_dir = files::hal_dir(home.repo().common_dir());
        let git_dir = home.repo().common_dir().to_owned();
        let _lock = DaemonLock::acquire(&hal_dir)?;
        // What a daemon that died left is wrong now: no client may use it.
        DaemonInfo::remove(&hal_dir);
        let owner = home.resolve_actor(None)?;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if options.workers > 0 {
            builder.worker_threads(options.workers);
        }
        let runtime = builder.enable_all().build().map_err(|e| DaemonError::Other(format!("async runtime: {e}")))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", options.port)))
            .map_err(|e| DaemonError::Other(format!("cannot listen on 127.0.0.1:{}: {e}", options.port)))?;
        let address = listener.local_addr().map_err(|e| DaemonError::Other(e.to_string()))?.to_string();
        let token = files::new_token(&hal_dir)?;
        let info = DaemonInfo {
            pid: std::process::id(),
            address,
            started: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let models = match options.models.clone() {
            Some(models) => ModelSource::Fixed(models),
            None => ModelSource::Live(
                hal_model::Client::new(hal_model::ClientOptions::default())
                    .map_err(|e| DaemonError::Other(e.to_string()))?,
            ),
        };
        let (wake_tx, wake_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let journal = Journal::new(home);
        let (notices, _) = broadcast::channel(NOTICE_BUFFER);
        let shared = Arc::new(Shared {
            journal: journal.clone(),
            owner,
            token,
            info: info.clone(),
            notices,
            metrics: Metrics::default(),
            shutdown,
            root,
            loaded: RwLock::new(Arc::new(loaded::empty(&journal))),
            active: Mutex::default(),
            turns: Mutex::default(),
            seen: Mutex::default(),
            tickets: Mutex::default(),
            next_ticket: AtomicU64::new(1),
            last_end: Mutex::default(),
            reported: Mutex::default(),
            wake: Mutex::new(wake_tx.clone()),
            models,
            secrets: hal_runner::secrets::lookup(),
            runtime: runtime.handle().clone(),
            stopping: AtomicBool::new(false),
        });
        info.write(&hal_dir)?;
        shared.reload();
        shared.scan(true);
        let watcher = crate::watch::watch_refs(&git_dir, wake_tx);
        let poll = if watcher.is_some() { options.poll } else { options.poll.min(Duration::from_millis(250)) };
        let scanner = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hal-scan".to_owned())
                .spawn(move || shared.scan_loop(&wake_rx, poll))
                .map_err(|e| DaemonError::Other(format!("cannot start the scanner: {e}")))?
        };
        tracing::info!(target: "hal_daemon", address = %info.address, pid = info.pid, "daemon ready");
        ready(&info);
        let stopper = shared.clone();
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = stop_signal() => {}
            }
            // No new turns, and every event stream ends, so the server can close its connections.
            stopper.stopping.store(true, Ordering::SeqCst);
            let _ = shutdown_tx.send(true);
        };
        let served = runtime.block_on(crate::api::serve(shared.clone(), listener, stop));
        shared.stop(options.grace);
        shared.wake();
        let _ = scanner.join();
        drop(watcher);
        DaemonInfo::remove(&hal_dir);
        runtime.shutdown_timeout(Duration::from_secs(1));
        served
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(target: "hal_daemon", %error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!(target: "hal_daemon", "stopping");
}

/// Ends a turn however its task ends (finished, failed, panicked or cut off by a stop): the branch is released
/// and the messages queued behind the turn are committed, so none is lost.
struct TurnGuard {
    shared: Arc<Shared>,
    branch: String,
    tickets: Vec<u64>,
    ended: Option<(String, String)>,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        let (status, output) = self.ended.take().unwrap_or_else(|| {
            ("ERROR".to_owned(), "the turn was cut off; the daemon resumes it when it starts again".to_owned())
        });
        self.shared.end_turn(&self.branch, std::mem::take(&mut self.tickets), status, output);
    }
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
    pub(crate) fn last_end(&self, branch: &str) -> Option<Notice> {
        lock(&self.last_end).get(branch).cloned()
    }

    fn observer(self: &Arc<Self>) -> Observer {
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
                Event::Step { thread, branch, kind, facts, .. } => {
                    shared.metrics.step(kind, facts);
                    let (thread, branch) = ((*thread).to_owned(), (*branch).to_owned());
                    let _ = shared.notices.send(Notice::Tip { thread, branch });
                }
            }
        })
    }

    /// Load helps, agents, isolates and settings from `main`, keeping valid versions of files that broke, and
    /// report problems that are new in the owner's backchat and the log.
    fn reload(self: &Arc<Self>) {
        let previous = self.loaded();
        let previous = previous.main.is_some().then_some(previous.as_ref());
        let weak = Arc::downgrade(self);
        let dispatch: crate::backchat::Dispatch = Arc::new(move |_: &Journal, command: &Command| {
            let shared = weak.upgrade().ok_or("the daemon is stopping")?;
            shared.command(command).map_err(|e| e.to_string())
        });
        let loaded = match loaded::load(
            &self.root,
            &self.journal,
            previous,
            &self.models,
            dispatch,
            self.observer(),
            &self.secrets,
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
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        self.report(&problems);
    }

    /// Tell the owner, in their backchat, about problems not reported yet, and about fixed ones.
    fn report(&self, problems: &[Problem]) {
        let mut reported = lock(&self.reported);
        let new: Vec<&Problem> = problems.iter().filter(|p| !reported.contains(p)).collect();
        let fixed: Vec<&Problem> = reported.iter().filter(|old| !problems.iter().any(|p| p.file == old.file)).collect();
        let mut text = String::new();
        for problem in &new {
            tracing::error!(target: "hal_daemon", file = %problem.file, error = %problem.error, "invalid file on main");
            text.push_str(&format!(
                "{} on main is invalid: {}{}\n",
                problem.file,
                problem.error,
                if problem.previous_in_force { " (its previous valid version stays in force)" } else { "" }
            ));
        }
        for problem in &fixed {
            tracing::info!(target: "hal_daemon", file = %problem.file, "file on main loads again");
            text.push_str(&format!("{} on main loads again.\n", problem.file));
        }
        *reported = problems.to_vec();
        drop(reported);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let result = self.journal.with(|home| -> hal_store::Result<()> {
            let backchat = home.backchat(&self.owner)?;
            // A restart finds the same problems: the backchat already says so.
            let said = home.steps_back(&backchat).take(50).filter_map(Result::ok).any(|step| {
                StepKind::parse_name(&step.kind) == StepKind::System && step.actor == HAL_ACTOR && step.text == text
            });
            if said {
                return Ok(());
            }
            let status = home.steps_back(&backchat).next().transpose()?.and_then(|s| s.status);
            let status = status.filter(|s| *s != ThreadStatus::Running).unwrap_or(ThreadStatus::Open);
            home.append_step(HAL_ACTOR, &backchat, &NewStep::new(StepKind::System, text, status)).map(drop)
        });
        if let Err(error) = result {
            tracing::error!(target: "hal_daemon", %error, "cannot report in the backchat");
        }
    }

    fn scan_loop(self: &Arc<Self>, wake: &Receiver<()>, poll: Duration) {
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
    fn scan(self: &Arc<Self>, startup: bool) {
        let refs = self.journal.with(|home| -> hal_store::Result<_> { Ok((home.main_tip()?, home.threads()?)) });
        let (main, threads) = match refs {
            Ok(refs) => refs,
            Err(error) => {
                tracing::error!(target: "hal_daemon", %error, "cannot read the refs");
                return;
            }
        };
        if main != self.loaded().main {
            self.reload();
        }
        for thread in threads {
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
            match self.journal.with(|home| plan_for(home, &thread, startup)) {
                Ok(Plan::Nothing) => {}
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

    /// A system step on `thread`.
    fn note(&self, thread: &ThreadRef, text: &str, status: ThreadStatus) {
        let step = NewStep::new(StepKind::System, text, status);
        if let Err(error) = self.journal.with(|home| home.append_step(HAL_ACTOR, thread, &step)) {
            tracing::error!(target: "hal_daemon", branch = %thread.branch, %error, "cannot write a system step");
        }
    }

    /// Start a turn on `branch` unless one runs there already.
    fn start_turn(self: &Arc<Self>, branch: String, why: Why) {
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
    fn end_turn(self: &Arc<Self>, branch: &str, tickets: Vec<u64>, status: String, output: String) {
        {
            let mut active = lock(&self.active);
            let queued = active.remove(branch).unwrap_or_default();
            for message in queued {
                let (writer, step) = command::message_step(
                    &message.actor,
                    &message.text,
                    message.help.as_deref(),
                    message.agent.as_deref(),
                    message.relayed,
                );
                let result = self.journal.with(|home| {
                    let current = home.resolve_thread(branch)?;
                    home.append_step(&writer, &current, &step)
                });
                match result {
                    Ok(_) => lock(&self.tickets).entry(branch.to_owned()).or_default().push(message.ticket),
                    Err(error) => {
                        tracing::error!(target: "hal_daemon", %branch, %error, "cannot add a queued message")
                    }
                }
            }
        }
        lock(&self.turns).remove(branch);
        lock(&self.seen).remove(branch);
        self.metrics.turn_ended(&status);
        tracing::info!(target: "hal_daemon", %branch, %status, "turn ends");
        let end = Notice::TurnEnded { branch: branch.to_owned(), status, output, tickets };
        lock(&self.last_end).insert(branch.to_owned(), end.clone());
        let _ = self.notices.send(end);
        self.wake();
    }

    /// Apply a command from the API or from HAL's own tools. A message to a thread in the middle of a turn
    /// waits for the turn's end; a merge of it is refused until then.
    pub(crate) fn command(&self, command: &Command) -> Result<Response, DaemonError> {
        let branch_of = |actor: &Option<String>, thread: &str| {
            self.journal.with(|home| -> hal_store::Result<(String, ThreadRef)> {
                let who = home.resolve_actor(actor.as_deref())?;
                let target = command::thread_of(home, &who, thread)?;
                Ok((who, target))
            })
        };
        match command {
            Command::Say { actor, thread, text, help, agent, relayed } => {
                if text.trim().is_empty() {
                    return Err(hal_store::StoreError::InvalidText("the message is empty").into());
                }
                let (who, target) = branch_of(actor, thread)?;
                let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst);
                // Held while the message is committed: a turn starting now sees it, one running queues it.
                let mut active = lock(&self.active);
                if let Some(queue) = active.get_mut(&target.branch) {
                    let queued = Queued {
                        actor: who,
                        text: text.clone(),
                        help: help.clone(),
                        agent: agent.clone(),
                        relayed: *relayed,
                        ticket,
                    };
                    queue.push(queued);
                    return Ok(Response::Said { thread: target, message: None, queued: true, ticket: Some(ticket) });
                }
                let (writer, step) = command::message_step(&who, text, help.as_deref(), agent.as_deref(), *relayed);
                let appended = self.journal.with(|home| home.append_step(&writer, &target, &step))?;
                lock(&self.tickets).entry(target.branch.clone()).or_default().push(ticket);
                drop(active);
                self.wake();
                let thread = ThreadRef { tip: appended.commit, ..target };
                Ok(Response::Said { thread, message: Some(appended), queued: false, ticket: Some(ticket) })
            }
            Command::Merge { actor, thread } => {
                let (_, target) = branch_of(actor, thread)?;
                if self.is_active(&target.branch) {
                    return Err(DaemonError::Busy(target.branch));
                }
                let response = self.journal.with(|home| command::apply(home, command))?;
                self.wake();
                Ok(response)
            }
            Command::ListThreads | Command::NewThread { .. } => {
                let response = self.journal.with(|home| command::apply(home, command))?;
                self.wake();
                Ok(response)
            }
        }
    }

    /// The state `hal status` shows.
    pub(crate) fn status(&self) -> Result<StatusReport, DaemonError> {
        let loaded = self.loaded();
        let threads = self.journal.with(|home| home.list_threads())?;
        let mut running: Vec<String> = lock(&self.active).keys().cloned().collect();
        running.sort();
        Ok(StatusReport {
            info: self.info.clone(),
            main: loaded.main.map(|m| m.to_string()),
            helps: loaded.runner.catalog().helps.iter().filter(|h| h.spec.is_some()).map(|h| h.name.clone()).collect(),
            isolates: loaded.isolates.clone(),
            problems: loaded.problems.clone(),
            running,
            waiting: threads.into_iter().filter(|t| t.status == ThreadStatus::Pending).collect(),
        })
    }

    /// Prometheus text.
    pub(crate) fn metrics_text(&self) -> Result<String, DaemonError> {
        let threads = self.journal.with(|home| home.list_threads())?;
        Ok(self.metrics.render(&threads, lock(&self.active).len()))
    }

    /// Stop: no new turns; wait up to `grace` for those in progress, then cut them off at their next await (a
    /// cut turn's committed steps stay, its queued messages are committed, and the next start resumes it).
    fn stop(&self, grace: Duration) {
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

/// Why a turn starts.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// A scan found a message (or, at startup, an interrupted run) at the tip.
    Scan {
        /// Whether this is the first scan after the start.
        startup: bool,
    },
    /// A person's commit landed in the middle of the previous turn, which did not see it.
    FollowUp,
}

/// One turn on the guard's branch: re-read the tip (messages committed since the scan planned it are part of
/// this turn), run the help, and if a person's commit landed in the middle of the turn, answer it too.
async fn turn(mut guard: TurnGuard, why: Why) {
    let shared = guard.shared.clone();
    let branch = guard.branch.clone();
    let planned = shared.journal.with(|home| -> hal_store::Result<_> {
        let thread = home.resolve_thread(&branch)?;
        let plan = match why {
            Why::Scan { startup } => plan_for(home, &thread, startup)?,
            Why::FollowUp => {
                let (help, agent) = crate::plan::next_turn(home, &thread)?;
                Plan::Turn { help, agent, actor: thread.actor.clone() }
            }
        };
        Ok((thread, plan))
    });
    let (thread, help, agent, actor) = match planned {
        Ok((thread, Plan::Turn { help, agent, actor })) => (thread, help, agent, actor),
        Ok(_) => {
            guard.ended = Some(("DONE".to_owned(), "nothing to answer".to_owned()));
            return;
        }
        Err(error) => {
            guard.ended = Some(("ERROR".to_owned(), error.to_string()));
            return;
        }
    };
    guard.tickets = lock(&shared.tickets).remove(&branch).unwrap_or_default();
    let _ = shared.notices.send(Notice::TurnStarted {
        branch: branch.clone(),
        help: help.clone(),
        tickets: guard.tickets.clone(),
    });
    tracing::info!(target: "hal_daemon", %branch, %help, %agent, "turn starts");
    let started = Instant::now();
    let loaded = shared.loaded();
    let runner = loaded.runner.clone().with_agent(&agent);
    let (status, output, end) = match runner.resume(loaded.models.clone(), &thread, &actor, &help).await {
        Ok(outcome) => (outcome.status.as_str().to_owned(), outcome.output, Some(outcome.commit)),
        Err(error) => {
            let text = format!("could not run help `{help}` as agent `{agent}`: {error}");
            tracing::warn!(target: "hal_daemon", %branch, %error, "turn failed");
            let current = shared.journal.with(|home| home.resolve_thread(&branch)).unwrap_or(thread.clone());
            shared.note(&current, &text, ThreadStatus::Error);
            ("ERROR".to_owned(), text, None)
        }
    };
    shared.metrics.turn_seconds(started.elapsed().as_secs_f64());
    let pushed = end.is_some_and(|end| {
        shared.journal.with(|home| persons_commit_between(home, &branch, thread.tip, end)).unwrap_or(false)
    });
    guard.ended = Some((status, output));
    if pushed {
        // The turn did not see it: read the thread again from its commits and answer in a follow-up turn.
        runner.forget(&branch);
        drop(guard);
        shared.start_turn(branch, Why::FollowUp);
    }
}

/// Whether a person's message or plain commit sits between `from` (exclusive) and `to` on `branch`: something
/// pushed while a turn ran.
fn persons_commit_between(home: &Home, branch: &str, from: ObjectId, to: ObjectId) -> hal_store::Result<bool> {
    let thread = ThreadRef { id: String::new(), actor: String::new(), branch: branch.to_owned(), tip: to };
    for step in home.steps_back(&thread).take(10_000) {
        let step = step?;
        if step.commit == from {
            return Ok(false);
        }
        if is_persons_step(&step) {
            return Ok(true);
        }
    }
    Ok(false)
}
