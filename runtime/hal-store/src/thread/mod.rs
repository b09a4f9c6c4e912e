//! Threads: branches whose commits are steps.
//!
//! A thread lives on `refs/heads/threads/<actor>/<id>`, so a plain `git clone` brings every thread along. It
//! starts with a `start` step whose parent is the commit it was created from (usually `main`'s tip), and every
//! later step is one commit on top, appended with a compare-and-swap on the branch. The thread's tree is the
//! agent's file system: only `write` steps change it, so merging a thread brings its work files and nothing
//! else. A fork continues another thread's conversation from one of its steps; its step numbers carry on from
//! there and its log includes the steps it inherited.

use gix::ObjectId;
use serde::Serialize;

use crate::Result;
use crate::refs;
use crate::step::{StepKind, ThreadPurpose, ThreadStatus};

mod append;
mod create;
mod read;
mod resolve;

/// Largest commit HAL reads as a step (message and `hal-data` included). HAL's own steps stay below it: a model
/// reply is capped by `hal.yaml`'s `limits.reply` (whose maxima are chosen for this), its kept response by
/// `MAX_KEPT_RESPONSE` in the runner, and the runner refuses to record a reply step larger than half of this.
pub const MAX_STEP_BYTES: u64 = 16 << 20;
/// How far back from a thread's tip HAL looks for a step when the tip is a plain git commit.
const MAX_PLAIN_COMMITS: usize = 1000;
/// The id of every actor's backchat thread with HAL.
pub const BACKCHAT: &str = "backchat";
/// How many ambiguous candidates an error lists.
const MAX_CANDIDATES: usize = 5;

/// A thread branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ThreadRef {
    /// The thread's id (the last component of its branch).
    pub id: String,
    /// The actor whose namespace holds the branch.
    pub actor: String,
    /// The branch name without `refs/heads/`, e.g. `threads/alice/0h2k7f3m9q1`.
    pub branch: String,
    /// The commit the branch points at.
    #[serde(serialize_with = "serialize_id", deserialize_with = "deserialize_id")]
    pub tip: ObjectId,
}

impl ThreadRef {
    fn full_name(&self) -> Result<gix::refs::FullName> {
        refs::full_name(&format!("refs/heads/{}", self.branch))
    }
}

/// One line of `hal thread list`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ThreadSummary {
    /// The thread's id.
    pub id: String,
    /// Its branch, without `refs/heads/`.
    pub branch: String,
    /// The actor whose namespace holds it.
    pub actor: String,
    /// Its title (may be empty).
    pub title: String,
    /// Its status.
    pub status: ThreadStatus,
    /// How many steps its conversation has.
    pub steps: u64,
    /// Time of its last commit, seconds since the Unix epoch.
    pub last_activity: i64,
    /// The tip commit.
    #[serde(serialize_with = "serialize_id", deserialize_with = "deserialize_id")]
    pub tip: ObjectId,
    /// What it was made for, when it is not a person's work (`hal thread list` leaves it out without `--all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<ThreadPurpose>,
}

/// One step as shown by `hal thread log`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Step {
    /// The step's commit.
    #[serde(serialize_with = "serialize_id", deserialize_with = "deserialize_id")]
    pub commit: ObjectId,
    /// Its number in the conversation; `None` for a plain git commit on the thread. (`step` in JSON.)
    #[serde(rename = "step")]
    pub number: Option<u64>,
    /// The thread it was made on (for a fork, earlier steps belong to the thread it was forked from).
    pub thread: Option<String>,
    /// What it did ([`StepKind::Commit`] for a plain git commit).
    pub kind: StepKind,
    /// Who made it (for a plain commit, the author's name).
    pub actor: String,
    /// The thread's status after it.
    pub status: Option<ThreadStatus>,
    /// The text, exactly as recorded.
    pub text: String,
    /// The file a `write` step wrote.
    pub path: Option<String>,
    /// Commit time, seconds since the Unix epoch.
    pub time: i64,
    /// Further `Hal-*` trailers (help, model, tokens, …), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<(String, String)>,
    /// The step's machine data (the `hal-data` commit header), if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Step {
    /// The value of the fact `name` (e.g. `Hal-Model`), if the step has it.
    pub fn fact(&self, name: &str) -> Option<&str> {
        self.facts.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// How many steps back from a thread's tip [`Home::keyed_step`] looks for a keyed step.
pub const KEYED_LOOK_BACK: usize = 1_000;

/// What [`Home::keyed_step`] found.
#[derive(Debug)]
pub struct Keyed {
    /// The thread, as it is now.
    pub thread: ThreadRef,
    /// The step written for the key.
    pub step: Step,
    /// The first step after it that ended a run (finished or waiting) and that this HAL wrote on the branch (a
    /// step pushed with HAL's trailers is not believed).
    pub answer: Option<Step>,
}

/// A step to append with [`Home::append_step`].
#[derive(Debug, Clone)]
pub struct NewStep {
    /// What the step does.
    pub kind: StepKind,
    /// Its text, recorded exactly (the commit message body).
    pub text: String,
    /// The thread's status after it.
    pub status: ThreadStatus,
    /// Further `Hal-*` trailers.
    pub facts: Vec<(String, String)>,
    /// Machine data kept in the commit's `hal-data` header: one line (compact JSON, say), never shown by
    /// `git log`. A model's exact reply lives here.
    pub data: Option<String>,
    /// Files written into the thread's tree by this step, as (path, content).
    pub writes: Vec<(String, Vec<u8>)>,
    /// For a message a run relays: the chain of starts and relays by runs that led to it, recorded in HAL's local
    /// record for the step's commit before the branch moves to it (see [`Home::depth_of`]).
    pub chain_depth: Option<u32>,
    /// With `chain_depth`: the helps whose own policy rules hold for the runs this message leads to (see
    /// [`Home::chain_of`]).
    pub held_by: Vec<String>,
    /// The idempotency key of the command the step answers (a message a client may send again): written as a
    /// trailer and recorded in HAL's local record before the branch moves, so [`Home::keyed_step`] finds the step
    /// when the command comes again.
    pub idempotency_key: Option<String>,
    /// Append only if the thread's tip is this commit ([`StoreError::Moved`] otherwise): for a step whose
    /// writes were computed from the tree there (an isolate called by hand), which would otherwise silently
    /// undo whatever was committed since.
    pub on_tip: Option<ObjectId>,
    /// Append only if the thread's tip is this commit or grew from it ([`StoreError::Moved`] otherwise): a run's
    /// steps follow the run's own, with whatever people pushed on top, never a branch moved back or sideways
    /// under it.
    pub descends_from: Option<ObjectId>,
    /// Written on a frozen thread (one whose branch no longer grows from where HAL last left it): only a person's
    /// `unfreeze`, on exactly the tip they looked at (`on_tip`). Every other step refuses a frozen thread
    /// ([`StoreError::Frozen`]), since landing it would move HAL's mark onto the moved branch.
    pub unfreezes: bool,
}

impl NewStep {
    /// A step of `kind` with `text`, leaving the thread `status`, with no facts, data or writes.
    pub fn new(kind: StepKind, text: impl Into<String>, status: ThreadStatus) -> NewStep {
        NewStep {
            kind,
            text: text.into(),
            status,
            facts: Vec::new(),
            data: None,
            writes: Vec::new(),
            chain_depth: None,
            held_by: Vec::new(),
            idempotency_key: None,
            on_tip: None,
            descends_from: None,
            unfreezes: false,
        }
    }

    /// Add a `Hal-*` trailer.
    pub fn fact(mut self, name: &str, value: impl ToString) -> NewStep {
        self.facts.push((name.to_owned(), value.to_string()));
        self
    }
}

/// The result of appending a step.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Appended {
    /// The thread.
    pub thread: String,
    /// The new step's number.
    pub step: u64,
    /// The new step's commit.
    #[serde(serialize_with = "serialize_id", deserialize_with = "deserialize_id")]
    pub commit: ObjectId,
}

/// A thread's state as of some commit, read from the newest step at or below it.
#[derive(Debug, Clone)]
pub(crate) struct ThreadState {
    pub(crate) steps: u64,
    /// Commit time of the commit the state was asked for.
    pub(crate) time: i64,
    /// Tree of the commit the state was asked for.
    pub(crate) tree: ObjectId,
    pub(crate) title: String,
    pub(crate) status: ThreadStatus,
    pub(crate) purpose: Option<ThreadPurpose>,
}

/// Read a git object id from its hex text (for `#[serde(deserialize_with)]`).
pub fn deserialize_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<ObjectId, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    ObjectId::from_hex(text.as_bytes()).map_err(serde::de::Error::custom)
}

/// Serialize a git object id as its hex text (for `#[serde(serialize_with)]`).
pub fn serialize_id<S: serde::Serializer>(id: &ObjectId, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}
