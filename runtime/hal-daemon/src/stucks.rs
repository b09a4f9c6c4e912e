//! `hal stuck list`: the requests no help met, as routers recorded them under `stucks/` on their threads (and on
//! `main`, once such a thread is merged), newest first. Each path is listed once: from the thread whose router
//! recorded it when HAL's own step there says so (`verified`), else from wherever it was found. Anyone can push a
//! file under `stucks/`, so a file no step of HAL's recorded is listed as unverified, never as HAL's word.

use std::collections::BTreeMap;

use hal_runner::record::fact;
use hal_runner::stuck::{STUCKS_DIR, Stuck};
use hal_store::{Home, StepKind, ThreadRef};

use crate::protocol::StuckEntry;

/// Most stuck files read from one branch.
const MOST_PER_BRANCH: usize = 200;
/// Largest stuck file read, in bytes (a router writes well under this).
const MOST_BYTES: u64 = 64 * 1024;
/// How far back a thread is read for the step that recorded a stuck.
const LOOK_BACK: usize = 2_000;

/// Every stuck file of every thread and of `main`. A file that is not a stuck is listed with why.
pub(crate) fn list(home: &Home) -> hal_store::Result<Vec<StuckEntry>> {
    let mut found: BTreeMap<String, StuckEntry> = BTreeMap::new();
    let mut branches: Vec<(String, ThreadRef)> =
        home.threads()?.into_iter().map(|thread| (thread.id.clone(), thread)).collect();
    branches.sort_by(|a, b| a.1.branch.cmp(&b.1.branch));
    let main = home.main_tip()?;
    for (thread, at) in branches.iter().map(|(id, t)| (id.as_str(), Some(t))).chain(main.map(|_| ("", None))) {
        let (branch, tip) = match at {
            Some(thread) => (thread.branch.as_str(), thread.tip),
            None => (hal_store::MAIN_REF, main.unwrap_or_else(|| gix::ObjectId::null(gix::hash::Kind::Sha1))),
        };
        let files = home.list_files(tip, STUCKS_DIR)?;
        for (path, size) in files.into_iter().take(MOST_PER_BRANCH) {
            if found.get(&path).is_some_and(|kept| kept.verified) {
                continue;
            }
            let verified = match at {
                Some(thread) => recorded_by_hal(home, thread, &path)?,
                None => false,
            };
            if found.contains_key(&path) && !verified {
                continue;
            }
            let (stuck, problem) = if size > MOST_BYTES {
                (None, Some(format!("{size} bytes, more than a stuck record holds")))
            } else {
                match home.file_at(tip, &path)?.map(|bytes| Stuck::from_file(&bytes)) {
                    Some(Ok(stuck)) => (Some(stuck), None),
                    Some(Err(why)) => (None, Some(format!("not a stuck record: {why}"))),
                    None => (None, Some("not a file".to_owned())),
                }
            };
            let time = home.repo().find_commit(tip).ok().and_then(|c| c.time().ok()).map_or(0, |t| t.seconds);
            let (thread, branch) = (thread.to_owned(), branch.to_owned());
            found.insert(path.clone(), StuckEntry { thread, branch, path, time, stuck, problem, verified });
        }
    }
    let mut stucks: Vec<StuckEntry> = found.into_values().collect();
    stucks.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.path.cmp(&b.path)));
    Ok(stucks)
}

/// Whether a `finish` step HAL wrote on `thread` recorded the stuck at `path`.
fn recorded_by_hal(home: &Home, thread: &ThreadRef, path: &str) -> hal_store::Result<bool> {
    for step in home.steps_back(thread).take(LOOK_BACK) {
        let step = step?;
        if step.kind == StepKind::Finish && step.fact(fact::STUCK) == Some(path) {
            return home.wrote_on(step.commit, &thread.branch);
        }
    }
    Ok(false)
}
