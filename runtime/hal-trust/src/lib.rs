//! Who wrote each step. HAL signs every commit it writes (`hal_store::keys`); this crate decides which keys count
//! (owners from `main`, each actor's keys from its branch, as owner-signed commits put them there: [`Keyring`]) and
//! gives every step a [`Verdict`]. A trailer is a claim; a verdict is what HAL believes.

#![deny(missing_docs)]

mod keyring;
mod verdict;

pub use keyring::{HISTORY_LIMIT, Keyring, TrustProblem, TrustedKey};
pub use verdict::Verdict;

use hal_store::{Home, Step};

/// Why trust could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] hal_store::StoreError),
    /// Reading git failed.
    #[error("{0}")]
    Git(String),
    /// A branch's history is longer than HAL reads.
    #[error("the history of {tip} is longer than {limit} commits; HAL reads no further")]
    TooLong {
        /// The branch tip.
        tip: gix::ObjectId,
        /// How far HAL reads.
        limit: usize,
    },
}

/// A step with its verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    /// The step.
    #[serde(flatten)]
    pub step: Step,
    /// What its signature proves.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The steps of thread `id` (the newest `limit`, oldest first), each with its verdict.
pub fn check_thread(
    home: &Home,
    keyring: &Keyring,
    id: &str,
    limit: Option<usize>,
) -> Result<Vec<Checked>, TrustError> {
    let steps = home.thread_log(id, limit)?;
    steps.into_iter().map(|step| Ok(Checked { verdict: keyring.verdict(home, &step)?, step })).collect()
}
