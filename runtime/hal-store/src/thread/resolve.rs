//! Finding threads: every thread branch, a thread by id, prefix or branch, the list with summaries, and
//! revisions.

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::prelude::ObjectIdExt;

use super::*;
use crate::error::GixContext;
use crate::home::{Home, THREADS_PREFIX};
use crate::refs::{self};
use crate::step::ThreadStatus;
use crate::tip_cache::{TipCache, TipFacts};
use crate::{Result, StoreError, thread_id};

impl Home {
    /// Every thread branch, sorted by id (that is, by creation time).
    pub fn threads(&self) -> Result<Vec<ThreadRef>> {
        let platform = self.repo().references().git_context(|| "listing refs".to_owned())?;
        let iter = platform.prefixed(THREADS_PREFIX).git_context(|| "listing thread branches".to_owned())?;
        let mut threads = Vec::new();
        for reference in iter {
            let reference = reference.git_context(|| "reading a thread branch".to_owned())?;
            let name = reference.name().as_bstr().to_str_lossy();
            let Some(rest) = name.strip_prefix(THREADS_PREFIX) else { continue };
            let Some((actor, id)) = rest.split_once('/') else { continue };
            if id.contains('/') {
                continue;
            }
            let target = reference.target();
            let Some(tip) = target.try_id() else { continue };
            threads.push(ThreadRef {
                id: id.to_owned(),
                actor: actor.to_owned(),
                branch: format!("threads/{rest}"),
                tip: tip.to_owned(),
            });
        }
        threads.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.actor.cmp(&b.actor)));
        Ok(threads)
    }

    /// Find the thread named by `query`: an id, a unique prefix of one, or a branch name
    /// (`threads/<actor>/<id>`, with or without `refs/heads/`).
    pub fn resolve_thread(&self, query: &str) -> Result<ThreadRef> {
        let branch = query.strip_prefix("refs/heads/").unwrap_or(query);
        if branch.starts_with("threads/") {
            let name = refs::full_name(&format!("refs/heads/{branch}"))
                .map_err(|_| StoreError::UnknownThread(query.to_owned()))?;
            let tip = refs::read(self.repo(), &name)?.ok_or_else(|| StoreError::UnknownThread(query.to_owned()))?;
            let (actor, id) = branch
                .strip_prefix("threads/")
                .and_then(|rest| rest.split_once('/'))
                .ok_or_else(|| StoreError::UnknownThread(query.to_owned()))?;
            return Ok(ThreadRef { id: id.to_owned(), actor: actor.to_owned(), branch: branch.to_owned(), tip });
        }
        if query.is_empty() {
            return Err(StoreError::UnknownThread(query.to_owned()));
        }
        if let Some(thread) = self.find_full_id(query)? {
            return Ok(thread);
        }
        let threads = self.threads()?;
        let exact: Vec<_> = threads.iter().filter(|t| t.id == query).collect();
        let matches: Vec<_> =
            if exact.is_empty() { threads.iter().filter(|t| t.id.starts_with(query)).collect() } else { exact };
        match matches.as_slice() {
            [] => Err(StoreError::UnknownThread(query.to_owned())),
            [one] => Ok((*one).clone()),
            many => Err(StoreError::AmbiguousThread {
                prefix: query.to_owned(),
                candidates: many.iter().take(MAX_CANDIDATES).map(|t| t.branch.clone()).collect(),
            }),
        }
    }

    /// A full id in the local actor's or HAL's namespace, found without listing every thread (a repo may have
    /// tens of thousands).
    pub(crate) fn find_full_id(&self, query: &str) -> Result<Option<ThreadRef>> {
        if query.len() != thread_id::ID_LEN || !thread_id::is_id_like(query) {
            return Ok(None);
        }
        let local = self.resolve_actor(None).ok();
        for actor in local.iter().map(String::as_str).chain([crate::identity::HAL_ACTOR]) {
            let branch = format!("threads/{actor}/{query}");
            if let Some(tip) = refs::read(self.repo(), &refs::full_name(&format!("refs/heads/{branch}"))?)? {
                return Ok(Some(ThreadRef { id: query.to_owned(), actor: actor.to_owned(), branch, tip }));
            }
        }
        Ok(None)
    }

    /// Summaries of every thread, sorted by id. Reads one commit per thread whose tip is not in the tip cache
    /// (see [`crate::tip_cache`]). A thread whose tip `main` reaches is `merged`, however it was merged.
    pub fn list_threads(&self) -> Result<Vec<ThreadSummary>> {
        let threads = self.threads()?;
        let cache = TipCache::load(self.repo().common_dir());
        let main = self.main_tip()?;
        let (cached, uncached): (Vec<ObjectId>, Vec<ObjectId>) =
            threads.iter().map(|t| t.tip).partition(|tip| cache.get(tip).is_some());
        let reach = crate::merged::Reach::new(self, main, cache.main(), &uncached, &cached)?;
        let mut changed = !uncached.is_empty() || cache.main() != main;
        let mut current = Vec::with_capacity(threads.len());
        for thread in &threads {
            let mut facts = match cache.get(&thread.tip) {
                Some(facts) => facts.clone(),
                None => {
                    let state = self.state_at(thread.tip, &thread.branch)?;
                    let (steps, time, status, title) = (state.steps, state.time, state.status, state.title);
                    TipFacts { steps, time, status, title, purpose: state.purpose, merged: false }
                }
            };
            let cached = cache.get(&thread.tip).map(|facts| facts.merged);
            let merged = reach.merged(thread.tip, cached);
            changed |= cached != Some(merged);
            facts.merged = merged;
            current.push((thread.tip, facts));
        }
        if changed || current.len() != cache.len() {
            cache.store(main, &current);
        }
        Ok(threads
            .into_iter()
            .zip(current)
            .map(|(thread, (_, facts))| ThreadSummary {
                id: thread.id,
                branch: thread.branch,
                actor: thread.actor,
                title: facts.title,
                status: if facts.merged { ThreadStatus::Merged } else { facts.status },
                steps: facts.steps,
                last_activity: facts.time,
                tip: thread.tip,
                purpose: facts.purpose,
            })
            .collect())
    }

    /// Resolve a revision (ref name, commit id or prefix, `main~2`, …) to a commit.
    pub fn resolve_commit(&self, spec: &str) -> Result<ObjectId> {
        let unknown = |source| StoreError::UnknownRevision { spec: spec.to_owned(), source };
        let id = self.repo().rev_parse_single(spec).map_err(unknown)?;
        let commit = id.object().and_then(|o| o.peel_to_commit()).map_err(unknown)?;
        Ok(commit.id)
    }

    /// A short form of a commit id for messages.
    pub(crate) fn short_id(&self, id: ObjectId) -> String {
        id.attach(self.repo()).shorten_or_id().to_string()
    }
}
