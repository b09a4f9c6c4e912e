//! The store's error type.
//!
//! Every variant names what it was working on (a ref, a thread id, a path), so that the one line a user sees
//! is enough to act on.

use std::path::PathBuf;

/// Anything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory is not inside a git repository.
    #[error("{path} is not inside a git repository (run `hal init` there to make it a home repo)")]
    NotARepository {
        /// The directory that was searched from.
        path: PathBuf,
        /// What gix said.
        #[source]
        source: gix::Error,
    },
    /// The repository exists but `hal init` has not prepared it.
    #[error("{path} is not a HAL home repo: {reason} (run `hal init`)")]
    NotAHomeRepo {
        /// The repository's work tree or git dir.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// `hal init` cannot decide which branch is `main`.
    #[error("{0}")]
    NoMainBranch(String),
    /// An actor name that cannot be used in a branch name.
    #[error("invalid actor name {name:?}: {reason}")]
    InvalidActor {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No actor could be determined for the person running the command.
    #[error("cannot tell who you are: set `git config user.name`, or `HAL_ACTOR`, or run `hal init --actor <name>`")]
    UnknownActor,
    /// No thread matches an id or prefix.
    #[error("no thread matches {0:?} (see `hal thread list`)")]
    UnknownThread(String),
    /// More than one thread matches a prefix.
    #[error("thread id {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousThread {
        /// The prefix the user gave.
        prefix: String,
        /// Some of the matching ids.
        candidates: Vec<String>,
    },
    /// A revision (ref name, commit id) did not resolve.
    #[error("cannot resolve {spec:?} to a commit")]
    UnknownRevision {
        /// The revision as given.
        spec: String,
        /// What gix said.
        #[source]
        source: gix::Error,
    },
    /// A commit given as a fork point is not a step of the thread.
    #[error("commit {commit} is not a step of thread {thread}")]
    NotAStep {
        /// The commit as given.
        commit: String,
        /// The thread it was expected in.
        thread: String,
    },
    /// A path inside a thread's tree that cannot be used.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Step text that cannot be stored.
    #[error("invalid step text: {0}")]
    InvalidText(&'static str),
    /// A file larger than its reader takes.
    #[error("{path} is {size} bytes; at most {most} bytes are read of one file")]
    TooLarge {
        /// The file, in its tree.
        path: String,
        /// Its size.
        size: u64,
        /// The most this reader takes.
        most: u64,
    },
    /// A commit on a thread branch whose message HAL cannot read.
    #[error("commit {commit} on {branch} is not a HAL step: {reason}")]
    MalformedStep {
        /// The commit.
        commit: String,
        /// The branch it was reached from.
        branch: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The thread's branch no longer grows from where HAL last left it (reset back, pointed at another line):
    /// nothing is written on it until an owner unfreezes it.
    #[error(
        "{thread} is frozen: its branch was moved from {left}, where HAL left it, to {found}, which does not grow \
         from it along first parents (reset back, pointed at another line, or a `git pull` that merged: use `git \
         pull --rebase` on thread branches); look at it (`hal thread log {thread}`), then an owner's `hal thread \
         unfreeze {thread}` lets HAL go on from there"
    )]
    Frozen {
        /// The thread's id.
        thread: String,
        /// Where HAL left the branch.
        left: gix::ObjectId,
        /// Where it is now.
        found: gix::ObjectId,
    },
    /// A step meant for one tip of a thread found another there: nothing was written.
    #[error("{branch} moved on (from {expected} to {found}); nothing was written")]
    Moved {
        /// The thread's branch.
        branch: String,
        /// The tip the step was meant for.
        expected: gix::ObjectId,
        /// The tip found.
        found: gix::ObjectId,
    },
    /// A compare-and-swap on a ref kept failing.
    #[error("could not update {name} after {attempts} attempts: {reason}")]
    RefUpdateFailed {
        /// The full ref name.
        name: String,
        /// How often it was tried.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// Syncing a checked-out `main` with its new commit failed; the ref was put back.
    #[error(
        "main is checked out in {workdir} and its working tree could not be updated, so nothing changed:\n{detail}"
    )]
    WorktreeSync {
        /// The work tree.
        workdir: PathBuf,
        /// What git said.
        detail: String,
    },
    /// A git operation failed.
    #[error("{context}")]
    Git {
        /// What was being done.
        context: String,
        /// What gix said.
        #[source]
        source: gix::Error,
    },
    /// Running the `git` program failed.
    #[error("running `git {args}` failed: {detail}")]
    GitCommand {
        /// The arguments.
        args: String,
        /// What went wrong.
        detail: String,
    },
    /// A file HAL reads from a branch does not validate (an actor file, say).
    #[error("{0}")]
    InvalidFile(String),
    /// A key could not be read, made or used.
    #[error("{}{reason}", if path.as_os_str().is_empty() { String::new() } else { format!("key {}: ", path.display()) })]
    Key {
        /// The key's file (empty when the problem is not one file).
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// File-system access around the repository failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attach a context message to gix errors.
pub(crate) trait GixContext<T> {
    /// Wrap the error as [`StoreError::Git`] with the message made by `context`.
    fn git_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<gix::Error>> GixContext<T> for std::result::Result<T, E> {
    fn git_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Git { context: context(), source: source.into() })
    }
}

/// Attach a context message to I/O errors.
pub(crate) trait IoContext<T> {
    /// Wrap the error as [`StoreError::Io`] with the message made by `context`.
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Io { context: context(), source })
    }
}
