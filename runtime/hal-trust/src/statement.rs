//! A person's message sent through HAL, signed by the person: HAL writes (and signs) every commit of the threads it
//! runs, so the person's own signature travels inside the step, over a fixed statement of who says what, where,
//! after which step. The statement is signed in its own namespace (`hal-message`), so no git commit signature can
//! pass for one, nor one for a commit.

use gix::ObjectId;
use gix::bstr::ByteSlice;
use hal_store::Home;
use hal_store::keys::{self, Signer};
use hal_store::step::StepRecord;
use ssh_key::{HashAlg, LineEnding, PublicKey, SshSig};

use crate::keyring::Keyring;

/// The SSH signature namespace of message statements.
pub const MESSAGE_NAMESPACE: &str = "hal-message";
/// The trailer holding the person's signature (the signature's base64, one line).
pub const SIGNATURE_FACT: &str = "Hal-Signature";
/// The trailer holding the step the message was written after (part of what is signed).
pub const AFTER_FACT: &str = "Hal-After";

/// What a person signs for a message: who says `text` on `thread`, having seen it up to the step `after` (the
/// message is written after that step, once: [`check_placement`]).
pub fn message_statement(actor: &str, thread: &str, after: &str, text: &str) -> Vec<u8> {
    use ssh_key::sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("hal message v1\nactor {actor}\nthread {thread}\nafter {after}\ntext-sha256 {hex}\n").into_bytes()
}

/// `signer`'s signature of the statement, as one line for the step's trailer.
pub fn sign_message(signer: &Signer, actor: &str, thread: &str, after: &str, text: &str) -> Result<String, String> {
    sign_statement(signer, MESSAGE_NAMESPACE, &message_statement(actor, thread, after, text))
}

/// Check `signature` (one line, from [`sign_message`]) of the statement, and that its key counts for `actor` in
/// `keyring`: `Ok` with the key, or why not.
pub fn check_message(
    keyring: &Keyring,
    actor: &str,
    thread: &str,
    after: &str,
    text: &str,
    signature: &str,
) -> Result<PublicKey, String> {
    if signature.is_empty() || !signature.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err("the message's signature is not base64".to_owned());
    }
    let signature = parse(signature)?;
    let key = PublicKey::from(signature.public_key().clone());
    match keyring.owner_of(&key) {
        Some(trusted) if trusted.actor == actor && !trusted.revoked => {}
        Some(trusted) if trusted.revoked => {
            return Err(format!("the message is signed by {}, a revoked key", keys::fingerprint(&key)));
        }
        Some(trusted) => {
            return Err(format!(
                "the message is signed by {}, a key of {}, not of {actor}",
                keys::fingerprint(&key),
                trusted.actor
            ));
        }
        None => {
            return Err(format!("the message is signed by {}, which is no key that counts", keys::fingerprint(&key)));
        }
    }
    verify_message(actor, thread, after, text, &key, &signature)?;
    Ok(key)
}

/// Whether `signature` (one line) is a good signature of the statement by whatever key made it, counting or not:
/// the key, or why not.
pub(crate) fn message_signed_by(
    actor: &str,
    thread: &str,
    after: &str,
    text: &str,
    signature: &str,
) -> Result<PublicKey, String> {
    let signature = parse(signature)?;
    let key = PublicKey::from(signature.public_key().clone());
    verify_message(actor, thread, after, text, &key, &signature)?;
    Ok(key)
}

fn verify_message(
    actor: &str,
    thread: &str,
    after: &str,
    text: &str,
    key: &PublicKey,
    signature: &SshSig,
) -> Result<(), String> {
    let statement = message_statement(actor, thread, after, text);
    key.verify(MESSAGE_NAMESPACE, &statement, signature)
        .map_err(|e| format!("the message's signature does not match what it signs: {e}"))
}

/// The SSH signature namespace of merge statements.
pub const MERGE_NAMESPACE: &str = "hal-merge";

/// What an owner signs to merge a thread into `main`: who, which thread, at which tip.
pub fn merge_statement(actor: &str, thread: &str, tip: &str) -> Vec<u8> {
    format!("hal merge v1\nactor {actor}\nthread {thread}\ntip {tip}\n").into_bytes()
}

/// The SSH signature namespace of unfreeze statements.
pub const UNFREEZE_NAMESPACE: &str = "hal-unfreeze";

/// What an owner signs to let HAL go on with a frozen thread from the tip they looked at.
pub fn unfreeze_statement(actor: &str, thread: &str, tip: &str) -> Vec<u8> {
    format!("hal unfreeze v1\nactor {actor}\nthread {thread}\ntip {tip}\n").into_bytes()
}

/// `signer`'s signature of `statement` in `namespace`, as one line.
pub fn sign_statement(signer: &Signer, namespace: &str, statement: &[u8]) -> Result<String, String> {
    let signature = SshSig::sign(signer, namespace, HashAlg::Sha512, statement).map_err(|e| e.to_string())?;
    let pem = signature.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    Ok(pem.lines().filter(|line| !line.starts_with("-----")).collect())
}

/// Check that `signature` is by a key `hal.yaml` names for the owner `actor`, over `statement` in `namespace`:
/// `Ok`, or why not.
pub fn check_owner_statement(
    keyring: &Keyring,
    actor: &str,
    namespace: &str,
    statement: &[u8],
    signature: &str,
) -> Result<(), String> {
    let signature = parse(signature)?;
    let key = PublicKey::from(signature.public_key().clone());
    let line = keys::public_line(&key);
    let owner = keyring.owners.get(actor).is_some_and(|lines| lines.iter().any(|l| crate::keyring::same_key(l, &line)));
    if !owner {
        return Err(format!(
            "signed by {}, which is not a key of an owner named {actor} in hal.yaml",
            keys::fingerprint(&key)
        ));
    }
    key.verify(namespace, statement, &signature).map_err(|e| format!("the signature does not match what it signs: {e}"))
}

/// The key that made a message signature (one line, from [`sign_message`]), whether or not it checks out.
pub fn message_signer(signature: &str) -> Option<PublicKey> {
    parse(signature).ok().map(|signature| PublicKey::from(signature.public_key().clone()))
}

/// A message signature from its one line of base64.
pub(crate) fn parse(signature: &str) -> Result<SshSig, String> {
    let mut pem = String::from("-----BEGIN SSH SIGNATURE-----\n");
    for chunk in signature.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END SSH SIGNATURE-----\n");
    SshSig::from_pem(pem.as_bytes()).map_err(|e| format!("the message's signature is damaged: {e}"))
}

/// How many steps may come between the step a message was signed after and the message: a message queued behind a
/// turn lands a few steps later; one claiming a step from long ago would cost every check a long walk.
pub const MAX_MESSAGE_LAG: usize = 1_000;

/// Check that a message signed `after` a step may be written (or was written) right after `tip`: `after` is `tip`
/// or one of the [`MAX_MESSAGE_LAG`] steps before it along the thread, and no step since carries the same
/// `signature` (that step would be the message itself, and this a replay of it). `Ok`, or why not.
pub fn check_placement(home: &Home, tip: ObjectId, after: &str, signature: &str) -> Result<(), String> {
    let after = ObjectId::from_hex(after.as_bytes()).map_err(|_| format!("`after` is not a commit id: {after:?}"))?;
    let mut at = tip;
    for _ in 0..=MAX_MESSAGE_LAG {
        if at == after {
            return Ok(());
        }
        let commit = home.repo().find_commit(at).map_err(|e| format!("reading {at}: {e}"))?;
        let message = commit.message_raw_sloppy().to_str_lossy();
        if let Some(Ok(record)) = StepRecord::from_message(&message)
            && record.fact(SIGNATURE_FACT) == Some(signature)
        {
            return Err(format!("the message was already written, as {at}: this is a copy of it"));
        }
        match commit.parent_ids().next() {
            Some(parent) => at = parent.detach(),
            None => break,
        }
    }
    Err(format!("signed after {after}, which is not one of the {MAX_MESSAGE_LAG} steps before it on the thread"))
}
