//! Errors of the daemon and of talking to it.

/// What can go wrong starting, running or reaching a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another process holds the home repo's daemon lock.
    #[error("a daemon is already running in this home repo (pid {pid}); stop it first (kill {pid})")]
    AlreadyRunning {
        /// The holder's process id, as it wrote it into the lock file.
        pid: String,
    },
    /// A `hal` command takes turns in this home repo in its own process.
    #[error(
        "a hal command (pid {pid}) is taking turns in this home repo in its own process; wait for it to end, \
         then try again (a `hal daemon` started then takes the turns of every command)"
    )]
    TurnsInProcess {
        /// The holder's process id.
        pid: String,
    },
    /// An idempotency key came again with a different message (or call).
    #[error("the idempotency key {0:?} was used for a different request; use a new key for a new one")]
    KeyReused(String),
    /// An idempotency key came with a command that sends no message.
    #[error("an idempotency key goes with a message: give the command a text")]
    KeyWithoutMessage,
    /// A file under `.git/hal/` could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The home repo could not be read or written.
    #[error(transparent)]
    Store(#[from] hal_store::StoreError),
    /// The runner refused something.
    #[error(transparent)]
    Run(#[from] hal_runner::RunError),
    /// Who signed what could not be read.
    #[error("{0}")]
    Trust(String),
    /// Only an owner may do this, and nothing proves the asker is one.
    #[error("{0}")]
    NotOwner(String),
    /// `hal.yaml` names members, and the asker is neither one nor an owner.
    #[error("{0}")]
    NotMember(String),
    /// An owner halted HAL: nothing that starts work is accepted.
    #[error("{0}; an owner lifts it with `hal resume`")]
    Halted(String),
    /// An answer to an approval request on a thread that waits for none.
    #[error("{0}")]
    NoApproval(String),
    /// `unfreeze` of a thread that is not frozen.
    #[error("{0} is not frozen: its branch grows from the step HAL wrote last")]
    NotFrozen(String),
    /// A message's signature does not check out: nothing was written.
    #[error("refused: {0}")]
    BadSignature(String),
    /// A tool could not be offered.
    #[error(transparent)]
    Tool(#[from] hal_runner::tools::InvalidSchema),
    /// The thread runs a turn; the command must wait for its end.
    #[error("{0} is running a turn; try again when it ends")]
    Busy(String),
    /// A command named a help that does not exist (`help-tests`: the help is what it asks about).
    #[error("{0}")]
    UnknownHelp(String),
    /// The sandbox did not start, so no isolate can run.
    #[error("the sandbox did not start: {0}")]
    NoSandbox(String),
    /// The daemon answered with an error.
    #[error("the daemon says: {0}")]
    Remote(String),
    /// The daemon could not be reached or answered nonsense.
    #[error("cannot talk to the daemon at {address}: {reason}")]
    Unreachable {
        /// Where it said it listens.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// A part of the daemon could not start or failed (the async runtime, the scanner, the HTTP API, a client).
    #[error("{what}: {reason}")]
    Start {
        /// What.
        what: String,
        /// Why.
        reason: String,
    },
    /// `.git/hal/daemon.json` cannot be used.
    #[error("{path}: {reason}")]
    InfoFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// No isolate or plugin of that name is offered.
    #[error("no isolate named {name:?} (known: {})", known.join(", "))]
    UnknownIsolate {
        /// The name asked for.
        name: String,
        /// The names offered.
        known: Vec<String>,
    },
    /// The isolate did not load.
    #[error("isolate {name:?} is invalid: {error}")]
    UnusableIsolate {
        /// Its name.
        name: String,
        /// Why it did not load.
        error: String,
    },
    /// A command's arguments are not what it takes.
    #[error("{0}")]
    BadArguments(String),
    /// A command waits for an answer that will not come (it sends no message, or turns stopped being taken).
    #[error("{0}")]
    NoAnswer(String),
}

impl DaemonError {
    pub(crate) fn start(what: impl Into<String>, reason: impl std::fmt::Display) -> DaemonError {
        DaemonError::Start { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> DaemonError {
        DaemonError::Io { what, path: path.to_owned(), source }
    }
}

impl From<hal_trust::TrustError> for DaemonError {
    fn from(error: hal_trust::TrustError) -> DaemonError {
        match error {
            hal_trust::TrustError::Store(error) => DaemonError::Store(error),
            other => DaemonError::Trust(other.to_string()),
        }
    }
}
