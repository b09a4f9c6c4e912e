//! What this HAL wrote, recorded beside the repository where git never carries it.
//!
//! Anyone who can push a branch can write a commit that looks like HAL's: a `reply` holding tool calls, a step
//! claiming that a run is `running`, a thread claiming how long a chain of starts led to it. Until steps are
//! signed, HAL believes such a claim only when the commit is in this record, kept in `.git/hal/record/`, which
//! `git clone`, `fetch` and `push` never transport. Two append-only logs:
//!
//! - `written`: `<commit> <branch>` for every commit this HAL wrote on a branch as a step or a new thread, added
//!   before the branch moves to it. A commit that is missing here was written by someone else (or just before a
//!   crash, in which case HAL asks the model again instead of acting on it: the safe side). The newest line of a
//!   branch is the tip HAL left it at: a branch moved back to an older commit of HAL's (a rewind), or another
//!   branch pointed at one, does not match it, so HAL's own old replies cannot be replayed through them.
//! - `landed`: `<commit> <branch>` for each of those commits once the branch moved to it: the newest line of a
//!   branch is where HAL last left it for certain. A branch that no longer descends from that commit was moved
//!   back or sideways by someone else, and HAL freezes the thread (a commit recorded in `written` that never
//!   landed, because HAL stopped or lost a race in between, does not count).
//! - `answered`: `<commit> <branch>` for every request a run answered: a person's message is answered on the
//!   branch it was answered on, never again on another (a signed message copied to a branch of its own would
//!   otherwise be acted on twice, with its author's authority).
//! - `depths`: `<depth> <key>[ <help>…]` for every thread HAL started from a run (key: the branch) and every
//!   message HAL relayed from a run (key: the commit): how many starts and relays by runs led to it, and the helps
//!   whose own policy rules hold for the runs it leads to (those of the runs that started or relayed it; each
//!   name percent-encoded as in [`crate::spent`], so any name is one word). A run's
//!   chain depth is the larger of its thread's and its request's; past `limits.max_depth` HAL starts and relays
//!   nothing more.
//! - `keys`: `<commit> <key>` for every step written for a command that carried an idempotency key, added before
//!   the branch moves to it. A retried command with the same key finds the step its first try wrote (the key is
//!   also a trailer of the step, for people reading `git log`; this log is how HAL finds it fast).
//! - `spent`: what replies HAL wrote spent, what owners granted and which tools HAL called, for budgets and rate
//!   limits ([`crate::spent`]).
//! - `calls`: `<reply commit> <index>` for every tool call HAL started, added before it runs: a call runs at most
//!   once, whatever happens to the branch or the process afterwards (a crash between the call and its result
//!   step, a branch reset to the reply). This one cannot be rebuilt from the repository: deleting it forgets
//!   which calls ran, and only the checks on `written` stand between an old reply and a second run of its calls.
//!
//! Each line is appended with one `write` on a file opened with `O_APPEND`, so processes sharing the repository
//! never interleave lines. Each process keeps an index in memory and reads only what was appended since it last
//! looked, so a lookup costs the same at ten steps as at a million. A line left without its newline by a crash is
//! ended before the next line is added, so it never merges with it; a torn line is skipped. The record is not a
//! cache: deleting it makes HAL distrust its own unfinished runs (they ask the model again) and count the threads
//! it started as started by a person (depth 0: a chain can start again from there, as it can when a person asks),
//! forgets where HAL left each branch (`landed`: no thread is frozen until HAL writes on it again) and which
//! requests and calls were answered and run. Only `calls` is synced to disk per line (before the call runs).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use gix::ObjectId;

use crate::error::IoContext;
use crate::{Result, StoreError};

/// The logs of one repository.
pub(crate) struct LocalRecord {
    written: Log<Written>,
    depths: Log<HashMap<String, (u32, Vec<String>)>>,
    keys: Log<HashMap<String, Vec<ObjectId>>>,
    calls: Log<std::collections::HashSet<(ObjectId, u32)>>,
    landed: Log<HashMap<String, ObjectId>>,
    answered: Log<HashMap<ObjectId, String>>,
    spent: Log<crate::spent::SpentIndex>,
}

/// The index of `written`: every commit HAL wrote with the branch it wrote it on, and the newest it wrote on each
/// branch.
#[derive(Default)]
struct Written {
    commits: HashMap<ObjectId, String>,
    tips: HashMap<String, ObjectId>,
}

/// One append-only log and its index.
struct Log<I> {
    path: PathBuf,
    state: Mutex<LogState<I>>,
}

struct LogState<I> {
    /// Open for appending once the first line is added.
    file: Option<File>,
    /// How far the index has read.
    read_to: u64,
    index: I,
}

impl LocalRecord {
    /// The record of the repository whose common git dir is `common_dir`.
    pub(crate) fn new(common_dir: &Path) -> LocalRecord {
        let dir = common_dir.join("hal/record");
        LocalRecord {
            written: Log::new(dir.join("written")),
            depths: Log::new(dir.join("depths")),
            keys: Log::new(dir.join("keys")),
            calls: Log::new(dir.join("calls")),
            landed: Log::new(dir.join("landed")),
            answered: Log::new(dir.join("answered")),
            spent: Log::new(dir.join("spent")),
        }
    }

    /// Record that this HAL wrote `commit` on `branch` (before the branch moves to it).
    pub(crate) fn add_written(&self, commit: ObjectId, branch: &str) -> Result<()> {
        check_key(branch)?;
        self.written.append(&format!("{commit} {branch}\n"))
    }

    /// Whether this HAL wrote `commit`, on whatever branch.
    pub(crate) fn wrote(&self, commit: ObjectId) -> Result<bool> {
        self.written.lookup(|index| index.commits.contains_key(&commit), add_written_line)
    }

    /// Whether this HAL wrote `commit` on `branch` (a commit of HAL's that another branch points at was not).
    pub(crate) fn wrote_on(&self, commit: ObjectId, branch: &str) -> Result<bool> {
        self.written.lookup(|index| index.commits.get(&commit).is_some_and(|b| b == branch), add_written_line)
    }

    /// Whether `commit` is the newest commit this HAL wrote on `branch`: the tip HAL left it at.
    pub(crate) fn is_tip_written(&self, branch: &str, commit: ObjectId) -> Result<bool> {
        // Always read what other processes appended since: an older line must not answer for a newer one.
        self.written.lookup(|_| false, add_written_line)?;
        self.written.lookup(|index| index.tips.get(branch) == Some(&commit), add_written_line)
    }

    /// Record that a run led to `key` (a thread's branch, or a relayed message's commit) at the end of a chain of
    /// `depth` starts and relays.
    pub(crate) fn add_depth(&self, key: &str, depth: u32, held_by: &[String]) -> Result<()> {
        check_key(key)?;
        let helps: String = held_by.iter().map(|help| format!(" {}", crate::spent::word(help))).collect();
        self.depths.append(&format!("{depth} {key}{helps}\n"))
    }

    /// Record that `commit` was written for a command with idempotency `key` (before the branch moves to it).
    pub(crate) fn add_key(&self, key: &str, commit: ObjectId) -> Result<()> {
        check_idempotency_key(key)?;
        self.keys.append(&format!("{commit} {key}\n"))
    }

    /// The commits written for idempotency `key`, oldest first (a write that lost a race to another writer and
    /// was written again is recorded twice; only one of them is on its branch).
    pub(crate) fn keyed(&self, key: &str) -> Result<Vec<ObjectId>> {
        let add = |index: &mut HashMap<String, Vec<ObjectId>>, line: &str| {
            if let Some((commit, key)) = line.split_once(' ')
                && let Ok(id) = ObjectId::from_hex(commit.as_bytes())
            {
                index.entry(key.to_owned()).or_default().push(id);
            }
        };
        // Always read what was appended since: a later try of the same key must not be missed.
        self.keys.lookup(|_| false, add)?;
        self.keys.lookup(|index| index.get(key).cloned().unwrap_or_default(), add)
    }

    /// Record that HAL starts call `index` of the reply `reply`: `false` (and nothing recorded) when it started it
    /// before. Processes do not race here: one turn at a time runs a thread (the daemon's lock).
    pub(crate) fn claim_call(&self, reply: ObjectId, index: u32) -> Result<bool> {
        if self.call_started(reply, index)? {
            return Ok(false);
        }
        // On disk before the call runs: a power cut after a call took effect must not forget that it ran.
        self.calls.append_durably(&format!("{reply} {index}\n"))?;
        Ok(true)
    }

    /// Record that a run on `branch` answers the request `commit` (the first branch recorded keeps it).
    pub(crate) fn add_answered(&self, commit: ObjectId, branch: &str) -> Result<bool> {
        check_key(branch)?;
        if let Some(on) = self.answered_on(commit)? {
            return Ok(on == branch);
        }
        self.answered.append(&format!("{commit} {branch}\n"))?;
        Ok(true)
    }

    /// The branch a run answered the request `commit` on, if one did.
    pub(crate) fn answered_on(&self, commit: ObjectId) -> Result<Option<String>> {
        self.answered.lookup(
            |index| index.get(&commit).cloned(),
            |index, line| {
                if let Some((id, branch)) = line.split_once(' ')
                    && let Ok(id) = ObjectId::from_hex(id.as_bytes())
                {
                    index.entry(id).or_insert_with(|| branch.to_owned());
                }
            },
        )
    }

    /// Whether HAL started call `index` of the reply `reply`.
    pub(crate) fn call_started(&self, reply: ObjectId, index: u32) -> Result<bool> {
        let add = |index: &mut std::collections::HashSet<(ObjectId, u32)>, line: &str| {
            if let Some((commit, n)) = line.split_once(' ')
                && let (Ok(id), Ok(n)) = (ObjectId::from_hex(commit.as_bytes()), n.parse())
            {
                index.insert((id, n));
            }
        };
        self.calls.lookup(|calls| calls.contains(&(reply, index)), add)
    }

    /// Record that `branch` moved to `commit`, which HAL wrote (after the ref update).
    pub(crate) fn add_landed(&self, commit: ObjectId, branch: &str) -> Result<()> {
        check_key(branch)?;
        self.landed.append(&format!("{commit} {branch}\n"))
    }

    /// The newest commit of HAL's that `branch` moved to: where HAL last left it for certain.
    pub(crate) fn landed_tip(&self, branch: &str) -> Result<Option<ObjectId>> {
        let add = |index: &mut HashMap<String, ObjectId>, line: &str| {
            if let Some((commit, branch)) = line.split_once(' ')
                && let Ok(id) = ObjectId::from_hex(commit.as_bytes())
            {
                index.insert(branch.to_owned(), id);
            }
        };
        // Always read what was appended since: an older line must not answer for a newer one.
        self.landed.lookup(|_| None::<ObjectId>, add)?;
        self.landed.lookup(|index| index.get(branch).copied(), add)
    }

    /// The branch this HAL wrote `commit` on, if it wrote it.
    pub(crate) fn branch_of(&self, commit: ObjectId) -> Result<Option<String>> {
        self.written.lookup(|index| index.commits.get(&commit).cloned(), add_written_line)
    }

    /// Append a line to `spent` ([`crate::spent`]).
    pub(crate) fn add_spent(&self, line: &str) -> Result<()> {
        self.spent.append(line)
    }

    /// `read(index)` of `spent`, after reading what was appended since the last look.
    pub(crate) fn read_spent<T>(&self, read: impl Fn(&crate::spent::SpentIndex) -> T) -> Result<T> {
        self.spent.lookup(|_| false, crate::spent::add_line)?;
        let state = self.spent.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(read(&state.index))
    }

    /// The chain depth HAL recorded for `key`, if a run led to it.
    pub(crate) fn depth(&self, key: &str) -> Result<Option<(u32, Vec<String>)>> {
        self.depths.lookup(
            |index| index.get(key).cloned(),
            |index, line| {
                let mut words = line.split(' ');
                if let (Some(depth), Some(key)) = (words.next(), words.next())
                    && let Ok(depth) = depth.parse()
                {
                    index.insert(key.to_owned(), (depth, words.map(crate::spent::unword).collect()));
                }
            },
        )
    }
}

/// A key (a branch or a commit id) is one word of one line (git allows no space in a branch's name either).
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains(['\n', '\r', ' ']) {
        return Err(StoreError::InvalidText("a branch name must be one line, without spaces"));
    }
    Ok(())
}

/// The longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An idempotency key is 1 to [`MAX_IDEMPOTENCY_KEY`] visible ASCII characters (a UUID, a job id, a URL): it
/// goes on one line of the record and in a commit trailer.
pub(crate) fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::InvalidText(
            "an idempotency key is 1 to 255 visible ASCII characters (no spaces or control characters)",
        ));
    }
    Ok(())
}

/// Index one line of `written`.
fn add_written_line(index: &mut Written, line: &str) {
    let Some((commit, branch)) = line.split_once(' ') else { return };
    if let Ok(id) = ObjectId::from_hex(commit.as_bytes()) {
        index.commits.insert(id, branch.to_owned());
        index.tips.insert(branch.to_owned(), id);
    }
}

impl<I: Default> Log<I> {
    fn new(path: PathBuf) -> Log<I> {
        Log { path, state: Mutex::new(LogState { file: None, read_to: 0, index: I::default() }) }
    }

    fn append(&self, line: &str) -> Result<()> {
        self.append_with(line, false)
    }

    /// Append `line` and wait until it is on disk: for a record whose loss would let something happen twice.
    fn append_durably(&self, line: &str) -> Result<()> {
        self.append_with(line, true)
    }

    fn append_with(&self, line: &str, durable: bool) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
            }
            let mut file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)
                .io_context(|| format!("opening {}", self.path.display()))?;
            // A crash may have left a line without its newline: end it, so it never merges with the next one.
            if ends_torn(&mut file).io_context(|| format!("reading {}", self.path.display()))? {
                file.write_all(b"\n").io_context(|| format!("appending to {}", self.path.display()))?;
            }
            state.file = Some(file);
        }
        let file = state.file.as_mut().expect("opened just above");
        // One write call per line: with O_APPEND, lines of concurrent writers never interleave.
        if let Err(error) = file.write_all(line.as_bytes()) {
            // Part of the line may be there (a full disk): opened again, the next line starts on a line of its own.
            state.file = None;
            return Err(error).io_context(|| format!("appending to {}", self.path.display()));
        }
        if durable {
            file.sync_data().io_context(|| format!("syncing {}", self.path.display()))?;
        }
        Ok(())
    }

    /// `found(index)` after reading what was appended since the last look, unless the index already knows (a
    /// found answer is never taken back by later lines: a commit stays written, a depth stays recorded).
    fn lookup<T: Default + PartialEq>(&self, found: impl Fn(&I) -> T, mut add: impl FnMut(&mut I, &str)) -> Result<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let known = found(&state.index);
        if known != T::default() {
            return Ok(known);
        }
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(known),
            Err(error) => return Err(error).io_context(|| format!("opening {}", self.path.display())),
        };
        file.seek(SeekFrom::Start(state.read_to)).io_context(|| format!("reading {}", self.path.display()))?;
        let mut new = Vec::new();
        file.read_to_end(&mut new).io_context(|| format!("reading {}", self.path.display()))?;
        // Only whole lines: a line being appended right now is read next time.
        let whole = new.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
        for line in String::from_utf8_lossy(&new[..whole]).lines() {
            add(&mut state.index, line);
        }
        state.read_to += whole as u64;
        Ok(found(&state.index))
    }
}

/// Whether `file` is not empty and does not end with a newline.
fn ends_torn(file: &mut File) -> std::io::Result<bool> {
    let length = file.seek(SeekFrom::End(0))?;
    if length == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// What this HAL wrote and did, asked of a home repo (the record is its, shared by its clones).
impl crate::home::Home {
    /// Whether this HAL wrote `commit` (as a step or a new thread, on any branch), by its local record in
    /// `.git/hal/record/`, which git never transports. A commit pushed or fetched from elsewhere is not in it,
    /// whatever its trailers claim.
    pub fn wrote(&self, commit: ObjectId) -> Result<bool> {
        self.record().wrote(commit)
    }

    /// Whether this HAL wrote `commit` on `branch`: a commit of HAL's that another branch points at was not.
    pub fn wrote_on(&self, commit: ObjectId, branch: &str) -> Result<bool> {
        self.record().wrote_on(commit, branch)
    }

    /// Whether `commit` is the tip this HAL left `branch` at: the newest commit it wrote on that branch. Only
    /// then may HAL act on what the commit says of an unfinished run (a branch rewound to an older reply of
    /// HAL's, or another branch pointed at one, is not).
    pub fn is_tip_written(&self, branch: &str, commit: ObjectId) -> Result<bool> {
        self.record().is_tip_written(branch, commit)
    }

    /// The newest commit of HAL's that `branch` moved to (where HAL last left it for certain), by its local
    /// record: a branch that no longer descends from it was moved back or sideways by someone else.
    pub fn landed_tip(&self, branch: &str) -> Result<Option<ObjectId>> {
        self.record().landed_tip(branch)
    }

    /// Record that a run on `branch` answers the request `commit` (a person's message): [`Home::answered_on`]
    /// then names that branch, and no other branch's run answers it again. `false` (nothing recorded) when a run
    /// on another branch answered it first. One process takes turns in a repo, and it claims under its store lock.
    pub fn record_answered(&self, commit: ObjectId, branch: &str) -> Result<bool> {
        self.record().add_answered(commit, branch)
    }

    /// The branch a run answered the request `commit` on, if one did (by HAL's local record).
    pub fn answered_on(&self, commit: ObjectId) -> Result<Option<String>> {
        self.record().answered_on(commit)
    }

    /// Whether HAL started tool call `index` of the reply `reply` (its journal says so).
    pub fn call_started(&self, reply: ObjectId, index: u32) -> Result<bool> {
        self.record().call_started(reply, index)
    }

    /// Record, before it runs, that HAL starts tool call `index` of the reply committed as `reply`: `false` when it
    /// started that call before (then it must not run again). Kept in `.git/hal/record/calls`.
    pub fn claim_call(&self, reply: ObjectId, index: u32) -> Result<bool> {
        self.record().claim_call(reply, index)
    }

    /// Record that a run led to `key` at the end of a chain of `depth` starts and relays, with the helps whose own
    /// policy rules hold for the runs `key` leads to: `key` is the branch of a thread a run started, or the commit
    /// of a message a run relayed.
    pub fn record_depth(&self, key: &str, depth: u32, held_by: &[String]) -> Result<()> {
        self.record().add_depth(key, depth, held_by)
    }

    /// Remember that `commit` (on its branch, which HAL wrote) answers the idempotency `key`, for a commit written
    /// without the key in its trailers (the first step of a thread a keyed command made): [`Home::keyed_step`]
    /// finds it.
    pub fn record_key(&self, key: &str, commit: gix::ObjectId) -> Result<()> {
        self.record().add_key(key, commit)
    }

    /// How many starts and relays by runs HAL recorded leading to `key` (a branch or a commit): `None` when no run
    /// led to it (a person did, or it arrived from elsewhere), whatever its commits claim.
    pub fn depth_of(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.record().depth(key)?.map(|(depth, _)| depth))
    }

    /// Over `keys` (branches and commits): the longest chain of starts and relays by runs HAL recorded leading to
    /// any of them (0 when none: a person's doing), and every help whose own policy rules hold for the runs they
    /// lead to, each once, in the order met.
    pub fn chain_of<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<(u32, Vec<String>)> {
        let (mut depth, mut held_by) = (0, Vec::<String>::new());
        for key in keys {
            let Some((recorded, helps)) = self.record().depth(key)? else { continue };
            depth = depth.max(recorded);
            for help in helps {
                if !held_by.contains(&help) {
                    held_by.push(help);
                }
            }
        }
        Ok((depth, held_by))
    }
}

#[cfg(test)]
mod tests {
    use super::LocalRecord;

    #[test]
    fn a_second_handle_sees_what_the_first_appended() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = LocalRecord::new(dir.path());
        let second = LocalRecord::new(dir.path());
        let id = |hex: &[u8]| gix::ObjectId::from_hex(hex).expect("id");
        let (a, b) = (id(b"0123456789012345678901234567890123456789"), id(b"1123456789012345678901234567890123456789"));
        assert!(!second.wrote(a).expect("lookup"));
        first.add_written(a, "threads/x/1").expect("add");
        assert!(second.wrote(a).expect("lookup"));
        assert!(second.is_tip_written("threads/x/1", a).expect("lookup"));
        first.add_written(b, "threads/x/1").expect("add");
        // `a` is still HAL's, but no longer the tip HAL left the branch at; nor is it on another branch.
        assert!(second.wrote(a).expect("lookup"));
        assert!(!second.is_tip_written("threads/x/1", a).expect("lookup"));
        assert!(second.is_tip_written("threads/x/1", b).expect("lookup"));
        assert!(!second.is_tip_written("threads/y/2", b).expect("lookup"));
        assert!(second.wrote_on(a, "threads/x/1").expect("lookup") && !second.wrote_on(a, "threads/y/2").expect("x"));
        assert_eq!(second.depth("threads/a/x").expect("lookup"), None);
        first.add_depth("threads/a/x", 2, &[]).expect("add");
        let held = vec!["outer".to_owned(), "my help".to_owned(), "100%\nsure".to_owned()];
        first.add_depth("threads/a/y", 3, &held).expect("add");
        assert_eq!(second.depth("threads/a/y").expect("lookup"), Some((3, held)));
        assert_eq!(second.depth("threads/a/x").expect("lookup"), Some((2, Vec::new())));
        let bad = first.add_depth("threads/a/z\n9 threads/a/w", 0, &[]);
        assert!(bad.is_err_and(|e| e.to_string().contains("one line")));
    }

    /// A line a crash left without its newline is ended before the next is added: both are not lost together.
    #[test]
    fn a_torn_line_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("hal/record")).expect("dir");
        std::fs::write(dir.path().join("hal/record/depths"), "3 threads/al").expect("torn");
        let record = LocalRecord::new(dir.path());
        record.add_depth("threads/bob/x", 2, &[]).expect("add");
        assert_eq!(record.depth("threads/bob/x").expect("lookup"), Some((2, Vec::new())));
    }
}
