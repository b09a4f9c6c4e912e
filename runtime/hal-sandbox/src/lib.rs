//! HAL's sandbox: isolates are WebAssembly components run by wasmtime with nothing they were not granted.
//!
//! An isolate (the WIT world `hal:isolate/isolate` in `schemas/wit/`) describes its functions and answers
//! calls. Each call gets a fresh store: a WASI context with no files, no environment and no network, the imports
//! its manifest asks for and `hal.yaml` grants (the thread's tree, HTTP to named hosts, named secrets, log lines),
//! an epoch deadline (wall time), fuel (work), a memory limit, and a result-size limit. A trap in the guest
//! becomes an error with a plain-language reason; the host carries on. Compiled components are cached on disk,
//! keyed by the bytes' hash and the engine's compatibility hash, so a restart never recompiles.

#![deny(missing_docs)]

pub mod builtin;
mod cache;
mod capabilities;
pub mod catalog;
mod host;
mod limits;
mod load;
mod names;
pub mod plugins;
mod progress;
pub mod python;
mod scrub;
pub mod source;
mod state;
mod tool;

pub use capabilities::{Denied, Fix, Granted};
pub use host::{CallContext, CallError, CallOutput, Isolate, Sandbox, StartError};
pub use limits::{DEFAULT_LIMITS as DEFAULT_ISOLATE_LIMITS, IsolateLimits};

/// Why an isolate or plugin could not be built or loaded, in words for the person who can fix it (the file, the
/// line, what to change): what a tool shows and `hal status` lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

impl From<String> for Unusable {
    fn from(reason: String) -> Unusable {
        Unusable(reason)
    }
}

impl From<Unusable> for String {
    fn from(unusable: Unusable) -> String {
        unusable.0
    }
}
pub use tool::add_isolate_tools;

/// Whether loading a repo's isolates and plugins may build what the cache does not hold yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builds {
    /// Build what the cache holds neither a build nor a failed build of (cargo for Rust, componentize-py for
    /// Python): what takes turns (the daemon, a command's own engine).
    Run,
    /// As [`Builds::Run`], and try again what failed to build before: `hal isolate build`, and a daemon's start
    /// (a failure may have been the environment's: a missing target, a download).
    Retry,
    /// Take only what the cache holds (a build, or why it failed), and say what is not built yet: read-only
    /// commands (`hal status`, `hal isolate list`) never start a build.
    CachedOnly,
}
