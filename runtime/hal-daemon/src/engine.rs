//! The engine that takes turns in a home repo, and its two ways to run: as the daemon ([`Daemon::run`]: every
//! thread, the refs watched, the HTTP API served) or inside one `hal` command ([`crate::handle`]: only the
//! threads that command talks to, no API). Both hold `.git/hal/daemon.lock` while they live, so two processes
//! never take turns in one repo at once, and both take turns with the same code ([`Shared`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hal_runner::SharedHome;
use hal_store::Home;
use tokio::sync::{broadcast, watch};

use crate::daemon::{DaemonOptions, NOTICE_BUFFER, Shared};
use crate::error::DaemonError;
use crate::files;
use crate::loaded::{self, ModelSource};
use crate::lock::{DaemonLock, Holder};
use crate::metrics::Metrics;
use crate::protocol::DaemonInfo;

/// Which threads an engine takes turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every thread whose tip asks for one (the daemon).
    Daemon,
    /// Only the threads its own commands wrote to (a `hal` command running turns in its own process).
    InProcess,
}

/// A started engine; [`Engine::stop`] ends it.
pub(crate) struct Engine {
    pub(crate) shared: Arc<Shared>,
    pub(crate) runtime: tokio::runtime::Runtime,
    shutdown: watch::Sender<bool>,
    scanner: Option<std::thread::JoinHandle<()>>,
    watcher: Option<notify::RecommendedWatcher>,
    hal_dir: PathBuf,
    _lock: DaemonLock,
}

/// Take the turn-taker's lock of the home repo at `path` for `by`.
fn lock(path: &Path, by: Holder) -> Result<DaemonLock, DaemonError> {
    let home = Home::open(path)?;
    DaemonLock::acquire(&files::hal_dir(home.repo().common_dir()), by)
}

/// The async runtime of an engine, with `workers` worker threads (0: one per core).
pub(crate) fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, DaemonError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build().map_err(|e| DaemonError::start("cannot start the async runtime", e))
}

impl Engine {
    /// Take the lock of the home repo at `path`, load what `main` holds, and start taking turns on `runtime`.
    /// `address` is where the daemon's API listens (`None` in process); with it, `.git/hal/daemon.json` and a
    /// new token are written for clients.
    pub(crate) fn start(
        path: &Path,
        options: &DaemonOptions,
        runtime: tokio::runtime::Runtime,
        address: Option<String>,
    ) -> Result<Engine, DaemonError> {
        let lock = match address {
            Some(_) => lock(path, Holder::Daemon)?,
            None => lock(path, Holder::Command)?,
        };
        Engine::start_locked(path, options, runtime, address, lock)
    }

    /// [`Engine::start`] with the lock already taken.
    fn start_locked(
        path: &Path,
        options: &DaemonOptions,
        runtime: tokio::runtime::Runtime,
        address: Option<String>,
        lock: DaemonLock,
    ) -> Result<Engine, DaemonError> {
        let mode = if address.is_some() { Mode::Daemon } else { Mode::InProcess };
        let home = Home::open(path)?;
        let root = home.path().to_owned();
        let hal_dir = files::hal_dir(home.repo().common_dir());
        let git_dir = home.repo().common_dir().to_owned();
        // What a daemon that died left is wrong now: no client may use it.
        DaemonInfo::remove(&hal_dir);
        let owner = home.resolve_actor(None)?;
        let token = match mode {
            Mode::Daemon => files::new_token(&hal_dir)?,
            Mode::InProcess => String::new(),
        };
        let info = DaemonInfo {
            pid: std::process::id(),
            address: address.unwrap_or_else(|| "in-process".to_owned()),
            started: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let models = match options.models.clone() {
            Some(models) => ModelSource::Fixed(models),
            None => ModelSource::Live(
                hal_model::Client::new(hal_model::ClientOptions::default())
                    .map_err(|e| DaemonError::start("cannot make the model client", e))?,
            ),
        };
        let (wake_tx, wake_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let journal = SharedHome::new(home);
        let (notices, _) = broadcast::channel(NOTICE_BUFFER);
        let shared = Arc::new(Shared {
            journal: journal.clone(),
            owner,
            token,
            info: info.clone(),
            notices,
            metrics: Metrics::default(),
            shutdown,
            mode,
            root,
            loaded: RwLock::new(Arc::new(loaded::empty(&journal))),
            active: Mutex::default(),
            turns: Mutex::default(),
            seen: Mutex::default(),
            answering: Mutex::default(),
            tickets: Mutex::default(),
            next_ticket: AtomicU64::new(1),
            recent_ends: Mutex::default(),
            joining: Mutex::default(),
            reported: Mutex::default(),
            reported_trust: Mutex::default(),
            halt: Mutex::default(),
            resume_pending: AtomicBool::new(false),
            built_while_halted: AtomicBool::new(false),
            keyed: crate::keys::KeyLocks::default(),
            reloading: Mutex::default(),
            wake: Mutex::new(wake_tx.clone()),
            models,
            secrets: hal_runner::secrets::lookup(),
            runtime: runtime.handle().clone(),
            stopping: AtomicBool::new(false),
        });
        if mode == Mode::Daemon {
            info.write(&hal_dir)?;
        }
        // A daemon's start is when a build that failed is tried again (a target or a toolchain installed since);
        // a command's own engine takes the failure kept, and says how to try again.
        // Halted, nothing is built (a build runs code): the first scan after the resume builds.
        let halted = shared.halted().is_some();
        shared.built_while_halted.store(halted, Ordering::SeqCst);
        shared.reload_with(match (halted, mode) {
            (true, _) => hal_sandbox::Builds::CachedOnly,
            (false, Mode::Daemon) => hal_sandbox::Builds::Retry,
            (false, Mode::InProcess) => hal_sandbox::Builds::Run,
        });
        if mode == Mode::InProcess
            && let Some(problem) = shared.loaded().problems.iter().find(|p| p.file == hal_store::CONFIG_FILE)
        {
            // The daemon keeps the previous settings in force and says so in the backchat; a command has no
            // previous settings, and says so at once.
            return Err(hal_runner::RunError::InvalidSettings(problem.error.clone()).into());
        }
        if mode == Mode::Daemon {
            shared.scan(true);
        }
        let watcher = match mode {
            Mode::Daemon => crate::watch::watch_refs(&git_dir, wake_tx),
            Mode::InProcess => None,
        };
        // In process, the engine's own commands wake the scanner; the poll only catches what they miss.
        let poll = if watcher.is_some() { options.poll } else { options.poll.min(Duration::from_millis(250)) };
        let scanner = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hal-scan".to_owned())
                .spawn(move || shared.scan_loop(&wake_rx, poll))
                .map_err(|e| DaemonError::start("cannot start the scanner", e))?
        };
        Ok(Engine { shared, runtime, shutdown: shutdown_tx, scanner: Some(scanner), watcher, hal_dir, _lock: lock })
    }

    /// No new turns, and every event stream ends (so a server can close its connections).
    pub(crate) fn begin_stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
    }

    /// Stop: wait up to `grace` for the turns in progress, then cut them off (each committed step stays; a cut
    /// turn resumes at the next start), and release the lock.
    pub(crate) fn stop(mut self, grace: Duration) {
        self.begin_stop();
        self.shared.stop(grace);
        self.shared.wake();
        if let Some(scanner) = self.scanner.take() {
            let _ = scanner.join();
        }
        drop(self.watcher.take());
        DaemonInfo::remove(&self.hal_dir);
        // Dropping the engine shuts the runtime down; the lock goes last.
        let Engine { runtime, _lock, .. } = self;
        runtime.shutdown_timeout(Duration::from_secs(1));
        drop(_lock);
    }
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
        // The lock first: a second daemon is told who runs, not that the port is taken.
        let lock = lock(path, Holder::Daemon)?;
        let runtime = runtime(options.workers)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", options.port)))
            .map_err(|e| DaemonError::start(format!("cannot listen on 127.0.0.1:{}", options.port), e))?;
        let address = listener.local_addr().map_err(|e| DaemonError::start("cannot read the API's address", e))?;
        let address = address.to_string();
        let engine = Engine::start_locked(path, &options, runtime, Some(address), lock)?;
        let info = engine.shared.info.clone();
        // Bound before anyone is told the daemon is ready: a scraper told so finds it listening.
        let metrics = metrics_listener(&engine);
        tracing::info!(target: "hal_daemon", address = %info.address, pid = info.pid, "daemon ready");
        ready(&info);
        let stopper = engine.shared.clone();
        let shutdown = engine.shutdown.clone();
        let stop = async move {
            tokio::select! {
                () = stop => {}
                () = stop_signal() => {}
            }
            // No new turns, and every event stream ends, so the server can close its connections.
            stopper.stopping.store(true, Ordering::SeqCst);
            let _ = shutdown.send(true);
        };
        let (shared, metrics_shared) = (engine.shared.clone(), engine.shared.clone());
        let served = engine.runtime.block_on(async move {
            let Some(metrics) = metrics else { return crate::api::serve(shared, listener, stop).await };
            // The metrics listener stops when the API does, however the API ends.
            let (stopped, mut stopping) = watch::channel(false);
            let api = async move {
                let served = crate::api::serve(shared.clone(), listener, stop).await;
                let _ = stopped.send(true);
                served
            };
            let metrics_stop = async move {
                let _ = stopping.wait_for(|stopped| *stopped).await;
            };
            let (served, metrics) = tokio::join!(api, crate::api::serve_metrics(metrics_shared, metrics, metrics_stop));
            if let Err(error) = metrics {
                tracing::error!(target: "hal_daemon", %error, "the metrics listener failed");
            }
            served
        });
        engine.stop(options.grace);
        served
    }
}

/// The listener of `metrics.listen` in `hal.yaml`, when it names one (read at start). One that cannot be bound is
/// logged, not fatal: the API and the turns matter more than a scrape.
fn metrics_listener(engine: &Engine) -> Option<tokio::net::TcpListener> {
    let address = engine.shared.loaded().runner.catalog().settings.metrics.listen_address()?;
    match engine.runtime.block_on(tokio::net::TcpListener::bind(address)) {
        Ok(listener) => {
            tracing::info!(target: "hal_daemon", %address, "serving /metrics without a token");
            Some(listener)
        }
        Err(error) => {
            tracing::error!(target: "hal_daemon", %address, %error, "cannot serve /metrics at metrics.listen");
            None
        }
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
