//! Whether HAL is halted: the newest halt or resume on `refs/hal/halt` ([`hal_store::halt`]) counts when an owner
//! signed its statement (who, halt or resume, the reason, the commit it follows). Anything else there (a commit
//! pushed by hand, a signature that is not an owner's, a statement copied from an older commit) is a problem, and
//! the state stays what it last was: this repository remembers the last halt commit it believed in
//! `.git/hal/halt-seen`, and a new one counts only when it follows that one along first parents. Moving the ref
//! back (to an older resume, or an older halt and then its resume), deleting it, or pointing it at garbage changes
//! nothing; an owner's next halt or resume is written after the one believed, wherever the ref was moved. Removing
//! `halt-seen` forgets it (the ref is then judged afresh).

use gix::ObjectId;
use hal_store::Home;
use hal_store::halt::HaltRecord;
use hal_store::keys::Signer;

use crate::TrustError;
use crate::keyring::Keyring;

/// The SSH signature namespace of halt statements.
pub const HALT_NAMESPACE: &str = "hal-halt";

/// What an owner signs to halt (`on`) or resume: who, which, why, after which halt commit (`None`: the first).
pub fn halt_statement(actor: &str, on: bool, reason: &str, after: Option<ObjectId>) -> Vec<u8> {
    let after = after.map_or_else(|| "none".to_owned(), |id| id.to_string());
    let word = if on { "on" } else { "off" };
    format!("hal halt v1\nactor {actor}\nhalt {word}\nafter {after}\nreason {reason}\n").into_bytes()
}

/// `signer`'s signature of a halt statement, as one line.
pub fn sign_halt(
    signer: &Signer,
    actor: &str,
    on: bool,
    reason: &str,
    after: Option<ObjectId>,
) -> Result<String, String> {
    crate::sign_statement(signer, HALT_NAMESPACE, &halt_statement(actor, on, reason, after))
}

/// Check that `signature` is `actor`'s, an owner's key, over the statement: `Ok`, or why not.
pub fn check_halt(
    keyring: &Keyring,
    actor: &str,
    on: bool,
    reason: &str,
    after: Option<ObjectId>,
    signature: &str,
) -> Result<(), String> {
    let statement = halt_statement(actor, on, reason, after);
    crate::check_owner_statement(keyring, actor, HALT_NAMESPACE, &statement, signature)
}

/// Whether HAL is halted, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Halt {
    /// Running.
    #[default]
    Off,
    /// Halted: no turn or tool call starts.
    On {
        /// The owner who halted.
        by: String,
        /// Why.
        reason: String,
        /// The halt commit.
        #[serde(serialize_with = "hal_store::serialize_id", deserialize_with = "hal_store::deserialize_id")]
        commit: ObjectId,
    },
}

impl Halt {
    /// Why nothing may start, when halted: `halted by <actor>: <reason>`.
    pub fn reason(&self) -> Option<String> {
        match self {
            Halt::Off => None,
            Halt::On { by, reason, .. } if reason.is_empty() => Some(format!("halted by {by}")),
            Halt::On { by, reason, .. } => Some(format!("halted by {by}: {reason}")),
        }
    }
}

/// The halt in force, and what on `refs/hal/halt` is not believed.
#[derive(Debug, Clone, Default)]
pub struct HaltState {
    /// In force.
    pub halt: Halt,
    /// Why the ref's tip was not believed, if it was not.
    pub problem: Option<String>,
}

/// The halt commit this repository believed last (a statement must follow it): `None` before the first.
pub fn believed(home: &Home) -> Option<ObjectId> {
    Seen::read(home).commit
}

/// The halt in force in `home`; the keys that count are read only when the switch moved since the halt commit
/// believed last. Remembers the newest one it believes. A halt or resume counts only when an owner signed it and
/// it follows, along first parents, the halt commit believed last: a copy of an older statement, an older halt or
/// resume the ref is moved back to, or anything pushed there by hand is reported, and the state stays as it was.
pub fn halt_state(home: &Home) -> Result<HaltState, TrustError> {
    let seen = Seen::read(home);
    let tip = home.halt_tip()?;
    if tip == seen.commit {
        return Ok(HaltState { halt: seen.halt, problem: None });
    }
    let kept = |problem: String| Ok(HaltState { halt: seen.halt.clone(), problem: Some(problem) });
    let Some(tip) = tip else {
        return kept(format!("{} is gone: the state it held stays in force", hal_store::halt::HALT_REF));
    };
    let record = match home.halt_record() {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(HaltState { halt: seen.halt, problem: None }),
        Err(error) => return kept(error.to_string()),
    };
    if let Some(before) = seen.commit
        && !(record.commit != before && home.grows_from(before, record.commit))
    {
        return kept(format!(
            "{} at {tip} does not follow the halt commit believed last ({before}): not believed, the state stays",
            hal_store::halt::HALT_REF
        ));
    }
    let keyring = Keyring::load(home)?;
    if let Err(why) = believe(&keyring, &record) {
        return kept(format!("{} at {} is not believed: {why}", hal_store::halt::HALT_REF, record.commit));
    }
    let halt = match record.on {
        true => Halt::On { by: record.actor.clone(), reason: record.reason.clone(), commit: record.commit },
        false => Halt::Off,
    };
    Seen { commit: Some(record.commit), halt: halt.clone() }.write(home);
    Ok(HaltState { halt, problem: None })
}

/// Why `record` is not an owner's halt or resume, if it is not.
fn believe(keyring: &Keyring, record: &HaltRecord) -> Result<(), String> {
    let signature = record.signature.as_deref().ok_or("it carries no signature")?;
    let named = record.after.as_deref().unwrap_or_default();
    let parent = record.parent.map_or_else(|| "none".to_owned(), |p| p.to_string());
    if named != parent {
        return Err(format!("it says it follows {named}, and it follows {parent} (a copy of an older one)"));
    }
    check_halt(keyring, &record.actor, record.on, &record.reason, record.parent, signature)
}

/// The newest halt commit this repository believed, kept in `.git/hal/halt-seen` (git never carries it).
struct Seen {
    commit: Option<ObjectId>,
    halt: Halt,
}

impl Seen {
    fn path(home: &Home) -> std::path::PathBuf {
        home.repo().common_dir().join("hal/halt-seen")
    }

    fn read(home: &Home) -> Seen {
        let text = std::fs::read_to_string(Seen::path(home)).unwrap_or_default();
        let mut lines = text.lines();
        let commit = lines.next().and_then(|line| ObjectId::from_hex(line.trim().as_bytes()).ok());
        let halt = lines.next().and_then(|line| serde_json::from_str(line).ok()).unwrap_or_default();
        Seen { commit, halt }
    }

    /// Written whole, so a reader never sees half of it.
    fn write(&self, home: &Home) {
        let commit = self.commit.map(|c| c.to_string()).unwrap_or_default();
        match serde_json::to_string(&self.halt) {
            Ok(halt) => crate::keyring::write_whole(&Seen::path(home), &format!("{commit}\n{halt}\n")),
            Err(error) => tracing::warn!(target: "hal_trust", %error, "cannot remember the halt"),
        }
    }
}
