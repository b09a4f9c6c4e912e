//! Adding steps: one commit per step, made with a compare-and-swap on the branch, and finding a keyed step.

use super::*;
use crate::error::GixContext;
use crate::home::Home;
use crate::refs::{self};
use crate::step::{StepKind, StepRecord, ThreadStatus};
use crate::{Result, StoreError, maintenance, tree_path};

impl Home {
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
                self.record().add_depth(&commit.to_string(), depth, &step.held_by)?;
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
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::StoreError;
    use crate::home::Home;
    use crate::step::{StepKind, ThreadStatus};

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
