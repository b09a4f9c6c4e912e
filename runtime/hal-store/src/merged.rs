//! Which thread tips `main` has: a thread whose tip is reachable from `main` is merged, however it got there (`hal
//! thread merge`, or `git merge` by hand and pushed).
//!
//! Reachability is a fact about a tip and one commit of `main`, so the tip cache keeps it with the `main` it was
//! computed at (see [`crate::tip_cache`]). When `main` moves forward, a cached tip that `main` had still is
//! reachable, and one that became reachable is among the commits `main` gained: one walk of those. Tips that are
//! not cached (they moved since the last listing), and every tip when `main` moved elsewhere (a reset) or nothing
//! is cached, are checked with one walk from those tips that stops at `main`'s history: it costs the commits the
//! threads have that `main` lacks, and `main`'s side down to the oldest point a thread forked from.

use std::collections::HashSet;

use gix::ObjectId;

use crate::error::GixContext;
use crate::{Home, Result};

/// How to tell whether `main` reaches a tip, for one listing.
pub(crate) struct Reach {
    main: Option<ObjectId>,
    /// The commits `main` gained since the cached `main`, when it moved forward from it.
    gained: Option<HashSet<ObjectId>>,
    /// The commits reachable from the tips checked afresh and not from `main`.
    outside: HashSet<ObjectId>,
}

impl Reach {
    /// Prepare for a listing where `main` is at `main`, the cache's flags hold for `cached_main`, and `uncached`
    /// tips have no flag; `cached` are the tips that have one.
    pub(crate) fn new(
        home: &Home,
        main: Option<ObjectId>,
        cached_main: Option<ObjectId>,
        uncached: &[ObjectId],
        cached: &[ObjectId],
    ) -> Result<Reach> {
        let mut reach = Reach { main, gained: None, outside: HashSet::new() };
        let Some(main) = main else { return Ok(reach) };
        reach.gained = match cached_main {
            Some(old) if old == main => Some(HashSet::new()),
            // A `main` that was reset, or whose old commit is gone (pruned after a reset): check every tip.
            Some(old) if home.is_ancestor(old, main).unwrap_or(false) => Some(walk(home, &[main], old)?),
            _ => None,
        };
        let fresh: Vec<ObjectId> = match reach.gained {
            Some(_) => uncached.to_vec(),
            None => uncached.iter().chain(cached).copied().collect(),
        };
        if !fresh.is_empty() {
            reach.outside = walk(home, &fresh, main)?;
        }
        Ok(reach)
    }

    /// Whether `main` reaches `tip`, given whether it did at the cached `main` (`None` when `tip` is not cached).
    pub(crate) fn merged(&self, tip: ObjectId, cached: Option<bool>) -> bool {
        if self.main.is_none() {
            return false;
        }
        match (cached, &self.gained) {
            (Some(true), Some(_)) => true,
            (Some(false), Some(gained)) => gained.contains(&tip),
            // Checked afresh: the walk from the tips passed it, so `main` does not have it.
            _ => !self.outside.contains(&tip),
        }
    }
}

/// The commits reachable from `from` and not from `hidden`.
fn walk(home: &Home, from: &[ObjectId], hidden: ObjectId) -> Result<HashSet<ObjectId>> {
    let what = || format!("walking the commits not reachable from {hidden}");
    let walk = home.repo().rev_walk(from.iter().copied()).with_hidden([hidden]).all().git_context(what)?;
    let mut commits = HashSet::new();
    for info in walk {
        commits.insert(info.git_context(what)?.id);
    }
    Ok(commits)
}
