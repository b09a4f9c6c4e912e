//! The HAL daemon: one per home repo.
//!
//! It watches the repo's refs and reacts within a second: a commit on `main` reloads helps, agents, isolates
//! and `hal.yaml` (a help, agent or `hal.yaml` that breaks keeps its previous valid version in force, an
//! isolate that breaks is left out, and each is reported in the owner's backchat); a person's message at the
//! tip of a thread runs that thread's next turn. Threads run
//! concurrently, one writer per branch. A local HTTP API on 127.0.0.1 (bearer token in a 0600 file under
//! `.git/hal/`) lets the CLI start threads, send messages, stream steps, list and merge; `GET /metrics` is in
//! Prometheus text format. See [`Daemon`] for the life cycle, [`protocol`] for what every client says,
//! [`handle`] for the one way every client works with a repo (the daemon's or in process), [`client`] for the
//! HTTP client.

#![deny(missing_docs)]

mod answer;
mod api;
pub mod backchat;
pub mod client;
pub mod command;
mod daemon;
pub mod decide;
mod engine;
mod error;
mod files;
mod follow;
pub mod handle;
mod keys;
mod loaded;
mod lock;
mod metrics;
mod owner;
pub mod protocol;
mod stucks;
mod turn;
mod watch;

pub use daemon::{DaemonOptions, Notice};
pub use engine::Daemon;
pub use error::DaemonError;
pub use files::hal_dir;
pub use hal_runner::plan::{DEFAULT_HELP, next_turn};
pub use handle::{Handle, Place};
pub use lock::{Held, Holder, holder};
