//! `hal stuck list`: the requests no help met, as routers recorded them under `stucks/` on their threads (and on
//! `main`, once such a thread is merged), newest thread first. Each path is listed once, from the thread that
//! recorded it when that thread is still there.

use std::collections::BTreeMap;

use hal_runner::stuck::{STUCKS_DIR, Stuck};
use hal_store::Home;

use crate::protocol::StuckEntry;

/// Every stuck file of every thread and of `main`. A file that is not a stuck (anyone can push one) is listed with
/// why, never skipped silently.
pub(crate) fn list(home: &Home) -> hal_store::Result<Vec<StuckEntry>> {
    let mut found: BTreeMap<String, StuckEntry> = BTreeMap::new();
    let mut tips: Vec<(String, String, gix::ObjectId)> =
        home.threads()?.into_iter().map(|thread| (thread.id, thread.branch, thread.tip)).collect();
    if let Some(main) = home.main_tip()? {
        tips.push((String::new(), hal_store::MAIN_REF.to_owned(), main));
    }
    for (thread, branch, tip) in tips {
        for (name, bytes) in home.files_in(tip, STUCKS_DIR)? {
            let path = format!("{STUCKS_DIR}/{name}");
            // The thread that recorded it is named in the file's name: that copy wins over the copies in threads
            // started from it and on main.
            let recorded_here = !thread.is_empty() && name.starts_with(&format!("{thread}-"));
            if found.get(&path).is_some_and(|kept| kept.recorded_here || !recorded_here) {
                continue;
            }
            let (stuck, problem) = match Stuck::from_file(&bytes) {
                Ok(stuck) => (Some(stuck), None),
                Err(why) => (None, Some(format!("{branch}:{path} is not a stuck record: {why}"))),
            };
            let time = home.repo().find_commit(tip).ok().and_then(|c| c.time().ok()).map_or(0, |t| t.seconds);
            let entry = StuckEntry {
                thread: thread.clone(),
                branch: branch.clone(),
                path: path.clone(),
                time,
                stuck,
                problem,
                recorded_here,
            };
            found.insert(path, entry);
        }
    }
    let mut stucks: Vec<StuckEntry> = found.into_values().collect();
    stucks.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.path.cmp(&b.path)));
    Ok(stucks)
}
