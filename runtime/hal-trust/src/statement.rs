//! A person's message sent through HAL, signed by the person: HAL writes (and signs) every commit of the threads it
//! runs, so the person's own signature travels inside the step, over a fixed statement of who says what, where,
//! after which step. The statement is signed in its own namespace (`hal-message`), so no git commit signature can
//! pass for one, nor one for a commit.

use hal_store::keys::{self, Signer};
use ssh_key::{HashAlg, LineEnding, PublicKey, SshSig};

use crate::keyring::Keyring;

/// The SSH signature namespace of message statements.
pub const MESSAGE_NAMESPACE: &str = "hal-message";
/// The trailer holding the person's signature (the signature's base64, one line).
pub const SIGNATURE_FACT: &str = "Hal-Signature";
/// The trailer holding the step the message was written after (part of what is signed).
pub const AFTER_FACT: &str = "Hal-After";

/// What a person signs for a message: who says `text` on `thread`, written after the step `after`.
pub fn message_statement(actor: &str, thread: &str, after: &str, text: &str) -> Vec<u8> {
    use ssh_key::sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("hal message v1\nactor {actor}\nthread {thread}\nafter {after}\ntext-sha256 {hex}\n").into_bytes()
}

/// `signer`'s signature of the statement, as one line for the step's trailer.
pub fn sign_message(signer: &Signer, actor: &str, thread: &str, after: &str, text: &str) -> Result<String, String> {
    let statement = message_statement(actor, thread, after, text);
    let signature = SshSig::sign(signer, MESSAGE_NAMESPACE, HashAlg::Sha512, &statement).map_err(|e| e.to_string())?;
    let pem = signature.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    Ok(pem.lines().filter(|line| !line.starts_with("-----")).collect())
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
    let mut pem = String::from("-----BEGIN SSH SIGNATURE-----\n");
    for chunk in signature.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END SSH SIGNATURE-----\n");
    let signature = SshSig::from_pem(pem.as_bytes()).map_err(|e| format!("the message's signature is damaged: {e}"))?;
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
    let statement = message_statement(actor, thread, after, text);
    key.verify(MESSAGE_NAMESPACE, &statement, &signature)
        .map_err(|e| format!("the message's signature does not match what it signs: {e}"))?;
    Ok(key)
}
