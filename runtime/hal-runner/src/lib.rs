//! HAL's standard runner.
//!
//! A help is an invocation spec; the runner executes any help on a thread as a loop of model turns and tool
//! calls, committing every step, and ends it with a [`Status`] and an output. See [`run`] for the loop,
//! [`conversation`] for how a thread becomes model messages, [`replay`] for re-running a thread from its
//! recorded model turns.

#![deny(missing_docs)]

pub mod catalog;
pub mod conversation;
mod error;
pub mod help_check;
pub mod ledger;
pub mod model;
pub mod plan;
pub mod record;
pub mod replay;
pub mod run;
pub mod secrets;
mod shared_home;
mod status;
pub mod stuck;
pub mod tools;

pub use catalog::Catalog;
pub use error::RunError;
pub use run::{Event, HaltCheck, Observer, Outcome, RunLimits, Runner, Teller, Waiting};
pub use shared_home::SharedHome;
pub use status::Status;
