//! Which thread tips `main` has: a thread whose tip is reachable from `main` is merged, however it got there (`hal
//! thread merge`, or `git merge` by hand and pushed).
//!
//! Reachability is a fact about a tip and one commit of `main`, so the tip cache keeps it with the `main` it was
//! computed at (see [`crate::tip_cache`]). When `main` moves forward, only the commits it gained are walked: a tip
//! that `main` had still is reachable, and a tip that became reachable is among the new commits. When `main`
//! moved elsewhere (a reset), or there is nothing cached, the tips are looked up in `main`'s history, once.

use std::collections::HashSet;

use gix::ObjectId;

use crate::error::GixContext;
use crate::{Home, Result};

/// Most new tips looked up one by one (a merge-base each) before one walk of `main`'s history is cheaper.
const ONE_BY_ONE: usize = 64;

/// How to tell whether `main` reaches a tip, for one listing.
pub(crate) struct Reach {
    main: Option<ObjectId>,
    /// The commits `main` gained since the cached `main`, when it moved forward.
    gained: Option<HashSet<ObjectId>>,
    /// Every commit of `main`'s history, when it had to be walked.
    history: Option<HashSet<ObjectId>>,
}

impl Reach {
    /// Prepare for a listing where `main` is at `main`, the cache was computed at `cached_main`, and
    /// `uncached` tips are not in the cache.
    pub(crate) fn new(
        home: &Home,
        main: Option<ObjectId>,
        cached_main: Option<ObjectId>,
        uncached: usize,
    ) -> Result<Reach> {
        let mut reach = Reach { main, gained: None, history: None };
        let Some(main) = main else { return Ok(reach) };
        let forward = match cached_main {
            Some(old) if old == main => Some(HashSet::new()),
            Some(old) if home.is_ancestor(old, main)? => Some(walk(home, main, Some(old))?),
            _ => None,
        };
        match forward {
            Some(gained) if uncached <= ONE_BY_ONE => reach.gained = Some(gained),
            _ => reach.history = Some(walk(home, main, None)?),
        }
        Ok(reach)
    }

    /// Whether `main` reaches `tip`, given whether it did at the cached `main` (`None` when `tip` is not cached).
    pub(crate) fn merged(&self, home: &Home, tip: ObjectId, cached: Option<bool>) -> Result<bool> {
        let Some(main) = self.main else { return Ok(false) };
        if let Some(history) = &self.history {
            return Ok(history.contains(&tip));
        }
        match (cached, &self.gained) {
            (Some(true), _) => Ok(true),
            (Some(false), Some(gained)) => Ok(gained.contains(&tip)),
            _ => home.is_ancestor(tip, main),
        }
    }
}

/// The commits reachable from `from` and not from `hidden`.
fn walk(home: &Home, from: ObjectId, hidden: Option<ObjectId>) -> Result<HashSet<ObjectId>> {
    let what = || format!("walking the history of main at {from}");
    let walk = home.repo().rev_walk([from]).with_hidden(hidden).all().git_context(what)?;
    let mut commits = HashSet::new();
    for info in walk {
        commits.insert(info.git_context(what)?.id);
    }
    Ok(commits)
}
