//! A commit a person makes on `main` through HAL, signed with their own key: a change of `hal.yaml` an owner asks
//! for (`hal approve --scope always`). It is their act, not HAL's: their name and their signature, as if they had
//! run `git commit -S`; HAL only builds it, moves `main` with a compare-and-swap and brings a checked-out work tree
//! along.

use gix::ObjectId;
use gix::object::tree::EntryKind;

use crate::error::GixContext;
use crate::home::{Home, MAIN_REF};
use crate::{Result, StoreError, refs};

impl Home {
    /// Commit `content` as the file `path` on `main`, which must be at `expected`, as `actor` signed with `key`;
    /// returns the new tip. Refused (nothing written) when `main` moved, or its work tree cannot follow.
    pub fn commit_on_main_as(
        &self,
        actor: &str,
        key: &crate::keys::Signer,
        expected: ObjectId,
        path: &str,
        content: &[u8],
        message: &str,
    ) -> Result<ObjectId> {
        let main = refs::full_name(MAIN_REF)?;
        let tip = refs::read(self.repo(), &main)?;
        if tip != Some(expected) {
            return Err(StoreError::Moved {
                branch: "main".to_owned(),
                expected,
                found: tip.unwrap_or_else(|| ObjectId::null(self.repo().object_hash())),
            });
        }
        let blob = self.repo().write_blob(content).git_context(|| format!("writing {path}"))?.detach();
        let tree = self.tree_of(expected)?.id;
        let mut editor = self.repo().edit_tree(tree).git_context(|| "editing main's tree".to_owned())?;
        editor.upsert(path, EntryKind::Blob, blob).git_context(|| format!("putting {path} in main's tree"))?;
        let tree = editor.write().git_context(|| "writing main's tree".to_owned())?.detach();
        let signature = self.signature(actor);
        let commit = self.write_signed_commit(tree, vec![expected], &signature, message, None, Some(key))?;
        self.move_branch(
            &main,
            Some(expected),
            commit,
            &signature,
            &format!("hal: {}", crate::files::first_line(message)),
        )?;
        Ok(commit)
    }
}
