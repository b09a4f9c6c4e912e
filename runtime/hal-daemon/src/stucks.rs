//! `hal stuck list`: the requests no help met, as routers recorded them under `stucks/` on their threads (and on
//! `main`, once such a thread is merged), newest first.
//!
//! Anyone can push a file under `stucks/`, or change one on a goalie's thread after HAL wrote it. A file is listed
//! as `verified` only when a `finish` step HAL wrote on its branch recorded that path with that very content (the
//! same blob); everything else is listed as unverified, its content as found. Each path is listed once, a verified
//! copy before any other. The work is bounded: at most [`MOST_PER_BRANCH`] files a branch, each read only when it
//! is at most [`MOST_BYTES`], and each thread's steps read once, back at most [`LOOK_BACK`].

use std::collections::{BTreeMap, HashMap};

use gix::ObjectId;
use hal_runner::record::fact;
use hal_runner::stuck::{STUCKS_DIR, Stuck};
use hal_store::{Home, StepKind, ThreadRef};

use crate::protocol::StuckEntry;

/// Most stuck files read from one branch.
pub(crate) const MOST_PER_BRANCH: usize = 200;
/// Largest stuck file read, in bytes (a router writes well under this).
pub(crate) const MOST_BYTES: u64 = 64 * 1024;
/// How far back a thread is read for the steps that recorded its stucks.
pub(crate) const LOOK_BACK: usize = 2_000;

/// Every stuck file of every thread and of `main`, but for threads with a purpose (a `hal help test` case, a
/// replay) unless `all`. A file that is not a stuck is listed with why.
pub(crate) fn list(home: &Home, all: bool) -> hal_store::Result<Vec<StuckEntry>> {
    let mut found: BTreeMap<String, StuckEntry> = BTreeMap::new();
    // Which threads have a purpose is read once, and only when some thread has stucks at all.
    let mut purposed: Option<std::collections::HashSet<String>> = all.then(Default::default);
    let mut places: Vec<(String, String, ObjectId, Option<ThreadRef>)> = home
        .threads()?
        .into_iter()
        .map(|thread| (thread.id.clone(), thread.branch.clone(), thread.tip, Some(thread)))
        .collect();
    if let Some(main) = home.main_tip()? {
        places.push((String::new(), hal_store::MAIN_REF.to_owned(), main, None));
    }
    for (thread, branch, tip, at) in places {
        let files = home.blobs_in(tip, STUCKS_DIR, MOST_PER_BRANCH)?;
        if files.is_empty() {
            continue;
        }
        if at.is_some() {
            if purposed.is_none() {
                let threads = home.list_threads()?.into_iter();
                purposed = Some(threads.filter(|t| t.purpose.is_some()).map(|t| t.branch).collect());
            }
            if purposed.as_ref().is_some_and(|purposed| purposed.contains(&branch)) {
                continue;
            }
        }
        let recorded = match &at {
            Some(thread) => recorded_by_hal(home, thread)?,
            None => HashMap::new(),
        };
        let time = home.repo().find_commit(tip).ok().and_then(|c| c.time().ok()).map_or(0, |t| t.seconds);
        for (name, blob) in files {
            let path = format!("{STUCKS_DIR}/{name}");
            let verified = recorded.get(&path) == Some(&blob);
            if found.get(&path).is_some_and(|kept| kept.verified || !verified) {
                continue;
            }
            let (stuck, problem) = read(home, blob);
            let (thread, branch) = (thread.clone(), branch.clone());
            found.insert(path.clone(), StuckEntry { thread, branch, path, time, stuck, problem, verified });
        }
    }
    let mut stucks: Vec<StuckEntry> = found.into_values().collect();
    stucks.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.path.cmp(&b.path)));
    Ok(stucks)
}

/// The stuck record in `blob`, or why there is none.
fn read(home: &Home, blob: ObjectId) -> (Option<Stuck>, Option<String>) {
    let size = match home.repo().find_header(blob) {
        Ok(header) => header.size(),
        Err(error) => return (None, Some(format!("unreadable: {error}"))),
    };
    if size > MOST_BYTES {
        return (None, Some(format!("{size} bytes, more than a stuck record holds")));
    }
    match home.repo().find_blob(blob).map(|blob| Stuck::from_file(&blob.data)) {
        Ok(Ok(stuck)) => (Some(stuck), None),
        Ok(Err(why)) => (None, Some(format!("not a stuck record: {why}"))),
        Err(error) => (None, Some(format!("unreadable: {error}"))),
    }
}

/// The stucks `finish` steps HAL wrote on `thread` recorded, by path, with the blob each held when written.
fn recorded_by_hal(home: &Home, thread: &ThreadRef) -> hal_store::Result<HashMap<String, ObjectId>> {
    let mut recorded = HashMap::new();
    for step in home.steps_back(thread).take(LOOK_BACK) {
        let step = step?;
        let Some(path) = step.fact(fact::STUCK).filter(|_| step.kind == StepKind::Finish) else { continue };
        if recorded.contains_key(path) || !home.wrote_on(step.commit, &thread.branch)? {
            continue;
        }
        if let Some(blob) = home.entry_id(step.commit, path)? {
            recorded.insert(path.to_owned(), blob);
        }
    }
    Ok(recorded)
}
