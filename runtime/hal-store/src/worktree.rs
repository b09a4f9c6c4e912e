//! Keeping a checked-out `main` in step when HAL moves it.
//!
//! A home repo is usually a normal clone with `main` checked out. Moving `refs/heads/main` alone (as a merge
//! or `hal init` does) would leave the index and files behind, and `git status` would show the new work as
//! staged for removal. So after moving a checked-out branch HAL runs `git read-tree -m -u <old> <new>`: the
//! two-tree form of a fast-forward checkout, which carries local edits along and refuses (changing nothing)
//! when a local edit or an untracked file is in the way. gix has no such checkout, hence the `git` program.

use std::path::Path;

use gix::ObjectId;
use gix::refs::FullName;

use crate::{Result, StoreError, git_cli};

/// The work tree in which `branch` is checked out, if any.
pub(crate) fn checked_out_at<'r>(repo: &'r gix::Repository, branch: &FullName) -> Option<&'r Path> {
    let workdir = repo.workdir()?;
    let head = repo.head_name().ok().flatten()?;
    (head == *branch).then_some(workdir)
}

/// Update the index and files in `workdir` from tree `old` to tree `new`.
pub(crate) fn update(workdir: &Path, old: ObjectId, new: ObjectId) -> Result<()> {
    let (old, new) = (old.to_string(), new.to_string());
    git_cli::run(git_cli::in_work_tree(workdir), &["read-tree", "-m", "-u", &old, &new]).map_err(|error| match error {
        StoreError::GitCommand { detail, .. } => StoreError::WorktreeSync { workdir: workdir.to_owned(), detail },
        other => other,
    })
}
