//! Making threads: new ones from `main` or a commit, an actor's backchat, and forks of another thread.

use std::time::SystemTime;

use gix::ObjectId;
use gix::refs::Target;

use super::*;
use crate::home::{ActorKind, Home};
use crate::refs::{self, Expect};
use crate::step::{StepKind, StepRecord, ThreadPurpose, ThreadStatus};
use crate::{Result, StoreError, maintenance, thread_id};

impl Home {
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
    pub(crate) fn create_thread(
        &self,
        actor: &str,
        base: ObjectId,
        record: impl Fn(&str) -> StepRecord,
    ) -> Result<ThreadRef> {
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
}
