//! Who wrote each step. HAL signs every commit it writes (`hal_store::keys`); this crate decides which keys count
//! (owners from `main`, each actor's keys from its branch, as owner-signed commits put them there: [`Keyring`]) and
//! gives every step a [`Verdict`]. A trailer is a claim; a verdict is what HAL believes.

#![deny(missing_docs)]

pub mod approval;
pub mod halt;
mod keyring;
mod statement;
mod verdict;

pub use keyring::{HISTORY_LIMIT, Keyring, TrustProblem, TrustedKey};
pub use statement::{
    AFTER_FACT, MAX_MESSAGE_LAG, MERGE_NAMESPACE, MESSAGE_NAMESPACE, SIGNATURE_FACT, UNFREEZE_NAMESPACE, check_message,
    check_owner_statement, check_placement, merge_statement, message_statement, sign_message, sign_statement,
    unfreeze_statement,
};
pub use verdict::Verdict;

/// The key lines of `hal.yaml`'s owners and of actors (`ssh-ed25519 AAAA…`).
pub use hal_store::keys::public_line;

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
}

/// A step with its verdict.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Checked {
    /// The step.
    #[serde(flatten)]
    pub step: Step,
    /// What its signature proves.
    #[serde(rename = "trust")]
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

/// How many findings a [`ThreadCheck`] lists; the counts cover every step.
pub const MAX_FINDINGS: usize = 1_000;

/// What `hal thread verify` reports of one thread.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ThreadCheck {
    /// The thread's id.
    pub thread: String,
    /// Its steps.
    pub steps: usize,
    /// Steps signed by the actor they name.
    pub signed: usize,
    /// Steps HAL wrote and signed for a person.
    pub by_hal: usize,
    /// Unsigned steps (a person's plain-git commits).
    pub unsigned: usize,
    /// Steps with something wrong.
    pub wrong: usize,
    /// The unsigned and wrong steps, oldest first, [`MAX_FINDINGS`] at most.
    pub findings: Vec<Checked>,
}

/// Check every step of thread `id`.
pub fn verify_thread(home: &Home, keyring: &Keyring, id: &str) -> Result<ThreadCheck, TrustError> {
    let thread = home.resolve_thread(id)?;
    let mut check = ThreadCheck { thread: thread.id.clone(), ..ThreadCheck::default() };
    for step in home.thread_log(&thread.branch, None)? {
        let verdict = keyring.verdict(home, &step)?;
        check.steps += 1;
        match &verdict {
            Verdict::Signed { .. } => check.signed += 1,
            Verdict::ByHal => check.by_hal += 1,
            Verdict::Unsigned => check.unsigned += 1,
            _ => check.wrong += 1,
        }
        if !matches!(verdict, Verdict::Signed { .. } | Verdict::ByHal) && check.findings.len() < MAX_FINDINGS {
            check.findings.push(Checked { step, verdict });
        }
    }
    Ok(check)
}
