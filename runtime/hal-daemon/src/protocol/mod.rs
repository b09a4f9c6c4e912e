//! The protocol every client speaks: the CLI, the HTTP API and whatever comes next (a web view, MCP, another
//! daemon). A [`Command`] goes in, a [`Response`] comes out, and a followed thread yields [`ThreadEvent`]s; a
//! turn ends with a [`TurnEnd`] whose status is a typed [`Status`], never a string parsed back. The same values
//! cross the HTTP API as JSON and stay Rust values inside one process (see [`crate::handle`]).

use hal_store::{Appended, MergeOutcome, ThreadRef, ThreadSummary};
use serde::{Deserialize, Serialize};

pub(crate) use events::optional_id;
pub use events::{DaemonInfo, ThreadEvent, TurnEnd};
pub use hal_runner::Status;
pub use hal_runner::replay::{ReplayReport, Trace};
pub use report::{
    AtTip, CallLimits, Called, Catalogue, FileKind, FunctionReport, Granted, IsolateDetails, IsolateReport, KeyReport,
    ModelReport, Problem, SecretNeed, StatusReport, StuckEntry,
};

mod events;
mod report;

/// A person's signature of a message ([`hal_trust::message_statement`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageSignature {
    /// The commit of the thread's tip when the message was signed: the message lands after it (after the steps
    /// written since, when the thread moved on), and the same signature is taken once.
    pub after: String,
    /// The SSH signature, its base64 on one line.
    pub signature: String,
}

/// An owner's signature of an act on a thread at the tip they saw (a merge, an unfreeze): the tip, and their SSH
/// signature of the statement (who, which thread, that tip) in the act's namespace (`hal-merge`,
/// `hal-unfreeze`), its base64 on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TipSignature {
    /// The commit of the thread's tip that is merged.
    pub tip: String,
    /// The SSH signature, its base64 on one line.
    pub signature: String,
}

/// What a run that starts a thread or relays a message passes on with it, recorded in HAL's local record for the
/// new thread's branch or the message's commit (never believed from commits).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FromRun {
    /// How many starts and relays by runs lead to it.
    pub depth: u32,
    /// The helps whose own policy rules hold for the runs it leads to: the run's, and those of the helps that
    /// called it (`policy.helps.<help>`, where stricter).
    pub held_by: Vec<String>,
}

/// A change or question about the home repo's threads.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
// A field a command does not take is refused, not ignored: a typo (`titel`) must not pass for a command done. (serde
// checks this for the commands with fields only: `{"command": "status", "x": 1}` still reads as `status`.)
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// List every thread.
    ListThreads,
    /// Start a thread; with `help` and `input`, the input is its first message and asks for that help to run.
    NewThread {
        /// Whose thread (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Start from this thread, branch or commit instead of `main`.
        #[serde(default)]
        from: Option<String>,
        /// Its title.
        #[serde(default)]
        title: Option<String>,
        /// The help to run.
        #[serde(default)]
        help: Option<String>,
        /// The agent to run it as.
        #[serde(default)]
        agent: Option<String>,
        /// The request.
        #[serde(default)]
        input: Option<String>,
        /// What the thread is for, when it is not a person's work (`test`, `replay`): every step of it carries
        /// this, and `hal thread list` leaves it out unless asked for `--all`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>, example = "test")]
        purpose: Option<hal_store::ThreadPurpose>,
        /// Makes the command safe to send again: a later command with the same key writes and starts nothing
        /// and answers what the first one did, across restarts (the key is recorded on the message's step).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
        /// Set when a run starts the thread (HAL's `threads.start`): how many starts and relays by runs led to
        /// it, recorded in HAL's local record (the thread's own commits are never believed about it). The request
        /// is then HAL's message, written for `actor`. Only HAL's own tools set it: it never crosses the API.
        #[serde(skip)]
        started_by_run: Option<FromRun>,
    },
    /// Add a person's message to a thread; a daemon answers it with the thread's next turn.
    Say {
        /// Who says it (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch; `backchat` means the actor's backchat (created if need be).
        thread: String,
        /// The message.
        text: String,
        /// Run this help on it instead of the thread's own.
        #[serde(default)]
        help: Option<String>,
        /// The agent to run it as.
        #[serde(default)]
        agent: Option<String>,
        /// Makes the command safe to send again: a later command with the same key writes and starts nothing
        /// and answers what the first one did, across restarts (the key is recorded on the message's step).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
        /// The person's signature of the message ([`hal_trust::sign_message`]): kept in the step, so who wrote
        /// it can be checked later; one that does not check out is refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<MessageSignature>,
        /// Set when a run relays the text (`threads.say`): how many starts and relays by runs led to it. The step
        /// is then HAL's, written for `actor` (trailer `Hal-For`), never the person's own words, and the depth is
        /// recorded for its commit. Only HAL's own tools set it: it never crosses the API.
        #[serde(skip)]
        relayed: Option<FromRun>,
    },
    /// Check who wrote the steps of one thread, or of every thread.
    Verify {
        /// Thread id, unique prefix or branch; every thread when absent.
        #[serde(default)]
        thread: Option<String>,
    },
    /// The keys that count, as an allowed-signers file for git.
    AllowedSigners,
    /// Halt (`on`) or resume HAL in this repo: an owner's signed statement ([`hal_trust::halt`]), written on
    /// `refs/hal/halt`. While halted no turn, model call or tool call starts, and work-starting commands are
    /// refused; turns in flight end at their next step.
    Halt {
        /// Who asks (default: the repo's actor); an owner named in `hal.yaml`.
        #[serde(default)]
        actor: Option<String>,
        /// Halt (`true`) or resume.
        on: bool,
        /// Why, one line.
        #[serde(default)]
        reason: String,
        /// The halt commit the statement follows (the tip of `refs/hal/halt` the asker saw; none for the first).
        #[serde(default)]
        after: Option<String>,
        /// The owner's signature of the statement ([`hal_trust::halt::sign_halt`]).
        signature: String,
    },
    /// A thread's steps, oldest first: the newest [`crate::command::MAX_LOG`] at most.
    Log {
        /// Thread id, unique prefix or branch.
        thread: String,
        /// Only the newest this many.
        #[serde(default)]
        count: Option<usize>,
    },
    /// Start a thread that continues another one from its tip or from one of its steps.
    Fork {
        /// Whose new thread (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch to fork.
        thread: String,
        /// The step (commit id or prefix) to fork at (default: the tip).
        #[serde(default)]
        at: Option<String>,
    },
    /// Write a file into a thread's tree, as one step.
    Write {
        /// Who writes it (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch.
        thread: String,
        /// The file's path in the thread's tree.
        path: String,
        /// What it holds.
        content: FileContent,
        /// What the step says (default: "write <path> (<n> bytes)").
        #[serde(default)]
        message: Option<String>,
        /// Keep the thread's status (a report written on a finished run's thread), instead of opening it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keep_status: bool,
    },
    /// Let HAL go on with a frozen thread (one whose branch someone moved back or sideways) from where it is now:
    /// a system step on its tip says who did, and HAL acts on the thread again. An owner's act, signed as a merge
    /// is (`hal thread unfreeze` signs with your key) once `hal.yaml` names owners.
    Unfreeze {
        /// Who looked at it (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch.
        thread: String,
        /// The owner's signature of the unfreeze at the tip they looked at ([`hal_trust::unfreeze_statement`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<TipSignature>,
    },
    /// Answer the approval request a thread waits on (a run waits to make a call at autonomy level AL1, or for more
    /// of a budget it reached): an owner's act, signed over exactly what was asked
    /// ([`hal_trust::approval::approval_statement`]; `hal approve` and `hal deny` sign with your key) once
    /// `hal.yaml` names owners. HAL writes the answer as a `decision` step and the run goes on: the call runs (or
    /// the budget grows by the amount), or the model hears the reason it was denied.
    Decide {
        /// Who answers (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch.
        thread: String,
        /// The approval request step's commit: the thread's tip.
        request: String,
        /// Whether the call may run.
        approve: bool,
        /// How far an approval reaches: `once` (this call) or `thread` (every call of the tool on this thread).
        #[serde(default = "once")]
        #[schema(value_type = String)]
        scope: hal_trust::approval::Scope,
        /// Why it is denied: the model hears it.
        #[serde(default)]
        reason: String,
        /// What an approval of more budget grants, in the request's unit: tokens, or US cents.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<u64>,
        /// The owner's signature of the answer, its base64 on one line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Merge a thread into `main`: an owner's act. Once `hal.yaml` names owners, the merge carries the owner's
    /// signature of what they merge (`hal thread merge` signs with your key); without one it is refused.
    Merge {
        /// Who merges (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch.
        thread: String,
        /// The owner's signature of the merge ([`hal_trust::merge_statement`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<TipSignature>,
    },
    /// What `main` offers, as the engine that answers has it in force: helps, agents, models, isolates, problems,
    /// the secrets they need.
    Catalogue,
    /// Build the isolates and plugins on `main` that are source the cache holds no build of, and try again those
    /// whose build failed; answered with the catalogue ([`Response::Catalogue`]) once done.
    BuildIsolates,
    /// The engine's state: the catalogue, turns in progress, threads waiting for a person.
    Status,
    /// Call an isolate's function by hand. On a thread, the call reads its tree and its writes become one `write`
    /// step (the person's change, not a model's tool call).
    CallIsolate {
        /// Who calls it (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// The isolate (`files`, `notes`, `notes@v1`).
        isolate: String,
        /// Its function.
        function: String,
        /// The arguments: a JSON object, as text (passed to the isolate byte for byte).
        #[serde(default = "empty_object")]
        arguments: String,
        /// Thread id, unique prefix or branch whose tree the call works on.
        #[serde(default)]
        thread: Option<String>,
        /// Makes the call safe to send again (with a thread only): its step records the key and the answer, and
        /// a later call with the same key runs nothing and answers the same, across restarts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
    },
    /// The requests no help met, as routers recorded them (`stucks/` on threads and on main).
    Stucks {
        /// Those of `hal help test` cases and replays too (left out by default: they are not people's needs).
        #[serde(default)]
        all: bool,
    },
    /// A help's test cases, as the version in force has them.
    HelpTests {
        /// The help.
        help: String,
    },
    /// Replay a thread: a new thread where it started re-runs its requests with the model's recorded turns played
    /// back (never the model), and the tool calls, results and endings are compared.
    Replay {
        /// Whose replay thread (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch to replay.
        thread: String,
        /// Start the replay from this commit or ref instead of where the original started.
        #[serde(default)]
        from: Option<String>,
        /// Makes the replay safe to send again: a later replay with the same key starts nothing and answers the
        /// comparison of the first one's thread, across restarts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
    },
}

fn once() -> hal_trust::approval::Scope {
    hal_trust::approval::Scope::Once
}

fn empty_object() -> String {
    "{}".to_owned()
}

/// What a [`Command`] did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    /// The threads.
    Threads {
        /// One summary per thread, by id.
        #[schema(value_type = Vec<Object>)]
        threads: Vec<ThreadSummary>,
    },
    /// A thread was started.
    Started {
        /// The new thread.
        #[schema(value_type = Object)]
        thread: ThreadRef,
        /// Its first message, when there is one.
        #[schema(value_type = Option<Object>)]
        message: Option<Appended>,
        /// What the turn-ended event carries for the turn that answers its first message (none without one, or
        /// without a turn-taker).
        #[serde(default)]
        ticket: Option<u64>,
        /// Whether this answers an earlier command with the same idempotency key (nothing was done now).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repeated: bool,
        /// For a repeated command: how the run that answered the first one's message ended, when one did (else
        /// `ticket` names the turn that answers it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<TurnEnd>,
    },
    /// A message was added (or queued behind the turn in progress).
    Said {
        /// The thread.
        #[schema(value_type = Object)]
        thread: ThreadRef,
        /// The message's step, unless it is queued.
        #[schema(value_type = Option<Object>)]
        message: Option<Appended>,
        /// Whether it waits for the thread's current turn to end.
        queued: bool,
        /// What the turn-ended event carries for the turn that answers it (none when no turn-taker saw it).
        #[serde(default)]
        ticket: Option<u64>,
        /// Whether this answers an earlier command with the same idempotency key (nothing was done now).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repeated: bool,
        /// For a repeated command: how the run that answered the first one's message ended, when one did (else
        /// `ticket` names the turn that answers it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<TurnEnd>,
    },
    /// A thread's steps, oldest first, each with what its signature proves (`trust`).
    Steps {
        /// The steps.
        #[schema(value_type = Vec<Object>)]
        steps: Vec<hal_trust::Checked>,
    },
    /// Who wrote the steps of the threads asked about.
    Verified {
        /// One report per thread.
        #[schema(value_type = Vec<Object>)]
        threads: Vec<hal_trust::ThreadCheck>,
        /// Changes to owners and keys that were not applied.
        #[schema(value_type = Vec<Object>)]
        problems: Vec<hal_trust::TrustProblem>,
    },
    /// The halt in force after a `halt` command.
    Halted {
        /// In force now.
        #[schema(value_type = Object)]
        halt: hal_trust::halt::Halt,
        /// The halt commit written.
        commit: String,
    },
    /// The keys that count.
    AllowedSigners {
        /// An allowed-signers file (`gpg.ssh.allowedSignersFile`).
        text: String,
        /// Changes to owners and keys that were not applied.
        #[schema(value_type = Vec<Object>)]
        problems: Vec<hal_trust::TrustProblem>,
    },
    /// A step was added (a file written).
    Appended {
        /// The step.
        #[schema(value_type = Object)]
        step: Appended,
    },
    /// An approval request was answered: the run goes on.
    Decided {
        /// The thread.
        #[schema(value_type = Object)]
        thread: ThreadRef,
        /// The `decision` step.
        #[schema(value_type = Object)]
        step: Appended,
        /// What the turn-ended event carries for the turn that goes on (none without a turn-taker, and none for an
        /// answer sent again).
        #[serde(default)]
        ticket: Option<u64>,
        /// The same answer had landed before (sent again, as when its response was lost): `step` is the one it
        /// made then, and nothing new was written or started.
        #[serde(default)]
        repeated: bool,
    },
    /// The result of a merge.
    Merged {
        /// The thread.
        #[schema(value_type = Object)]
        thread: ThreadRef,
        /// What happened.
        #[schema(value_type = Object)]
        outcome: MergeOutcome,
    },
    /// What `main` offers.
    Catalogue {
        /// It.
        catalogue: Catalogue,
    },
    /// The engine's state.
    Status {
        /// It.
        report: StatusReport,
    },
    /// How an isolate called by hand went.
    Called {
        /// How.
        called: Called,
        /// Whether this answers an earlier call with the same idempotency key (nothing ran now).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repeated: bool,
    },
    /// The requests no help met.
    Stucks {
        /// Newest first.
        stucks: Vec<StuckEntry>,
    },
    /// A help's test cases.
    HelpTests {
        /// The help.
        help: String,
        /// Its cases, in order.
        #[schema(value_type = Vec<Object>)]
        cases: Vec<hal_spec::HelpTest>,
    },
    /// How a replay went.
    Replayed {
        /// The comparison.
        #[schema(value_type = Object)]
        report: ReplayReport,
        /// Whether this answers an earlier replay with the same idempotency key (nothing ran now).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repeated: bool,
    },
}

/// The content of a file a command writes: `{"text": "..."}`, or `{"base64": "..."}` for bytes that are not
/// UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FileContent {
    /// UTF-8 text.
    Text(String),
    /// Any bytes, base64-encoded (standard alphabet, padded).
    Base64(String),
}

impl FileContent {
    /// `bytes` as text when they are UTF-8, else base64.
    pub fn of(bytes: Vec<u8>) -> FileContent {
        match String::from_utf8(bytes) {
            Ok(text) => FileContent::Text(text),
            Err(error) => {
                use base64::Engine as _;
                FileContent::Base64(base64::engine::general_purpose::STANDARD.encode(error.into_bytes()))
            }
        }
    }

    /// The bytes; `None` when base64 that does not decode.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        match self {
            FileContent::Text(text) => Some(text.as_bytes().to_vec()),
            FileContent::Base64(encoded) => base64::engine::general_purpose::STANDARD.decode(encoded).ok(),
        }
    }
}
