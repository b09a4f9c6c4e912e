//! Applying a step's file writes to its tree: one edit, whatever their number.
//!
//! A tool call may write thousands of files. They are applied with one tree editor and written once, so the
//! cost grows with the number of files (and the directories they touch), not with its square, and the step
//! leaves one new tree per changed directory instead of one per file. Before anything is written the writes are
//! checked against each other and against the tree, reading each directory once: a write may not turn a file
//! into a directory or the other way round.

use std::collections::{BTreeMap, HashMap};

use gix::ObjectId;
use gix::bstr::BString;
use gix::objs::tree::EntryKind;

use crate::error::GixContext;
use crate::home::Home;
use crate::{Result, StoreError};

/// The entries of one directory: name → (is a directory, id).
type Listing = HashMap<BString, (bool, ObjectId)>;

impl Home {
    /// `tree` with `writes` (canonical path → blob) applied; refuses a write that would turn a file into a
    /// directory or a directory into a file.
    pub(crate) fn tree_with_files(&self, tree: ObjectId, writes: &BTreeMap<String, ObjectId>) -> Result<ObjectId> {
        if writes.is_empty() {
            return Ok(tree);
        }
        let refuse = |path: &str, reason: String| StoreError::InvalidPath { path: path.to_owned(), reason };
        for path in writes.keys() {
            for (at, _) in path.match_indices('/') {
                let dir = &path[..at];
                if writes.contains_key(dir) {
                    return Err(refuse(path, format!("{dir} is a file written by the same step, not a directory")));
                }
            }
        }
        let mut listings: HashMap<String, Listing> = HashMap::new();
        listings.insert(String::new(), self.listing(tree)?);
        for path in writes.keys() {
            let mut dir = String::new();
            let mut components = path.split('/').peekable();
            while let Some(name) = components.next() {
                let last = components.peek().is_none();
                let here = if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") };
                let entry = listings.get(&dir).and_then(|listing| listing.get(name.as_bytes())).copied();
                match entry {
                    None => break,
                    Some((true, _)) if last => {
                        return Err(refuse(path, "it is a directory in the thread's tree".to_owned()));
                    }
                    Some((false, _)) if !last => {
                        return Err(refuse(path, format!("{here} is a file in the thread's tree, not a directory")));
                    }
                    Some((true, id)) => {
                        if !listings.contains_key(&here) {
                            listings.insert(here.clone(), self.listing(id)?);
                        }
                        dir = here;
                    }
                    Some((false, _)) => {} // an existing file, replaced
                }
            }
        }
        let mut editor = self.repo().edit_tree(tree).git_context(|| format!("editing tree {tree}"))?;
        for (path, blob) in writes {
            editor.upsert(path.as_str(), EntryKind::Blob, *blob).git_context(|| format!("adding {path}"))?;
        }
        Ok(editor.write().git_context(|| format!("writing the tree of {} files", writes.len()))?.detach())
    }

    /// The entries of the tree `id`.
    fn listing(&self, id: ObjectId) -> Result<Listing> {
        let tree = self.repo().find_tree(id).git_context(|| format!("reading tree {id}"))?;
        let decoded = tree.decode().git_context(|| format!("decoding tree {id}"))?;
        Ok(decoded.entries.iter().map(|e| (e.filename.to_owned(), (e.mode.is_tree(), e.oid.to_owned()))).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Home, NewStep, StepKind, ThreadStatus};

    fn loose_objects(dir: &std::path::Path) -> usize {
        let objects = dir.join(".git/objects");
        std::fs::read_dir(&objects)
            .expect("objects")
            .flatten()
            .filter(|e| e.file_name().len() == 2)
            .map(|e| std::fs::read_dir(e.path()).expect("fan-out").count())
            .sum()
    }

    /// Regression: each write of a step rebuilt the tree from scratch (12,000 files took 110 s and left 360 MB
    /// of loose objects). Now the step writes one blob per file and one tree per directory, once.
    #[test]
    fn regression_a_step_with_many_files_builds_its_tree_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let thread = home.new_thread("alice", None, None).expect("thread");
        let mut step = NewStep::new(StepKind::Write, "many files", ThreadStatus::Open);
        step.writes = (0..2_000).map(|n| (format!("many/d{}/f{n}.txt", n % 10), n.to_string().into_bytes())).collect();
        let before = loose_objects(dir.path());
        let appended = home.append_step("alice", &thread, &step).expect("append");
        let added = loose_objects(dir.path()) - before;
        // 2,000 blobs, 10 + 1 + 1 trees (d*, many, the root), one commit.
        assert_eq!(added, 2_000 + 12 + 1);
        assert_eq!(home.list_files(appended.commit, "many").expect("list").len(), 2_000);
        assert_eq!(home.file_at(appended.commit, "many/d7/f1997.txt").expect("read").as_deref(), Some(&b"1997"[..]));
    }

    #[test]
    fn a_write_may_not_turn_a_file_into_a_directory_or_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let thread = home.new_thread("alice", None, None).expect("thread");
        home.write_file("alice", &thread.id, "a/b.txt", b"1", None).expect("write");
        for (writes, expected) in [
            (vec![("a", "x")], "it is a directory in the thread's tree"),
            (vec![("a/b.txt/c", "x")], "a/b.txt is a file in the thread's tree, not a directory"),
            (vec![("n", "x"), ("n/m", "y")], "n is a file written by the same step, not a directory"),
        ] {
            let thread = home.resolve_thread(&thread.id).expect("thread");
            let mut step = NewStep::new(StepKind::Write, "w", ThreadStatus::Open);
            step.writes = writes.iter().map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec())).collect();
            let error = home.append_step("alice", &thread, &step).expect_err(expected).to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
