//! Reading steps back: a thread's log, its steps newest first, one step of a commit, and the state at a commit.

use gix::ObjectId;
use gix::bstr::ByteSlice;

use super::*;
use crate::error::GixContext;
use crate::home::Home;
use crate::step::{StepKind, StepRecord};
use crate::{Result, StoreError};

impl Home {
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
    pub(crate) fn read_step(&self, id: ObjectId, branch: &str) -> Result<(Step, Option<ObjectId>)> {
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
    pub(crate) fn is_step_of(&self, thread: &ThreadRef, commit: ObjectId) -> Result<bool> {
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
}
