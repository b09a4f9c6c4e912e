//! The daemon's life: lock, load, scan, run turns, serve, stop.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gix::ObjectId;
use hal_runner::model::{Models, SecretLookup, env_secret};
use hal_runner::{Event, Journal, Observer};
use hal_store::identity::HAL_ACTOR;
use hal_store::{Home, NewStep, StepKind, ThreadRef, ThreadStatus, ThreadSummary};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::command::{self, Command, Response};
use crate::error::DaemonError;
use crate::files::{self, DaemonInfo};
use crate::loaded::{self, Loaded, ModelSource, Problem};
use crate::lock::DaemonLock;
use crate::metrics::Metrics;
use crate::plan::{Plan, plan_for};

/// How long the scanner waits after a wake-up for more of the same burst.
const COALESCE: Duration = Duration::from_millis(10);

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
        /// The thread's id.
        thread: String,
        /// The new text.
        delta: String,
    },
    /// A turn started.
    TurnStarted {
        /// The thread's id.
        thread: String,
        /// Its branch.
        branch: String,
        /// The help it runs.
        help: String,
    },
    /// A turn ended.
    TurnEnded {
        /// The thread's id.
        thread: String,
        /// Its branch.
        branch: String,
        /// `DONE`, `PENDING`, `ERROR` or `NOCANDO`.
        status: String,
        /// The result, question or reason.
        output: String,
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
}

/// State shared by the watcher, the turns and the API.
pub(crate) struct Shared {
    pub(crate) journal: Journal,
    pub(crate) owner: String,
    pub(crate) token: String,
    pub(crate) info: DaemonInfo,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) metrics: Metrics,
    loaded: RwLock<Arc<Loaded>>,
    /// Branches with a turn in progress, with the messages queued behind it.
    active: Mutex<HashMap<String, Vec<Queued>>>,
    /// Abort handles of the turns in progress.
    turns: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// The tip each branch had when last scanned.
    seen: Mutex<HashMap<String, ObjectId>>,
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
        Daemon::run_until(path, options, ready, stop_signal())
    }

    /// [`Daemon::run`] until `stop` resolves (or a signal comes).
    pub fn run_until(
        path: &Path,
        options: DaemonOptions,
        ready: impl FnOnce(&DaemonInfo),
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        let home = Home::open(path)?;
        let hal_dir = files::hal_dir(home.repo().common_dir());
        let git_dir = home.repo().common_dir().to_owned();
        let _lock = DaemonLock::acquire(&hal_dir)?;
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
        let journal = Journal::new(home);
        let (notices, _) = broadcast::channel(4096);
        let secrets: SecretLookup = Arc::new(env_secret);
        let shared = Arc::new(Shared {
            journal: journal.clone(),
            owner,
            token,
            info: info.clone(),
            notices,
            metrics: Metrics::default(),
            loaded: RwLock::new(Arc::new(empty_loaded(&journal))),
            active: Mutex::default(),
            turns: Mutex::default(),
            seen: Mutex::default(),
            reported: Mutex::default(),
            wake: Mutex::new(wake_tx.clone()),
            models,
            secrets,
            runtime: runtime.handle().clone(),
            stopping: AtomicBool::new(false),
        });
        shared.reload()?;
        shared.scan(true);
        let _watcher = crate::watch::watch_refs(&git_dir, wake_tx);
        let poll = if _watcher.is_some() {
            options.poll.max(Duration::from_millis(100))
        } else {
            options.poll.min(Duration::from_millis(250))
        };
        let scanner = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hal-scan".to_owned())
                .spawn(move || shared.scan_loop(&wake_rx, poll))
                .map_err(|e| DaemonError::Other(format!("cannot start the scanner: {e}")))?
        };
        info.write(&hal_dir)?;
        tracing::info!(target: "hal_daemon", address = %info.address, pid = info.pid, "daemon ready");
        ready(&info);
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = stop_signal() => {}
            }
        };
        let served = runtime.block_on(crate::api::serve(shared.clone(), listener, stop));
        shared.stop(options.grace);
        let _ = scanner.join();
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

/// Before the first load: only the built-ins, no tools.
fn empty_loaded(journal: &Journal) -> Loaded {
    let runner = hal_runner::Runner::new(
        journal.clone(),
        Arc::new(hal_runner::Catalog::builtin()),
        hal_runner::tools::Toolbox::new(),
    );
    Loaded {
        main: None,
        runner,
        models: Arc::new(Arc::new(hal_runner::model::Recording::new(Vec::new(), Vec::new()))),
        problems: Vec::new(),
        isolates: Vec::new(),
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

    fn observer(self: &Arc<Self>) -> Observer {
        let weak = Arc::downgrade(self);
        Arc::new(move |event: &Event<'_>| {
            let Some(shared) = weak.upgrade() else { return };
            match event {
                Event::Text { thread, delta } => {
                    let _ =
                        shared.notices.send(Notice::Text { thread: (*thread).to_owned(), delta: (*delta).to_owned() });
                }
                Event::Step { thread, kind, facts, .. } => {
                    shared.metrics.step(kind, facts);
                    let _ = shared.notices.send(Notice::Tip { thread: (*thread).to_owned(), branch: String::new() });
                }
            }
        })
    }

    /// Load helps, agents, isolates and settings from `main`, keeping valid versions of files that broke, and
    /// report problems that are new in the owner's backchat and the log.
    fn reload(self: &Arc<Self>) -> Result<(), DaemonError> {
        let previous = self.loaded();
        let previous = previous.main.is_some().then_some(previous.as_ref());
        let weak = Arc::downgrade(self);
        let wake: crate::backchat::Wake = Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.wake();
            }
        });
        let loaded = loaded::load(&self.journal, previous, &self.models, wake, self.observer(), &self.secrets)?;
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
        Ok(())
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
        if text.is_empty() {
            return;
        }
        let result = self.journal.with(|home| {
            let backchat = home.backchat(&self.owner)?;
            let status =
                home.steps_back(&backchat).next().transpose()?.and_then(|s| s.status).unwrap_or(ThreadStatus::Open);
            home.append_step(HAL_ACTOR, &backchat, &NewStep::new(StepKind::System, text.trim_end(), status))
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
            // A burst of events (every commit is one) makes one scan: the daemon's own commits alone would
            // otherwise scan the refs a thousand times a second under load.
            std::thread::sleep(COALESCE);
            while wake.try_recv().is_ok() {}
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            self.scan(false);
        }
    }

    /// Look at every ref: reload when `main` moved; plan every thread whose tip moved.
    fn scan(self: &Arc<Self>, startup: bool) {
        let refs = self.journal.with(|home| -> hal_store::Result<_> { Ok((home.main_tip()?, home.threads()?)) });
        let (main, threads) = match refs {
            Ok(refs) => refs,
            Err(error) => {
                tracing::error!(target: "hal_daemon", %error, "cannot read the refs");
                return;
            }
        };
        if main != self.loaded().main
            && let Err(error) = self.reload()
        {
            tracing::error!(target: "hal_daemon", %error, "cannot load main");
        }
        for thread in threads {
            {
                let mut seen = lock(&self.seen);
                if seen.get(&thread.branch) == Some(&thread.tip) {
                    continue;
                }
                seen.insert(thread.branch.clone(), thread.tip);
            }
            let _ = self.notices.send(Notice::Tip { thread: thread.id.clone(), branch: thread.branch.clone() });
            if self.stopping.load(Ordering::SeqCst) || lock(&self.active).contains_key(&thread.branch) {
                continue;
            }
            match self.journal.with(|home| plan_for(home, &thread, startup)) {
                Ok(Plan::Nothing) => {}
                Ok(Plan::Turn { help, agent, actor }) => self.start_turn(thread, help, agent, actor),
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

    fn start_turn(self: &Arc<Self>, thread: ThreadRef, help: String, agent: String, actor: String) {
        lock(&self.active).insert(thread.branch.clone(), Vec::new());
        let shared = self.clone();
        let branch = thread.branch.clone();
        let mut turns = lock(&self.turns);
        let handle = self.runtime.spawn(async move { shared.turn(thread, help, agent, actor).await });
        turns.insert(branch, handle.abort_handle());
    }

    async fn turn(self: Arc<Self>, thread: ThreadRef, help: String, agent: String, actor: String) {
        let _ = self.notices.send(Notice::TurnStarted {
            thread: thread.id.clone(),
            branch: thread.branch.clone(),
            help: help.clone(),
        });
        tracing::info!(target: "hal_daemon", branch = %thread.branch, %help, %agent, "turn starts");
        let started = Instant::now();
        let loaded = self.loaded();
        let runner = loaded.runner.clone().with_agent(&agent);
        let (status, output) = match runner.resume(loaded.models.clone(), &thread, &actor, &help).await {
            Ok(outcome) => (outcome.status.as_str().to_owned(), outcome.output),
            Err(error) => {
                let text = format!("could not run help `{help}` as agent `{agent}`: {error}");
                tracing::warn!(target: "hal_daemon", branch = %thread.branch, %error, "turn failed");
                let thread = self.journal.with(|home| home.resolve_thread(&thread.branch)).unwrap_or(thread.clone());
                self.note(&thread, &text, ThreadStatus::Error);
                ("ERROR".to_owned(), text)
            }
        };
        self.metrics.turn(&status, started.elapsed().as_secs_f64());
        tracing::info!(target: "hal_daemon", branch = %thread.branch, %status, "turn ends");
        // Release the branch, then add the messages that waited for it: the scan answers them.
        lock(&self.turns).remove(&thread.branch);
        let queued = lock(&self.active).remove(&thread.branch).unwrap_or_default();
        for message in queued {
            let step = command::message_step(&message.text, message.help.as_deref(), message.agent.as_deref());
            let result = self.journal.with(|home| {
                let current = home.resolve_thread(&thread.branch)?;
                home.append_step(&message.actor, &current, &step)
            });
            if let Err(error) = result {
                tracing::error!(target: "hal_daemon", branch = %thread.branch, %error, "cannot add a queued message");
            }
        }
        let _ = self.notices.send(Notice::TurnEnded { thread: thread.id, branch: thread.branch, status, output });
        self.wake();
    }

    /// Apply a command from the API: a message to a thread in the middle of a turn waits for the turn's end.
    pub(crate) fn command(&self, command: &Command) -> Result<Response, DaemonError> {
        if let Command::Say { actor, thread, text, help, agent } = command {
            if text.trim().is_empty() {
                return Err(hal_store::StoreError::InvalidText("the message is empty").into());
            }
            let (who, target) = self.journal.with(|home| -> hal_store::Result<_> {
                let who = home.resolve_actor(actor.as_deref())?;
                let target = command::thread_of(home, &who, thread)?;
                Ok((who, target))
            })?;
            let mut active = lock(&self.active);
            if let Some(queue) = active.get_mut(&target.branch) {
                queue.push(Queued { actor: who, text: text.clone(), help: help.clone(), agent: agent.clone() });
                return Ok(Response::Said { thread: target, message: None, queued: true });
            }
        }
        let response = self.journal.with(|home| command::apply(home, command))?;
        self.wake();
        Ok(response)
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
    /// cut turn's committed steps stay, and the next start resumes it).
    fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake();
        let deadline = Instant::now() + grace;
        while !lock(&self.active).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (branch, handle) in lock(&self.turns).drain() {
            tracing::warn!(target: "hal_daemon", %branch, "turn cut off by the stop; it resumes at the next start");
            handle.abort();
        }
    }
}
