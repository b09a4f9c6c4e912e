//! Keeping the object store healthy, off the hot path.
//!
//! gix writes loose objects only (one file per object). Left alone, a busy home repo collects hundreds of
//! thousands of small files and every `git` command slows down. After a write, with a chance of one in
//! [`CHECK_EVERY`], HAL starts `git gc --auto` in the background: it returns at once when there is little to
//! do, and otherwise packs objects and refs in a detached process while HAL carries on. A chance rather than a
//! counter keeps it stateless and fair across many short threads and many processes. Set
//! `HAL_MAINTENANCE=off` to leave it to the user (benchmarks do, to measure the repo before and after).

use std::process::Stdio;

use crate::git_cli;
use crate::home::Home;

/// One write in this many (on average) starts a background check.
pub const CHECK_EVERY: u64 = 200;
/// Environment variable that turns background maintenance off when set to `off`.
pub const MAINTENANCE_ENV: &str = "HAL_MAINTENANCE";

/// Called after a write landed.
pub(crate) fn after_write(home: &Home) {
    if fastrand::u64(..CHECK_EVERY) != 0 || std::env::var(MAINTENANCE_ENV).is_ok_and(|v| v == "off") {
        return;
    }
    let spawned = git_cli::in_git_dir(home.repo().common_dir())
        .args(["gc", "--auto", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        // Reap it from a thread so a long-lived process does not collect zombies.
        Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
        Err(error) => tracing::debug!(target: "hal_store::maintenance", %error, "could not start `git gc --auto`"),
    }
}
