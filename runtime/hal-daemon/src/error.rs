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
    /// An idempotency key came again with a different message.
    #[error("the idempotency key {0:?} was used for a different message; use a new key for a new message")]
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
    /// The thread runs a turn; the command must wait for its end.
    #[error("{0} is running a turn; try again when it ends")]
    Busy(String),
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
    /// Something else failed (the HTTP server, a watcher).
    #[error("{0}")]
    Other(String),
}

impl DaemonError {
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> DaemonError {
        DaemonError::Io { what, path: path.to_owned(), source }
    }
}
