//! A verdict for every step: who signed its commit, against who the step says wrote it.

use hal_store::identity::HAL_ACTOR;
use hal_store::keys::{self, CommitSignature};
use hal_store::{Home, Step};

use crate::TrustError;
use crate::keyring::Keyring;

/// What the signature of a step's commit proves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Signed by a key that counts for the actor the step names.
    Signed {
        /// The actor (a field of its own: a checked step also has the `actor` it names).
        by: String,
    },
    /// Written for a person and signed by HAL (a key that counts for `hal`): HAL vouches that it wrote it, the
    /// person's own signature is not in it.
    ByHal,
    /// No signature: a person's plain-git commit, believed or not as `hal.yaml` says.
    Unsigned,
    /// Signed by a key that does not count for the actor the step names.
    SignedByOther {
        /// Whose key it is, when it counts for someone.
        signer: Option<String>,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// Signed by a key an owner revoked.
    Revoked {
        /// Whose key it was.
        signer: String,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// A signature that does not check out (the commit was changed after it was signed).
    BadSignature {
        /// Why.
        reason: String,
    },
    /// Claims to be HAL's but no key of HAL's signed it: never a reply, a status or an approval.
    Forged {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// Whether something is wrong with the step (an unsigned person's commit is not wrong in itself).
    pub fn is_wrong(&self) -> bool {
        !matches!(self, Verdict::Signed { .. } | Verdict::ByHal | Verdict::Unsigned)
    }

    /// Whether HAL may take the step as its own (a reply, a status, an approval).
    pub fn is_hals(&self) -> bool {
        matches!(self, Verdict::Signed { by } if by == HAL_ACTOR)
    }

    /// A word for a log line.
    pub fn label(&self) -> String {
        match self {
            Verdict::Signed { by } => format!("signed by {by}"),
            Verdict::ByHal => "signed by hal".to_owned(),
            Verdict::Unsigned => "unsigned".to_owned(),
            Verdict::SignedByOther { signer: Some(signer), fingerprint } => {
                format!("SIGNED BY ANOTHER: {signer} ({fingerprint})")
            }
            Verdict::SignedByOther { signer: None, fingerprint } => format!("SIGNED BY AN UNKNOWN KEY {fingerprint}"),
            Verdict::Revoked { signer, fingerprint } => format!("SIGNED BY A REVOKED KEY of {signer} ({fingerprint})"),
            Verdict::BadSignature { reason } => format!("BAD SIGNATURE: {reason}"),
            Verdict::Forged { reason } => format!("FORGED: {reason}"),
        }
    }
}

impl Keyring {
    /// The verdict on `step` of `home`.
    pub fn verdict(&self, home: &Home, step: &Step) -> Result<Verdict, TrustError> {
        let claims_hal = step.actor == HAL_ACTOR;
        // Unreadable signature headers prove nothing, like a signature that does not match.
        let signature = keys::verify_commit(home.repo(), step.commit)
            .unwrap_or_else(|error| CommitSignature::Bad(format!("unreadable: {error}")));
        let key = match signature {
            CommitSignature::Good(key) => key,
            CommitSignature::Unsigned if claims_hal => {
                return Ok(Verdict::Forged { reason: "it says HAL wrote it, and it is not signed".to_owned() });
            }
            // Only HAL writes numbered steps other than messages (a person's plain commit has no number).
            CommitSignature::Unsigned if step.number.is_some() && step.kind != hal_store::StepKind::Message => {
                return Ok(Verdict::Forged {
                    reason: format!("a {} step nobody signed: only HAL writes those", step.kind),
                });
            }
            CommitSignature::Unsigned => return Ok(Verdict::Unsigned),
            CommitSignature::Bad(reason) if claims_hal => {
                return Ok(Verdict::Forged { reason: format!("it says HAL wrote it: {reason}") });
            }
            CommitSignature::Bad(reason) => return Ok(Verdict::BadSignature { reason }),
        };
        let fingerprint = keys::fingerprint(&key);
        let Some(trusted) = self.owner_of(&key) else {
            return Ok(match claims_hal {
                true => Verdict::Forged { reason: format!("signed by {fingerprint}, which is no key of HAL's") },
                false => Verdict::SignedByOther { signer: None, fingerprint },
            });
        };
        if trusted.revoked {
            let actor = trusted.actor.clone();
            return Ok(match claims_hal {
                true => Verdict::Forged { reason: format!("signed by {fingerprint}, a revoked key of {actor}") },
                false => Verdict::Revoked { signer: actor, fingerprint },
            });
        }
        // A plain git commit names an author, not an actor: a key that counts says who wrote it.
        if step.number.is_none() && !claims_hal {
            return Ok(Verdict::Signed { by: trusted.actor.clone() });
        }
        Ok(match (trusted.actor == step.actor, trusted.actor == HAL_ACTOR, claims_hal) {
            (true, _, _) => Verdict::Signed { by: step.actor.clone() },
            // HAL writes the steps of the people it talks to (one writer per thread); a person who signed their
            // message has their signature in it.
            (false, true, false) => match (step.fact(crate::SIGNATURE_FACT), step.fact(crate::AFTER_FACT)) {
                // Signed after a step before it, and written once: the same signature on a later step is a copy.
                (Some(signature), Some(after))
                    if let Err(reason) = home
                        .repo()
                        .find_commit(step.commit)
                        .ok()
                        .and_then(|c| c.parent_ids().next())
                        .ok_or_else(|| "it has no step before it".to_owned())
                        .and_then(|parent| crate::check_placement(home, parent.detach(), after, signature)) =>
                {
                    Verdict::BadSignature { reason }
                }
                // Signed by a key revoked since: HAL checked it when it wrote the step (it refuses revoked keys),
                // so the step stays what HAL vouches for, no longer the person's own word, when the signature
                // itself still matches what it signs.
                (Some(signature), Some(after))
                    if crate::statement::message_signer(signature)
                        .and_then(|key| self.owner_of(&key).cloned())
                        .is_some_and(|key| key.revoked && key.actor == step.actor) =>
                {
                    let thread = step.thread.as_deref().unwrap_or_default();
                    match crate::statement::message_signed_by(&step.actor, thread, after, &step.text, signature) {
                        Ok(_) => Verdict::ByHal,
                        Err(reason) => Verdict::BadSignature { reason },
                    }
                }
                (Some(signature), Some(after)) => {
                    let thread = step.thread.as_deref().unwrap_or_default();
                    match crate::check_message(self, &step.actor, thread, after, &step.text, signature) {
                        Ok(_) => Verdict::Signed { by: step.actor.clone() },
                        Err(reason) => Verdict::BadSignature { reason },
                    }
                }
                _ => Verdict::ByHal,
            },
            (false, _, true) => Verdict::Forged { reason: format!("signed by {}, not by HAL", trusted.actor) },
            (false, _, false) => Verdict::SignedByOther { signer: Some(trusted.actor.clone()), fingerprint },
        })
    }
}
