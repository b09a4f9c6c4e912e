//! Threads: branches whose commits are steps.
//!
//! A thread lives on `refs/heads/threads/<actor>/<id>`, so a plain `git clone` brings every thread along. It
//! starts with a `start` step whose parent is the commit it was created from (usually `main`'s tip), and every
//! later step is one commit on top, appended with a compare-and-swap on the branch. The thread's tree is the
//! agent's file system: only `write` steps change it, so merging a thread brings its work files and nothing
//! else. A fork continues another thread's conversation from one of its steps; its step numbers carry on from
//! there and its log includes the steps it inherited.

use std::time::SystemTime;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::prelude::ObjectIdExt;
use gix::refs::Target;
use serde::Serialize;

use crate::error::GixContext;
use crate::home::{ActorKind, Home, THREADS_PREFIX};
use crate::refs::{self, Expect};
use crate::step::{StepKind, StepRecord, ThreadPurpose, ThreadStatus};
use crate::tip_cache::{TipCache, TipFacts};
use crate::{Result, StoreError, maintenance, thread_id, tree_path};

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

impl Home {
    /// Every thread branch, sorted by id (that is, by creation time).
    pub fn threads(&self) -> Result<Vec<ThreadRef>> {
        let platform = self.repo().references().git_context(|| "listing refs".to_owned())?;
        let iter = platform.prefixed(THREADS_PREFIX).git_context(|| "listing thread branches".to_owned())?;
        let mut threads = Vec::new();
        for reference in iter {
            let reference = reference.git_context(|| "reading a thread branch".to_owned())?;
            let name = reference.name().as_bstr().to_str_lossy();
            let Some(rest) = name.strip_prefix(THREADS_PREFIX) else { continue };
            let Some((actor, id)) = rest.split_once('/') else { continue };
            if id.contains('/') {
                continue;
            }
            let target = reference.target();
            let Some(tip) = target.try_id() else { continue };
            threads.push(ThreadRef {
                id: id.to_owned(),
                actor: actor.to_owned(),
                branch: format!("threads/{rest}"),
                tip: tip.to_owned(),
            });
        }
        threads.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.actor.cmp(&b.actor)));
        Ok(threads)
    }

    /// Find the thread named by `query`: an id, a unique prefix of one, or a branch name
    /// (`threads/<actor>/<id>`, with or without `refs/heads/`).
    pub fn resolve_thread(&self, query: &str) -> Result<ThreadRef> {
        let branch = query.strip_prefix("refs/heads/").unwrap_or(query);
        if branch.starts_with("threads/") {
            let name = refs::full_name(&format!("refs/heads/{branch}"))
                .map_err(|_| StoreError::UnknownThread(query.to_owned()))?;
            let tip = refs::read(self.repo(), &name)?.ok_or_else(|| StoreError::UnknownThread(query.to_owned()))?;
            let (actor, id) = branch
                .strip_prefix("threads/")
                .and_then(|rest| rest.split_once('/'))
                .ok_or_else(|| StoreError::UnknownThread(query.to_owned()))?;
            return Ok(ThreadRef { id: id.to_owned(), actor: actor.to_owned(), branch: branch.to_owned(), tip });
        }
        if query.is_empty() {
            return Err(StoreError::UnknownThread(query.to_owned()));
        }
        if let Some(thread) = self.find_full_id(query)? {
            return Ok(thread);
        }
        let threads = self.threads()?;
        let exact: Vec<_> = threads.iter().filter(|t| t.id == query).collect();
        let matches: Vec<_> =
            if exact.is_empty() { threads.iter().filter(|t| t.id.starts_with(query)).collect() } else { exact };
        match matches.as_slice() {
            [] => Err(StoreError::UnknownThread(query.to_owned())),
            [one] => Ok((*one).clone()),
            many => Err(StoreError::AmbiguousThread {
                prefix: query.to_owned(),
                candidates: many.iter().take(MAX_CANDIDATES).map(|t| t.branch.clone()).collect(),
            }),
        }
    }

    /// A full id in the local actor's or HAL's namespace, found without listing every thread (a repo may have
    /// tens of thousands).
    fn find_full_id(&self, query: &str) -> Result<Option<ThreadRef>> {
        if query.len() != thread_id::ID_LEN || !thread_id::is_id_like(query) {
            return Ok(None);
        }
        let local = self.resolve_actor(None).ok();
        for actor in local.iter().map(String::as_str).chain([crate::identity::HAL_ACTOR]) {
            let branch = format!("threads/{actor}/{query}");
            if let Some(tip) = refs::read(self.repo(), &refs::full_name(&format!("refs/heads/{branch}"))?)? {
                return Ok(Some(ThreadRef { id: query.to_owned(), actor: actor.to_owned(), branch, tip }));
            }
        }
        Ok(None)
    }

    /// Summaries of every thread, sorted by id. Reads one commit per thread whose tip is not in the tip cache
    /// (see [`crate::tip_cache`]). A thread whose tip `main` reaches is `merged`, however it was merged.
    pub fn list_threads(&self) -> Result<Vec<ThreadSummary>> {
        let threads = self.threads()?;
        let cache = TipCache::load(self.repo().common_dir());
        let main = self.main_tip()?;
        let (cached, uncached): (Vec<ObjectId>, Vec<ObjectId>) =
            threads.iter().map(|t| t.tip).partition(|tip| cache.get(tip).is_some());
        let reach = crate::merged::Reach::new(self, main, cache.main(), &uncached, &cached)?;
        let mut changed = !uncached.is_empty() || cache.main() != main;
        let mut current = Vec::with_capacity(threads.len());
        for thread in &threads {
            let mut facts = match cache.get(&thread.tip) {
                Some(facts) => facts.clone(),
                None => {
                    let state = self.state_at(thread.tip, &thread.branch)?;
                    let (steps, time, status, title) = (state.steps, state.time, state.status, state.title);
                    TipFacts { steps, time, status, title, purpose: state.purpose, merged: false }
                }
            };
            let cached = cache.get(&thread.tip).map(|facts| facts.merged);
            let merged = reach.merged(thread.tip, cached);
            changed |= cached != Some(merged);
            facts.merged = merged;
            current.push((thread.tip, facts));
        }
        if changed || current.len() != cache.len() {
            cache.store(main, &current);
        }
        Ok(threads
            .into_iter()
            .zip(current)
            .map(|(thread, (_, facts))| ThreadSummary {
                id: thread.id,
                branch: thread.branch,
                actor: thread.actor,
                title: facts.title,
                status: if facts.merged { ThreadStatus::Merged } else { facts.status },
                steps: facts.steps,
                last_activity: facts.time,
                tip: thread.tip,
                purpose: facts.purpose,
            })
            .collect())
    }

    /// Start a new thread for `actor` from `from` (a thread, a ref or a commit; `main` when `None`).
    pub fn new_thread(&self, actor: &str, from: Option<&str>, title: Option<&str>) -> Result<ThreadRef> {
        self.new_thread_for(actor, from, title, None)
    }

    /// [`Home::new_thread`] for `purpose` (a test case's thread, say), which every step of it carries.
    pub fn new_thread_for(
        &self,
        actor: &str,
        from: Option<&str>,
        title: Option<&str>,
        purpose: Option<ThreadPurpose>,
    ) -> Result<ThreadRef> {
        let (base, from_text) = match from {
            None => (self.main_tip()?.ok_or_else(|| self.not_home("it has no `main` branch"))?, "main".to_owned()),
            Some(spec) => match self.resolve_thread(spec) {
                Ok(thread) => (thread.tip, format!("thread {}", thread.id)),
                Err(StoreError::UnknownThread(_)) => (self.resolve_commit(spec)?, spec.to_owned()),
                Err(other) => return Err(other),
            },
        };
        self.start_thread_at(actor, base, title, &from_text, purpose)
    }

    /// Start a new thread for `actor` on the commit `base`; `from_text` says in its first step where that
    /// commit came from (`main`, `thread <id>`, …); `purpose` what it is for, when it is not a person's work.
    pub fn start_thread_at(
        &self,
        actor: &str,
        base: ObjectId,
        title: Option<&str>,
        from_text: &str,
        purpose: Option<ThreadPurpose>,
    ) -> Result<ThreadRef> {
        let title = title.map(str::trim).unwrap_or_default();
        let text = if title.is_empty() {
            format!("started a thread from {from_text}")
        } else {
            format!("started thread \"{title}\" from {from_text}")
        };
        self.create_thread(actor, base, |id| StepRecord {
            thread: id.to_owned(),
            number: 1,
            kind: StepKind::Start,
            actor: actor.to_owned(),
            status: ThreadStatus::Open,
            title: title.to_owned(),
            text: text.clone(),
            path: None,
            forked_from: None,
            purpose,
            facts: Vec::new(),
        })
    }

    /// The backchat of `actor`: the thread `threads/<actor>/backchat` in which it talks to HAL, started from
    /// `main` the first time it is asked for.
    pub fn backchat(&self, actor: &str) -> Result<ThreadRef> {
        let branch = format!("threads/{actor}/{BACKCHAT}");
        if let Ok(thread) = self.resolve_thread(&branch) {
            return Ok(thread);
        }
        self.ensure_actor(actor, ActorKind::Human)?;
        let base = self.main_tip()?.ok_or_else(|| self.not_home("it has no `main` branch"))?;
        let tree = self.tree_of(base)?.id;
        let record = StepRecord {
            thread: BACKCHAT.to_owned(),
            number: 1,
            kind: StepKind::Start,
            actor: actor.to_owned(),
            status: ThreadStatus::Open,
            title: format!("backchat of {actor} with HAL"),
            text: format!("started the backchat of {actor} with HAL from main"),
            path: None,
            forked_from: None,
            purpose: None,
            facts: Vec::new(),
        };
        let commit = self.write_commit(tree, vec![base], &self.signature(actor), &record.to_message()?)?;
        self.record().add_written(commit, &branch)?;
        let name = refs::full_name(&format!("refs/heads/{branch}"))?;
        match self.refs().swap_once(&name, Expect::Absent, Target::Object(commit), None) {
            Ok(()) => {
                self.record().add_landed(commit, &branch)?;
                maintenance::after_write(self);
                Ok(ThreadRef { id: BACKCHAT.to_owned(), actor: actor.to_owned(), branch, tip: commit })
            }
            // Another writer created it first: theirs is the backchat.
            Err(error) => self.resolve_thread(&branch).map_err(|_| error),
        }
    }

    /// Fork `source` at its tip, or at the step `at` (a commit id or prefix): a new thread for `actor` that
    /// continues the conversation from there without touching the original.
    pub fn fork_thread(&self, actor: &str, source: &str, at: Option<&str>) -> Result<ThreadRef> {
        let source = self.resolve_thread(source)?;
        let point = match at {
            None => source.tip,
            Some(spec) => {
                let commit = self.resolve_commit(spec)?;
                if !self.is_step_of(&source, commit)? {
                    return Err(StoreError::NotAStep { commit: spec.to_owned(), thread: source.id.clone() });
                }
                commit
            }
        };
        let state = self.state_at(point, &source.branch)?;
        let short = self.short_id(point);
        self.create_thread(actor, point, |id| StepRecord {
            thread: id.to_owned(),
            number: state.steps + 1,
            kind: StepKind::Fork,
            actor: actor.to_owned(),
            status: ThreadStatus::Open,
            // The fork says so in its title: two threads of the same name are otherwise told apart by id only.
            title: match state.title.as_str() {
                "" => format!("fork of {} at step {}", source.id, state.steps),
                title => format!("{title} (fork at step {})", state.steps),
            },
            text: format!("forked thread {} at step {} ({short})", source.id, state.steps),
            path: None,
            forked_from: Some(format!("{}@{point}", source.id)),
            // A fork is a person's own thread, whatever the original was made for.
            purpose: None,
            facts: Vec::new(),
        })
    }

    /// Create `threads/<actor>/<new id>` with one first step on top of `base`.
    fn create_thread(&self, actor: &str, base: ObjectId, record: impl Fn(&str) -> StepRecord) -> Result<ThreadRef> {
        self.ensure_actor(actor, ActorKind::Human)?;
        let tree = self.tree_of(base)?.id;
        let signature = self.signature(actor);
        let mut last_error = None;
        for _ in 0..8 {
            let id = thread_id::generate(SystemTime::now());
            let branch = format!("threads/{actor}/{id}");
            let name = refs::full_name(&format!("refs/heads/{branch}"))?;
            let message = record(&id).to_message()?;
            let commit = self.write_commit(tree, vec![base], &signature, &message)?;
            self.record().add_written(commit, &branch)?;
            match self.refs().swap_once(&name, Expect::Absent, Target::Object(commit), None) {
                Ok(()) => {
                    self.record().add_landed(commit, &branch)?;
                    tracing::debug!(target: "hal_store::thread", %branch, "created thread");
                    maintenance::after_write(self);
                    return Ok(ThreadRef { id, actor: actor.to_owned(), branch, tip: commit });
                }
                // Only a clash of ids leaves the branch existing; anything else is reported after the retries.
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("the loop ran at least once and failed every time"))
    }

    /// Append a user message to a thread.
    pub fn say(&self, actor: &str, thread: &str, text: &str) -> Result<Appended> {
        if text.trim().is_empty() {
            return Err(StoreError::InvalidText("the message is empty"));
        }
        let thread = self.resolve_thread(thread)?;
        self.append_step(actor, &thread, &NewStep::new(StepKind::Message, text, ThreadStatus::Open))
    }

    /// Write `content` to `path` in a thread's tree as one step. `message` describes the change (default:
    /// `write <path>`).
    pub fn write_file(
        &self,
        actor: &str,
        thread: &str,
        path: &str,
        content: &[u8],
        message: Option<&str>,
    ) -> Result<Appended> {
        self.write_file_with_status(actor, thread, path, content, message, ThreadStatus::Open)
    }

    /// [`Home::write_file`], the thread's status after it being `status` (a report written on the thread of a
    /// finished run keeps the run's ending).
    pub fn write_file_with_status(
        &self,
        actor: &str,
        thread: &str,
        path: &str,
        content: &[u8],
        message: Option<&str>,
        status: ThreadStatus,
    ) -> Result<Appended> {
        let path = tree_path::normalize(path)?;
        let thread = self.resolve_thread(thread)?;
        let text = match message.map(str::trim) {
            Some(message) if !message.is_empty() => message.to_owned(),
            _ => format!("write {path} ({} bytes)", content.len()),
        };
        let mut step = NewStep::new(StepKind::Write, text, status);
        step.writes = vec![(path, content.to_vec())];
        self.append_step(actor, &thread, &step)
    }

    /// Append `step` to `thread` as `actor`: one commit carrying its text, facts, data and file writes, made
    /// with a compare-and-swap (rebuilt on the new tip if another writer got there first).
    pub fn append_step(&self, actor: &str, thread: &ThreadRef, step: &NewStep) -> Result<Appended> {
        if step.data.as_deref().is_some_and(|data| data.contains(['\n', '\r', '\0'])) {
            return Err(StoreError::InvalidText("a step's data must be one line"));
        }
        let mut facts = step.facts.clone();
        if let Some(key) = &step.idempotency_key {
            crate::local_record::check_idempotency_key(key)?;
            facts.push((crate::step::key::IDEMPOTENCY_KEY.to_owned(), key.clone()));
        }
        // Blobs first, outside the compare-and-swap: a lost race rebuilds only the tree and the commit.
        let mut blobs = std::collections::BTreeMap::new();
        for (path, content) in &step.writes {
            let path = tree_path::normalize(path)?;
            let blob = self.repo().write_blob(content).git_context(|| format!("storing the content of {path}"))?;
            blobs.insert(path, blob.detach());
        }
        let name = thread.full_name()?;
        let signature = self.signature(actor);
        let (commit, step_number) = self.refs().update_with_retry(self.repo(), &name, |tip| {
            let tip = tip.ok_or_else(|| StoreError::UnknownThread(thread.id.clone()))?;
            if let Some(expected) = step.on_tip
                && expected != tip
            {
                return Err(StoreError::Moved { branch: thread.branch.clone(), expected, found: tip });
            }
            if let Some(base) = step.descends_from
                && !self.grows_from(base, tip)
            {
                return Err(StoreError::Moved { branch: thread.branch.clone(), expected: base, found: tip });
            }
            // `tip` was read before the record: another writer may have landed a step since, and then the swap
            // below loses the race and this is built again on the new tip; frozen only if the ref is still here.
            if !(step.unfreezes && step.on_tip == Some(tip))
                && let Some(left) = self.record().landed_tip(&thread.branch)?
                && !self.grows_from(left, tip)
                && refs::read(self.repo(), &name)? == Some(tip)
            {
                return Err(StoreError::Frozen { thread: thread.id.clone(), left, found: tip });
            }
            let state = self.state_at(tip, &thread.branch)?;
            let tree = self.tree_with_files(state.tree, &blobs)?;
            let record = StepRecord {
                thread: thread.id.clone(),
                number: state.steps + 1,
                kind: step.kind.clone(),
                actor: actor.to_owned(),
                status: step.status.clone(),
                title: state.title.clone(),
                text: step.text.clone(),
                path: match blobs.len() {
                    1 => blobs.keys().next().cloned(),
                    _ => None,
                },
                forked_from: None,
                purpose: state.purpose,
                facts: facts.clone(),
            };
            let message = record.to_message()?;
            let commit = self.write_commit_with_data(tree, vec![tip], &signature, &message, step.data.as_deref())?;
            // Recorded before the branch moves to it: a step on the branch that is not recorded is not HAL's.
            self.record().add_written(commit, &thread.branch)?;
            if let Some(depth) = step.chain_depth {
                self.record().add_depth(&commit.to_string(), depth)?;
            }
            if let Some(key) = &step.idempotency_key {
                self.record().add_key(key, commit)?;
            }
            Ok((commit, record.number))
        })?;
        self.record().add_landed(commit, &thread.branch)?;
        maintenance::after_write(self);
        Ok(Appended { thread: thread.id.clone(), step: step_number, commit })
    }

    /// The step this HAL wrote for a command with idempotency `key`, with its thread as it is now and the first
    /// step after it that ended a run and that this HAL wrote on the branch: `None` when no command with the key
    /// wrote one that landed on its branch within the newest [`KEYED_LOOK_BACK`] steps.
    pub fn keyed_step(&self, key: &str) -> Result<Option<Keyed>> {
        crate::local_record::check_idempotency_key(key)?;
        for commit in self.record().keyed(key)?.into_iter().rev() {
            let Some(branch) = self.record().branch_of(commit)? else { continue };
            let Ok(thread) = self.resolve_thread(&branch) else { continue };
            // A try that lost a race to another writer was written again; only the one on the branch counts. The
            // look-back is bounded, and keeps one step at a time: anyone who can push the branch decides how long
            // it is and what its commits hold.
            let mut answer = None;
            for step in self.steps_back(&thread).take(KEYED_LOOK_BACK) {
                // A step that does not read ends the look-up with its error: walking on past it is not possible,
                // and a retry that found nothing would write its message twice.
                let step = step?;
                if step.commit == commit {
                    return Ok(Some(Keyed { thread, step, answer }));
                }
                if step.actor == crate::identity::HAL_ACTOR
                    && step.status.as_ref().is_some_and(ThreadStatus::ends_run)
                    && self.wrote_on(step.commit, &thread.branch)?
                {
                    answer = Some(step);
                }
            }
        }
        Ok(None)
    }

    /// The steps of a thread, oldest first; with `limit`, only the newest `limit` of them.
    pub fn thread_log(&self, thread: &str, limit: Option<usize>) -> Result<Vec<Step>> {
        let thread = self.resolve_thread(thread)?;
        let mut steps = Vec::new();
        for step in self.steps_back(&thread) {
            if limit.is_some_and(|limit| steps.len() >= limit) {
                break;
            }
            steps.push(step?);
        }
        steps.reverse();
        Ok(steps)
    }

    /// The steps of `thread`'s conversation from its tip back to its first step, newest first, read lazily: a
    /// caller that needs only the recent ones reads only those commits.
    pub fn steps_back<'a>(&'a self, thread: &ThreadRef) -> impl Iterator<Item = Result<Step>> + 'a {
        let branch = thread.branch.clone();
        let mut next = Some(thread.tip);
        std::iter::from_fn(move || {
            let id = next.take()?;
            let step = self.read_step(id, &branch);
            match &step {
                Ok((step, parent)) if step.number.is_none_or(|number| number > 1) => next = *parent,
                _ => {}
            }
            Some(step.map(|(step, _)| step))
        })
    }

    /// A commit of `branch`, read only when its size is at most [`MAX_STEP_BYTES`]: anyone who can push can put a
    /// commit of any size on a thread, and every reader of a thread's commits goes through here.
    pub fn find_step_commit(&self, id: ObjectId, branch: &str) -> Result<gix::Commit<'_>> {
        let size = self.repo().find_header(id).git_context(|| format!("reading commit {id}"))?.size();
        if size > MAX_STEP_BYTES {
            let reason = format!("the commit is {size} bytes; HAL reads steps of at most {MAX_STEP_BYTES} bytes");
            return Err(StoreError::MalformedStep { commit: id.to_string(), branch: branch.to_owned(), reason });
        }
        self.repo().find_commit(id).git_context(|| format!("reading commit {id}"))
    }

    /// One commit of a thread as a [`Step`], with its first parent.
    fn read_step(&self, id: ObjectId, branch: &str) -> Result<(Step, Option<ObjectId>)> {
        let commit = self.find_step_commit(id, branch)?;
        let message = commit.message_raw_sloppy().to_str_lossy().into_owned();
        let time = commit.time().map(|t| t.seconds).unwrap_or_default();
        let parent = commit.parent_ids().next().map(|p| p.detach());
        let step = match StepRecord::from_message(&message) {
            Some(Ok(record)) => {
                let decoded = commit.decode().git_context(|| format!("decoding commit {id}"))?;
                let data = decoded
                    .extra_headers
                    .iter()
                    .find(|(name, _)| *name == crate::step::DATA_HEADER)
                    .map(|(_, value)| value.to_str_lossy().into_owned());
                Step {
                    commit: id,
                    number: Some(record.number),
                    thread: Some(record.thread),
                    kind: record.kind.clone(),
                    actor: record.actor,
                    status: Some(record.status),
                    text: record.text,
                    path: record.path,
                    time,
                    facts: record.facts,
                    data,
                }
            }
            Some(Err(reason)) => {
                let reason = reason.0;
                return Err(StoreError::MalformedStep { commit: id.to_string(), branch: branch.to_owned(), reason });
            }
            None => {
                let author = commit.author().map(|a| a.name.to_str_lossy().into_owned()).unwrap_or_default();
                Step {
                    commit: id,
                    number: None,
                    thread: None,
                    kind: StepKind::Commit,
                    actor: author,
                    status: None,
                    text: message,
                    path: None,
                    time,
                    facts: Vec::new(),
                    data: None,
                }
            }
        };
        Ok((step, parent))
    }

    /// The thread's state as of `commit`: from its own trailers, or from the newest step below a few plain
    /// git commits.
    pub(crate) fn state_at(&self, commit: ObjectId, branch: &str) -> Result<ThreadState> {
        let mut next = Some(commit);
        let mut asked = None;
        for _ in 0..MAX_PLAIN_COMMITS {
            let Some(id) = next else { break };
            let object = self.find_step_commit(id, branch)?;
            if asked.is_none() {
                let tree = object.tree_id().git_context(|| format!("reading the tree of commit {id}"))?.detach();
                asked = Some((object.time().map(|t| t.seconds).unwrap_or_default(), tree));
            }
            let (time, tree) = asked.expect("set on the first commit read");
            match StepRecord::from_message(&object.message_raw_sloppy().to_str_lossy()) {
                Some(Ok(record)) => {
                    return Ok(ThreadState {
                        steps: record.number,
                        time,
                        tree,
                        title: record.title,
                        status: record.status,
                        purpose: record.purpose,
                    });
                }
                Some(Err(reason)) => {
                    return Err(StoreError::MalformedStep {
                        commit: id.to_string(),
                        branch: branch.to_owned(),
                        reason: reason.0,
                    });
                }
                None => next = object.parent_ids().next().map(|p| p.detach()),
            }
        }
        Err(StoreError::MalformedStep {
            commit: commit.to_string(),
            branch: branch.to_owned(),
            reason: format!("no HAL step within {MAX_PLAIN_COMMITS} commits of it"),
        })
    }

    /// Whether `commit` is one of the steps `thread` shows in its log.
    fn is_step_of(&self, thread: &ThreadRef, commit: ObjectId) -> Result<bool> {
        let mut next = Some(thread.tip);
        while let Some(id) = next {
            if id == commit {
                return Ok(true);
            }
            let object = self.find_step_commit(id, &thread.branch)?;
            if let Some(Ok(record)) = StepRecord::from_message(&object.message_raw_sloppy().to_str_lossy())
                && record.number <= 1
            {
                return Ok(false);
            }
            next = object.parent_ids().next().map(|p| p.detach());
        }
        Ok(false)
    }

    /// Resolve a revision (ref name, commit id or prefix, `main~2`, …) to a commit.
    pub fn resolve_commit(&self, spec: &str) -> Result<ObjectId> {
        let unknown = |source| StoreError::UnknownRevision { spec: spec.to_owned(), source };
        let id = self.repo().rev_parse_single(spec).map_err(unknown)?;
        let commit = id.object().and_then(|o| o.peel_to_commit()).map_err(unknown)?;
        Ok(commit.id)
    }

    /// A short form of a commit id for messages.
    fn short_id(&self, id: ObjectId) -> String {
        id.attach(self.repo()).shorten_or_id().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step meant for one tip (an isolate's writes, computed from the tree there) is refused once the thread
    /// moved on, and nothing of it is written; on the tip it was meant for it goes through.
    #[test]
    fn a_step_meant_for_a_tip_is_refused_after_the_thread_moved_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let read_at = home.new_thread("alice", None, Some("t")).expect("thread");
        let moved = home.write_file("alice", &read_at.id, "a.txt", b"committed meanwhile", None).expect("write");
        let mut step = NewStep::new(StepKind::Write, "by hand", ThreadStatus::Open);
        step.writes = vec![("a.txt".to_owned(), b"stale".to_vec())];
        step.on_tip = Some(read_at.tip);
        let refused = home.append_step("alice", &read_at, &step).expect_err("the thread moved on");
        assert!(
            matches!(&refused, StoreError::Moved { expected, found, .. } if *expected == read_at.tip && *found == moved.commit),
            "{refused}"
        );
        let now = home.resolve_thread(&read_at.id).expect("resolve");
        assert_eq!(now.tip, moved.commit, "nothing was written");
        step.on_tip = Some(now.tip);
        let appended = home.append_step("alice", &now, &step).expect("on the tip it was meant for");
        assert_eq!(home.file_at(appended.commit, "a.txt").expect("read"), Some(b"stale".to_vec()));
    }

    #[test]
    fn append_step_records_facts_data_and_several_files_in_one_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let thread = home.new_thread("alice", None, Some("t")).expect("thread");
        let mut step = NewStep::new(StepKind::Tool, "wrote two files", ThreadStatus::Running)
            .fact("Hal-Tool", "files.write")
            .fact("Hal-Call", "call_1");
        step.data = Some(r#"{"exact":"bytes \u00e9"}"#.to_owned());
        step.writes = vec![("a/one.txt".to_owned(), b"1".to_vec()), ("two.txt".to_owned(), b"2".to_vec())];
        let appended = home.append_step("hal", &thread, &step).expect("append");
        assert_eq!(appended.step, 2);

        let thread = home.resolve_thread(&thread.id).expect("resolve");
        let newest = home.steps_back(&thread).next().expect("a step").expect("readable");
        assert_eq!(newest.kind, StepKind::Tool);
        assert_eq!(newest.status, Some(ThreadStatus::Running));
        assert_eq!(newest.fact("Hal-Tool"), Some("files.write"));
        assert_eq!(newest.data.as_deref(), step.data.as_deref());
        assert_eq!(home.file_at(appended.commit, "a/one.txt").expect("read"), Some(b"1".to_vec()));
        assert_eq!(home.file_at(appended.commit, "two.txt").expect("read"), Some(b"2".to_vec()));
        assert_eq!(home.steps_back(&thread).count(), 2, "the walk stops at the first step");

        step.data = Some("two\nlines".to_owned());
        assert!(home.append_step("hal", &thread, &step).is_err());
        let fsck = std::process::Command::new("git")
            .args(["fsck", "--strict", "--no-progress"])
            .current_dir(dir.path())
            .output()
            .expect("git fsck runs");
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
    }
}
