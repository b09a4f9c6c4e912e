//! Integration tests: the real `hal` binary on real git repositories.
//!
//! One test binary with a module per area, so it links once. Repositories are built by the scripts in
//! `fixtures/` with pinned dates and no system or user git configuration (`HOME` is a temporary directory).

mod api;
mod approvals;
mod assessed;
mod budgets;
mod concurrency;
mod crash;
mod crossover;
mod daemon;
mod daemon_process;
mod daemon_turns;
mod demo;
mod exit_codes;
mod goalie;
mod halt;
mod handle;
mod helps;
mod idempotency;
mod init;
mod interop;
mod isolates;
mod merge;
mod naming;
mod plugins;
mod promises;
mod rate_limits;
mod regression;
mod replays;
mod replies;
mod runs;
mod secrets;
mod shared_helps;
mod signing;
mod support;
mod threads;
mod transcripts;
