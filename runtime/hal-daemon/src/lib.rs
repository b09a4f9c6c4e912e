//! The HAL daemon: one per home repo.
//!
//! It watches the repo's refs and reacts within a second: a commit on `main` reloads helps, agents, isolates
//! and `hal.yaml` (a help, agent or `hal.yaml` that breaks keeps its previous valid version in force, an
//! isolate that breaks is left out, and each is reported in the owner's backchat); a person's message at the
//! tip of a thread runs that thread's next turn. Threads run
//! concurrently, one writer per branch. A local HTTP API on 127.0.0.1 (bearer token in a 0600 file under
//! `.git/hal/`) lets the CLI start threads, send messages, stream steps, list and merge; `GET /metrics` is in
//! Prometheus text format. See [`Daemon`] for the life cycle, [`command`] for the commands the CLI and the API
//! share, [`client`] for talking to a running daemon.

#![deny(missing_docs)]

mod api;
pub mod backchat;
pub mod client;
pub mod command;
mod daemon;
mod error;
mod files;
mod loaded;
mod lock;
mod metrics;
mod plan;
mod watch;

pub use daemon::{Daemon, DaemonOptions, Notice, StatusReport};
pub use error::DaemonError;
pub use files::{DaemonInfo, hal_dir};
pub use loaded::Problem;
pub use lock::holder;
pub use plan::{DEFAULT_HELP, next_turn};
