//! Reading the files of a commit's tree: one file, a directory's files, every file with its size, blob ids.

use gix::ObjectId;
use gix::bstr::ByteSlice;

use crate::Result;
use crate::error::GixContext;
use crate::home::Home;

impl Home {
    /// The blob at `path` in `commit`'s tree, if there is one.
    pub fn file_at(&self, commit: ObjectId, path: &str) -> Result<Option<Vec<u8>>> {
        let tree = self.tree_of(commit)?;
        let entry = tree.lookup_entry_by_path(path).git_context(|| format!("looking up {path} in {commit}"))?;
        match entry {
            Some(entry) if entry.mode().is_blob() => {
                let blob = entry.object().git_context(|| format!("reading {path} in {commit}"))?;
                Ok(Some(blob.detach().data))
            }
            _ => Ok(None),
        }
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
