//! Accepting a thread's work: merging its branch into `main`.
//!
//! Before `main` moves, a `merged` step is written on top of the thread (same tree, so the work is unchanged)
//! to record who accepted it and when; that step is what `main` then fast-forwards to, or what a merge commit
//! takes as its second parent. The thread's branch is moved to the step afterwards. Nothing but the thread's
//! own tree reaches `main`: HAL keeps no bookkeeping files in trees.

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::refs::Target;
use serde::Serialize;

use crate::error::GixContext;
use crate::home::{Home, MAIN_REF};
use crate::refs::{self, Expect};
use crate::step::{StepKind, StepRecord, ThreadStatus, key};
use crate::thread::{deserialize_id, serialize_id};
use crate::{Result, StoreError};

/// Most refused paths a merge lists (enough to see what is wrong).
const MAX_LISTED_PATHS: usize = 100;
/// How often a merge is rebuilt when `main` keeps moving under it.
const MAX_ATTEMPTS: u32 = 20;

/// What `hal thread merge` did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum MergeOutcome {
    /// `main` was behind the thread and now points at its `merged` step.
    FastForward {
        /// The new tip of `main`.
        #[serde(serialize_with = "serialize_id", deserialize_with = "deserialize_id")]
        commit: ObjectId,
    },
    /// `main` had moved on; a merge commit joins both.
    Merged {
        /// The merge commit, the new tip of `main`.
        #[serde(serialize_with = "serialize_id", deserialize_with = "deserialize_id")]
        commit: ObjectId,
    },
    /// Everything on the thread is already in `main`.
    AlreadyMerged,
    /// The thread and `main` changed the same paths; nothing was changed.
    Conflict {
        /// The conflicting paths.
        paths: Vec<String>,
    },
    /// The thread changes or deletes files in directories of `main` that never change (the merge's guard says
    /// which: published plugin versions, whose change is a new version directory); nothing was changed.
    Immutable {
        /// The files it would change.
        paths: Vec<String>,
    },
    /// The thread's commits (its tree, or any commit `main` lacks) hold names that git refuses or HAL never
    /// writes (`.git` look-alikes, Windows device names, `.gitmodules`, `.gitattributes`): `git fsck`, a checkout
    /// on macOS or Windows, or a server that checks pushes would refuse them; nothing was changed.
    UnsafePaths {
        /// Each refused path with the reason.
        paths: Vec<String>,
    },
}

/// What a caller forbids a merge to change on `main`: directories whose content never changes once they are there
/// (a merge may remove one whole, which retires it). The store knows no such rule of its own; HAL's published
/// plugin versions are one (`hal_sandbox::plugins::Published`).
pub trait MergeGuard {
    /// The frozen directory (a path on `main`, without a trailing `/`) that holds the file at `path`, if any.
    fn frozen_dir(&self, path: &str) -> Option<String>;
}

/// A merge with nothing frozen.
pub struct Unguarded;

impl MergeGuard for Unguarded {
    fn frozen_dir(&self, _: &str) -> Option<String> {
        None
    }
}

impl Home {
    /// Merge the thread named by `query` into `main` on behalf of `actor`, refusing a change to what `guard`
    /// freezes.
    pub fn merge_thread(&self, actor: &str, query: &str, guard: &dyn MergeGuard) -> Result<MergeOutcome> {
        self.merge_thread_at(actor, query, guard, None)
    }

    /// [`Home::merge_thread`] of exactly the tip `expected` (the one an owner signed): [`StoreError::Moved`] when
    /// the branch is elsewhere, so what lands on `main` is what was approved.
    pub fn merge_thread_at(
        &self,
        actor: &str,
        query: &str,
        guard: &dyn MergeGuard,
        expected: Option<ObjectId>,
    ) -> Result<MergeOutcome> {
        let thread = self.resolve_thread(query)?;
        let thread_name = refs::full_name(&format!("refs/heads/{}", thread.branch))?;
        let main = refs::full_name(MAIN_REF)?;
        let signature = self.signature(actor);
        for _ in 0..MAX_ATTEMPTS {
            let main_tip = self.main_tip()?.ok_or_else(|| self.not_home("it has no `main` branch"))?;
            let tip = refs::read(self.repo(), &thread_name)?.ok_or_else(|| StoreError::UnknownThread(query.into()))?;
            if let Some(expected) = expected
                && tip != expected
            {
                return Err(StoreError::Moved { branch: thread.branch.clone(), expected, found: tip });
            }
            if self.is_ancestor(tip, main_tip)? {
                return Ok(MergeOutcome::AlreadyMerged);
            }
            let fast_forward = self.is_ancestor(main_tip, tip)?;
            let merged_tree = if fast_forward {
                None
            } else {
                match self.merged_tree(main_tip, tip, &thread.branch)? {
                    Ok(tree) => Some(tree),
                    Err(paths) => return Ok(MergeOutcome::Conflict { paths }),
                }
            };
            let state = self.state_at(tip, &thread.branch)?;
            let unsafe_paths = self.unsafe_history(main_tip, tip)?;
            if !unsafe_paths.is_empty() {
                return Ok(MergeOutcome::UnsafePaths { paths: unsafe_paths });
            }
            let changed = self.changed_frozen(main_tip, merged_tree.unwrap_or(state.tree), guard)?;
            if !changed.is_empty() {
                return Ok(MergeOutcome::Immutable { paths: changed });
            }
            let record = StepRecord {
                thread: thread.id.clone(),
                number: state.steps + 1,
                kind: StepKind::Merged,
                actor: actor.to_owned(),
                status: ThreadStatus::Merged,
                title: state.title.clone(),
                text: "merged the thread's work into main".to_owned(),
                path: None,
                forked_from: None,
                purpose: state.purpose,
                facts: Vec::new(),
            };
            let step = self.write_commit(state.tree, vec![tip], &signature, &record.to_message()?)?;
            self.record().add_written(step, &thread.branch)?;
            let (new_main, outcome) = match merged_tree {
                None => (step, MergeOutcome::FastForward { commit: step }),
                Some(tree) => {
                    let title = if state.title.is_empty() { String::new() } else { format!(": {}", state.title) };
                    let (id, branch) = (&thread.id, &thread.branch);
                    let (thread_key, kind_key, kind) = (key::THREAD, key::KIND, StepKind::Merge);
                    let message = format!(
                        "Merge thread {id}{title}\n\nAccept the work of {branch} into main.\n\n{thread_key}: {id}\n\
                         {kind_key}: {kind}\n"
                    );
                    let commit = self.write_commit(tree, vec![main_tip, step], &signature, &message)?;
                    (commit, MergeOutcome::Merged { commit })
                }
            };
            let reflog = format!("hal: merge {}", thread.branch);
            match self.move_branch(&main, Some(main_tip), new_main, &signature, &reflog) {
                Ok(()) => {}
                Err(error @ StoreError::WorktreeSync { .. }) => return Err(error),
                Err(error) if self.main_tip()? == Some(main_tip) => return Err(error),
                Err(_) => continue, // main moved: merge again with its new tip
            }
            match self.refs().swap_once(&thread_name, Expect::At(tip), Target::Object(step), None) {
                Ok(()) => self.record().add_landed(step, &thread.branch)?,
                Err(_) => tracing::warn!(target: "hal_store::merge", branch = %thread.branch,
                    "the thread moved while it was being merged; its `merged` step is on main only"),
            }
            return Ok(outcome);
        }
        Err(StoreError::RefUpdateFailed {
            name: "refs/heads/main".into(),
            attempts: MAX_ATTEMPTS,
            reason: "main kept moving while the merge was prepared".into(),
        })
    }

    /// The directories on `main` (at `main_tip`) that `guard` freezes and whose content `tree` changes in any way:
    /// a file changed, added, removed or with another mode (the directory's tree id differs). Removing a whole
    /// directory (retiring it) is not a change of it.
    fn changed_frozen(&self, main_tip: ObjectId, tree: ObjectId, guard: &dyn MergeGuard) -> Result<Vec<String>> {
        let mut published: Vec<String> =
            self.file_ids(main_tip)?.into_iter().filter_map(|(path, _)| guard.frozen_dir(&path)).collect();
        published.sort();
        published.dedup();
        if published.is_empty() {
            return Ok(Vec::new());
        }
        let main_tree = self.tree_of(main_tip)?;
        let tree = self.repo().find_tree(tree).git_context(|| format!("reading tree {tree}"))?;
        let mut changed = Vec::new();
        for dir in published {
            let before = main_tree.lookup_entry_by_path(&dir).git_context(|| format!("looking up {dir}"))?;
            let after = tree.lookup_entry_by_path(&dir).git_context(|| format!("looking up {dir}"))?;
            // Removing a whole version retires it; changing what it holds is refused.
            if let (Some(before), Some(after)) = (before, after)
                && before.oid() != after.oid()
            {
                changed.push(format!("{dir}/"));
            }
        }
        Ok(changed)
    }

    /// The unsafe names (see [`Home::unsafe_paths`]) in every commit the merge would bring onto `main`: each
    /// commit of the thread that `main` does not have yet, checked against its first parent, so that a bad name
    /// added and removed again still counts (its objects would reach `main` through the history).
    fn unsafe_history(&self, main_tip: ObjectId, tip: ObjectId) -> Result<Vec<String>> {
        let walk = self
            .repo()
            .rev_walk([tip])
            .with_hidden([main_tip])
            .all()
            .git_context(|| format!("walking the commits of {tip} that main lacks"))?;
        let mut found = std::collections::BTreeSet::new();
        for info in walk {
            let info = info.git_context(|| format!("walking the commits of {tip} that main lacks"))?;
            let commit = self.find_step_commit(info.id, "the thread to merge")?;
            let tree = commit.tree_id().git_context(|| format!("reading the tree of {}", info.id))?.detach();
            let parent = match commit.parent_ids().next() {
                Some(parent) => Some(
                    self.find_step_commit(parent.detach(), "the thread to merge")?
                        .tree_id()
                        .git_context(|| format!("reading the tree of {parent}"))?
                        .detach(),
                ),
                None => None,
            };
            // Most steps leave the tree as it was: nothing new to check.
            if parent == Some(tree) {
                continue;
            }
            found.extend(self.unsafe_paths(parent, tree)?);
            if found.len() >= MAX_LISTED_PATHS {
                break;
            }
        }
        Ok(found.into_iter().take(MAX_LISTED_PATHS).collect())
    }

    /// The names in `tree` that are not already on `main` (whose tree is `main_tree`) and that the path check
    /// every HAL writer passes would refuse, as `path: reason`. Only subtrees that differ from main's are read.
    fn unsafe_paths(&self, main_tree: Option<ObjectId>, tree: ObjectId) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut todo = vec![(String::new(), main_tree, tree)];
        while let Some((prefix, before, after)) = todo.pop() {
            let before: std::collections::HashMap<Vec<u8>, (ObjectId, bool)> = match before {
                Some(id) => self.entries(id)?.into_iter().map(|(name, id, is_tree)| (name, (id, is_tree))).collect(),
                None => std::collections::HashMap::new(),
            };
            for (name, id, is_tree) in self.entries(after)? {
                let old = before.get(&name).map(|(id, is_tree)| (name.clone(), *id, *is_tree));
                let old = old.as_ref();
                if old.is_some_and(|(_, old_id, _)| *old_id == id) {
                    continue; // unchanged: already on main
                }
                let shown = format!("{prefix}{}", name.to_str_lossy());
                let checked = match std::str::from_utf8(&name) {
                    Ok(text) => crate::tree_path::check_component(text),
                    Err(_) => Err(crate::tree_path::BadName("the name is not UTF-8".to_owned())),
                };
                match checked {
                    Err(reason) => found.push(format!("{shown}: {reason}")),
                    Ok(()) if is_tree => {
                        let old_tree = old.filter(|(_, _, was_tree)| *was_tree).map(|(_, id, _)| *id);
                        todo.push((format!("{shown}/"), old_tree, id));
                    }
                    Ok(()) => {}
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The entries of tree `id`: name, id, whether it is a tree.
    fn entries(&self, id: ObjectId) -> Result<Vec<(Vec<u8>, ObjectId, bool)>> {
        let tree = self.repo().find_tree(id).git_context(|| format!("reading tree {id}"))?;
        let decoded = tree.decode().git_context(|| format!("decoding tree {id}"))?;
        Ok(decoded.entries.iter().map(|e| (e.filename.to_vec(), e.oid.to_owned(), e.mode.is_tree())).collect())
    }

    /// How many first parents back [`Home::grows_from`] looks.
    pub const GROWTH_LOOK_BACK: usize = 10_000;

    /// Whether the branch at `tip` grows from `base`: `base` is `tip` or one of its first parents (at most
    /// [`Home::GROWTH_LOOK_BACK`] back). What HAL reads of a thread follows first parents, so a merge commit
    /// whose second parent is `base` does not count: its first-parent history is another line.
    pub fn grows_from(&self, base: ObjectId, tip: ObjectId) -> bool {
        let mut at = tip;
        for _ in 0..=Self::GROWTH_LOOK_BACK {
            if at == base {
                return true;
            }
            let Some(parent) = self.repo().find_commit(at).ok().and_then(|c| c.parent_ids().next()) else {
                return false;
            };
            at = parent.detach();
        }
        false
    }

    /// Whether `ancestor` is reachable from `descendant` (or equal to it).
    pub fn is_ancestor(&self, ancestor: ObjectId, descendant: ObjectId) -> Result<bool> {
        if ancestor == descendant {
            return Ok(true);
        }
        let base = self
            .repo()
            .merge_base(ancestor, descendant)
            .git_context(|| format!("finding the merge base of {ancestor} and {descendant}"))?;
        Ok(base.is_some_and(|base| base.detach() == ancestor))
    }

    /// The tree of merging `theirs` into `ours`, or the paths that conflict.
    fn merged_tree(
        &self,
        ours: ObjectId,
        theirs: ObjectId,
        their_label: &str,
    ) -> Result<std::result::Result<ObjectId, Vec<String>>> {
        let repo = self.repo();
        let options = repo.tree_merge_options().git_context(|| "reading merge options".to_owned())?;
        let labels = gix::merge::blob::builtin_driver::text::Labels {
            ancestor: None,
            current: Some("main".into()),
            other: Some(their_label.into()),
        };
        let mut outcome = repo
            .merge_commits(ours, theirs, labels, options.into())
            .git_context(|| format!("merging {their_label} into main"))?;
        let how = gix::merge::tree::TreatAsUnresolved::default();
        if outcome.tree_merge.has_unresolved_conflicts(how) {
            let mut paths: Vec<String> = outcome
                .tree_merge
                .conflicts
                .iter()
                .filter(|conflict| conflict.is_unresolved(how))
                .map(|conflict| conflict.ours.location().to_str_lossy().into_owned())
                .collect();
            paths.sort();
            paths.dedup();
            return Ok(Err(paths));
        }
        let tree = outcome.tree_merge.tree.write().git_context(|| "writing the merged tree".to_owned())?;
        Ok(Ok(tree.detach()))
    }
}
