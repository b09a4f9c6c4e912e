//! An owner's answer to an approval request (autonomy level AL1): approve or deny one tool call, signed over
//! exactly what was asked. The statement binds the request step's commit, the call's index in its reply (a model
//! server's call ids are not unique), the tool and the SHA-256 of the call's arguments, so an answer fits one call
//! of one request and no other; a denial's reason is bound too, so the model hears the owner's words unchanged.

use serde::{Deserialize, Serialize};

use crate::keyring::Keyring;

/// The SSH signature namespace of approval statements.
pub const APPROVAL_NAMESPACE: &str = "hal-approval";

/// How far an approval reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This call only.
    Once,
    /// Every call of this tool on this thread from now on, whatever its arguments.
    Thread,
    /// This call, and a change of `hal.yaml`'s policy the owner commits to `main` with their signature: the tool
    /// acts and tells (AL2) from then on.
    Always,
}

impl Scope {
    /// Its name in statements, trailers and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Once => "once",
            Scope::Thread => "thread",
            Scope::Always => "always",
        }
    }
}

/// What was asked, as the request step records it, and (for a budget) the amount granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// The thread's id.
    pub thread: String,
    /// The approval request step's commit.
    pub request: String,
    /// What the request is about.
    #[serde(flatten)]
    pub subject: Subject,
}

/// What an approval request is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "subject", rename_all = "kebab-case")]
pub enum Subject {
    /// One tool call (autonomy level AL1).
    Call {
        /// The call's index among its reply's tool calls.
        index: u32,
        /// The tool called.
        tool: String,
        /// The SHA-256 (hex) of the call's arguments, byte for byte as the model gave them.
        args_sha256: String,
        /// The help whose run makes it (an approval for the thread covers this help's calls only).
        help: String,
    },
    /// More of a budget the run reached.
    Budget {
        /// Which budget (`thread`, `help-per-day writer`, `actor-per-day alice`).
        budget: String,
        /// Its unit: `tokens` or `usd`.
        unit: String,
        /// The amount granted, in tokens or US cents (0 for a denial).
        amount: u64,
    },
}

/// What an owner signs to approve or deny `asked`: who, what was asked, the answer, its scope and (for a denial)
/// the SHA-256 of the reason.
pub fn approval_statement(actor: &str, asked: &Asked, approve: bool, scope: Scope, reason: &str) -> Vec<u8> {
    let decision = if approve { "approve" } else { "deny" };
    let reason = sha256_hex(reason.as_bytes());
    let (thread, request) = (&asked.thread, &asked.request);
    match &asked.subject {
        Subject::Call { index, tool, args_sha256, help } => format!(
            "hal approval v1\nactor {actor}\nthread {thread}\nrequest {request}\ncall {index}\ntool {tool}\n\
             args-sha256 {args_sha256}\nhelp {help}\ndecision {decision}\nscope {}\nreason-sha256 {reason}\n",
            scope.as_str(),
        ),
        Subject::Budget { budget, unit, amount } => format!(
            "hal budget v1\nactor {actor}\nthread {thread}\nrequest {request}\nbudget {budget}\nunit {unit}\n\
             amount {amount}\ndecision {decision}\nreason-sha256 {reason}\n"
        ),
    }
    .into_bytes()
}

/// Check that `signature` is the owner `actor`'s (by a key `hal.yaml` names for them) over the statement of this
/// answer: `Ok`, or why not.
pub fn check_approval(
    keyring: &Keyring,
    actor: &str,
    asked: &Asked,
    approve: bool,
    scope: Scope,
    reason: &str,
    signature: &str,
) -> Result<(), String> {
    let statement = approval_statement(actor, asked, approve, scope, reason);
    crate::check_owner_statement(keyring, actor, APPROVAL_NAMESPACE, &statement, signature)
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use ssh_key::sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
