//! HAL's store: everything HAL knows, as git objects.
//!
//! A *home repo* is a git repository prepared by [`Home::init`]: `main` holds accepted work and `hal.yaml`,
//! each actor has a branch `actors/<name>`, and each thread is a branch `threads/<actor>/<id>` whose commits
//! are its steps. Every change is one commit made with a compare-and-swap on its branch, so concurrent writers
//! never lose each other's work, and `git log` of a thread reads like a transcript (see [`step`] for the
//! message format).
//!
//! ```no_run
//! use hal_store::Home;
//! # fn main() -> Result<(), hal_store::StoreError> {
//! let (home, report) = Home::init(std::path::Path::new("/tmp/home"), Some("alice"))?;
//! let thread = home.new_thread(&report.actor, None, Some("design notes"))?;
//! home.say(&report.actor, &thread.id, "Summarise notes/ for me")?;
//! home.write_file(&report.actor, &thread.id, "notes/summary.md", b"# Summary\n", None)?;
//! for step in home.thread_log(&thread.id, None)? {
//!     println!("{} {}: {}", step.kind, step.actor, step.text);
//! }
//! home.merge_thread(&report.actor, &thread.id, &hal_store::Unguarded)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod actor_keys;
mod commit;
mod error;
pub mod files;
mod git_cli;
pub mod halt;
mod home;
pub mod identity;
pub mod keys;
mod local_record;
mod maintenance;
mod merge;
mod merged;
mod owner_commit;
mod purpose;
mod refs;
pub mod spent;
pub mod step;
mod thread;
pub mod thread_id;
mod tip_cache;
pub mod tree_path;
mod tree_read;
mod tree_write;
mod worktree;

pub use actor_keys::PersonKey;
pub use error::{Result, StoreError};
pub use home::{
    ACTOR_CONFIG_KEY, ACTOR_ENV, ACTOR_FILE, ACTORS_PREFIX, ActorKind, CONFIG_FILE, Home, InitReport, MAIN_REF,
    MAIN_SEEN, THREADS_PREFIX,
};
pub use maintenance::{CHECK_EVERY, MAINTENANCE_ENV};
pub use merge::{MergeGuard, MergeOutcome, Unguarded};
pub use refs::STALE_LOCK_AGE;
pub use step::{StepKind, ThreadPurpose, ThreadStatus};
pub use thread::{
    Appended, BACKCHAT, KEYED_LOOK_BACK, Keyed, MAX_STEP_BYTES, NewStep, Step, ThreadRef, ThreadSummary,
    deserialize_id, serialize_id,
};
pub use tree_read::{MAX_FILE_BYTES, MAX_SPEC_BYTES};
