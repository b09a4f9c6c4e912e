//! The daemon's life: lock, load, scan, run turns, serve, stop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gix::ObjectId;
use hal_runner::SharedHome;
use hal_runner::model::{Models, SecretLookup};
use tokio::sync::{broadcast, watch};

use crate::engine::Mode;
use crate::error::DaemonError;
use crate::loaded::{Loaded, ModelSource};
use crate::metrics::Metrics;
use crate::protocol::{DaemonInfo, MessageSignature, Problem, StatusReport, TurnEnd};

mod commands;
mod scan;
mod turns;

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
    relayed: Option<crate::protocol::FromRun>,
    /// The person's signature of it, checked when it came.
    signature: Option<MessageSignature>,
    ticket: u64,
}

/// State shared by the scanner, the turns and the clients.
pub(crate) struct Shared {
    pub(crate) journal: SharedHome,
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
