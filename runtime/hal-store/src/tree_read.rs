//! Reading the files of a commit's tree: one file, a directory's files, every file with its size, blob ids.

use gix::ObjectId;
use gix::bstr::ByteSlice;

use crate::Result;
use crate::error::{GixContext, StoreError};
use crate::home::Home;

/// The largest file [`Home::file_at`] reads: far above any help, agent, actor file or `hal.yaml`, and above what a
/// model could use of one file; a caller that needs more (an isolate, up to its memory) says so with
/// [`Home::file_at_most`].
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The largest hand-written file HAL reads to know what is in force (`hal.yaml`, an actor's file, a help or an
/// agent): a page or two of YAML; a larger one is reported as not applied, and not read.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

impl Home {
    /// The blob at `path` in `commit`'s tree, if there is one, when it is at most [`MAX_FILE_BYTES`]: anyone who
    /// can push a branch can put a file of any size in its tree, and HAL reads such files (an actor's file, a
    /// thread's help, what a tool reads) whole into memory.
    pub fn file_at(&self, commit: ObjectId, path: &str) -> Result<Option<Vec<u8>>> {
        self.file_at_most(commit, path, MAX_FILE_BYTES)
    }

    /// The blob at `path` in `commit`'s tree, if there is one, when it is at most `most` bytes (its size is read
    /// from the object's header first); a larger one is [`StoreError::TooLarge`].
    pub fn file_at_most(&self, commit: ObjectId, path: &str, most: u64) -> Result<Option<Vec<u8>>> {
        let tree = self.tree_of(commit)?;
        let entry = tree.lookup_entry_by_path(path).git_context(|| format!("looking up {path} in {commit}"))?;
        match entry {
            Some(entry) if entry.mode().is_blob() => {
                let size = self.repo().find_header(entry.oid()).git_context(|| format!("reading {path}"))?.size();
                if size > most {
                    return Err(StoreError::TooLarge { path: path.to_owned(), size, most });
                }
                let blob = entry.object().git_context(|| format!("reading {path} in {commit}"))?;
                Ok(Some(blob.detach().data))
            }
            _ => Ok(None),
        }
    }

    /// Whether `commit`'s tree has a file at `path` (read without reading the file).
    pub fn has_file(&self, commit: ObjectId, path: &str) -> Result<bool> {
        let tree = self.tree_of(commit)?;
        let entry = tree.lookup_entry_by_path(path).git_context(|| format!("looking up {path} in {commit}"))?;
        Ok(entry.is_some_and(|entry| entry.mode().is_blob()))
    }

    /// The files directly inside directory `dir` of `commit`'s tree (not its subdirectories), sorted by name.
    /// An absent directory has no files.
    pub fn files_in(&self, commit: ObjectId, dir: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let Some(subtree) = self.dir_tree(commit, dir)? else { return Ok(Vec::new()) };
        let mut files = Vec::new();
        for item in subtree.iter() {
            let item = item.git_context(|| format!("reading {dir} in {commit}"))?;
            if item.mode().is_blob() {
                let name = item.filename().to_str_lossy().into_owned();
                let blob = self.repo().find_blob(item.oid()).git_context(|| format!("reading {dir}/{name}"))?;
                files.push((name, blob.detach().data));
            }
        }
        files.sort();
        Ok(files)
    }

    /// The files directly inside directory `dir` of `commit`'s tree, by name with their blob ids, in tree order, at
    /// most `most` of them: nothing is read but the tree itself (an absent directory has none).
    pub fn blobs_in(&self, commit: ObjectId, dir: &str, most: usize) -> Result<Vec<(String, ObjectId)>> {
        let Some(subtree) = self.dir_tree(commit, dir)? else { return Ok(Vec::new()) };
        let mut blobs = Vec::new();
        for item in subtree.iter() {
            let item = item.git_context(|| format!("reading {dir} in {commit}"))?;
            if blobs.len() >= most {
                break;
            }
            if item.mode().is_blob() {
                blobs.push((item.filename().to_str_lossy().into_owned(), item.oid().to_owned()));
            }
        }
        Ok(blobs)
    }

    /// Every file under directory `dir` of `commit`'s tree (`""` for the whole tree), recursively, as full paths
    /// with their sizes in bytes, sorted. An absent directory has no files.
    pub fn list_files(&self, commit: ObjectId, dir: &str) -> Result<Vec<(String, u64)>> {
        let Some(tree) = self.dir_tree(commit, dir)? else { return Ok(Vec::new()) };
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut files = Vec::new();
        self.collect_files(tree, prefix, &mut files)?;
        files.sort();
        Ok(files)
    }

    pub(crate) fn collect_files(
        &self,
        tree: gix::Tree<'_>,
        prefix: String,
        files: &mut Vec<(String, u64)>,
    ) -> Result<()> {
        for item in tree.iter() {
            let item = item.git_context(|| format!("reading tree {prefix}"))?;
            let path = format!("{prefix}{}", item.filename().to_str_lossy());
            if item.mode().is_tree() {
                let subtree = self.repo().find_tree(item.oid()).git_context(|| format!("reading {path}"))?;
                self.collect_files(subtree, format!("{path}/"), files)?;
            } else if item.mode().is_blob() {
                let header = self.repo().find_header(item.oid()).git_context(|| format!("reading {path}"))?;
                files.push((path, header.size()));
            }
        }
        Ok(())
    }

    /// The tree of directory `dir` in `commit` (`""`: the whole tree); `None` when there is no such directory.
    fn dir_tree(&self, commit: ObjectId, dir: &str) -> Result<Option<gix::Tree<'_>>> {
        let root = self.tree_of(commit)?;
        if dir.is_empty() {
            return Ok(Some(root));
        }
        match root.lookup_entry_by_path(dir).git_context(|| format!("looking up {dir} in {commit}"))? {
            Some(entry) if entry.mode().is_tree() => {
                Ok(Some(entry.object().git_context(|| format!("reading {dir} in {commit}"))?.into_tree()))
            }
            _ => Ok(None),
        }
    }

    /// The git id of the entry (file or directory) at `path` in `commit`'s tree, if there is one.
    pub fn entry_id(&self, commit: ObjectId, path: &str) -> Result<Option<ObjectId>> {
        let tree = self.tree_of(commit)?;
        let entry = tree.lookup_entry_by_path(path).git_context(|| format!("looking up {path} in {commit}"))?;
        Ok(entry.map(|entry| entry.oid().to_owned()))
    }

    /// Every file of `commit`'s tree with its git blob id, sorted by path: what a diff between two commits
    /// compares.
    pub fn file_ids(&self, commit: ObjectId) -> Result<Vec<(String, ObjectId)>> {
        self.file_ids_under(commit, "")
    }

    /// [`Home::file_ids`] of the files under directory `dir` (`""`: all), with their full paths; nothing is read but
    /// trees. An absent directory has none.
    pub fn file_ids_under(&self, commit: ObjectId, dir: &str) -> Result<Vec<(String, ObjectId)>> {
        let mut files = Vec::new();
        let Some(tree) = self.dir_tree(commit, dir)? else { return Ok(files) };
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut pending = vec![(tree, prefix)];
        while let Some((tree, prefix)) = pending.pop() {
            for item in tree.iter() {
                let item = item.git_context(|| format!("reading tree {prefix}"))?;
                let path = format!("{prefix}{}", item.filename().to_str_lossy());
                if item.mode().is_tree() {
                    let subtree = self.repo().find_tree(item.oid()).git_context(|| format!("reading {path}"))?;
                    pending.push((subtree, format!("{path}/")));
                } else if item.mode().is_blob() {
                    files.push((path, item.oid().to_owned()));
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// The tree of `commit`.
    pub(crate) fn tree_of(&self, commit: ObjectId) -> Result<gix::Tree<'_>> {
        self.repo()
            .find_commit(commit)
            .and_then(|c| c.tree())
            .git_context(|| format!("reading the tree of commit {commit}"))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Home, NewStep, StepKind, StoreError, ThreadStatus};

    /// Regression: a file in a pushed branch was read whole into memory whatever its size (an actor's file, what
    /// a tool read, a checked help): a push of one large blob could exhaust the daemon's memory.
    #[test]
    fn a_file_larger_than_the_reader_takes_is_refused_by_its_size_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let thread = home.new_thread("alice", None, None).expect("thread");
        let mut step = NewStep::new(StepKind::Write, "files", ThreadStatus::Open);
        let large = usize::try_from(super::MAX_FILE_BYTES).expect("fits") + 1;
        step.writes = vec![("big.bin".to_owned(), vec![0; large]), ("small.txt".to_owned(), b"hi".to_vec())];
        let commit = home.append_step("alice", &thread, &step).expect("append").commit;
        match home.file_at(commit, "big.bin") {
            Err(StoreError::TooLarge { path, size, most }) => {
                assert_eq!((path.as_str(), size, most), ("big.bin", large as u64, super::MAX_FILE_BYTES));
            }
            other => panic!("expected TooLarge, got {:?}", other.map(|b| b.map(|b| b.len()))),
        }
        assert!(home.file_at_most(commit, "big.bin", large as u64).expect("a reader that takes it").is_some());
        assert_eq!(home.file_at(commit, "small.txt").expect("small").as_deref(), Some(&b"hi"[..]));
        assert!(home.has_file(commit, "big.bin").expect("has") && !home.has_file(commit, "none").expect("has"));
    }
}
