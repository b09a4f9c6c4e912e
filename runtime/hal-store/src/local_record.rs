//! What this HAL wrote, recorded beside the repository where git never carries it.
//!
//! Anyone who can push a branch can write a commit that looks like HAL's: a `reply` holding tool calls, a step
//! claiming that a run is `running`, a thread claiming how long a chain of starts led to it. Until steps are
//! signed, HAL believes such a claim only when the commit is in this record, kept in `.git/hal/record/`, which
//! `git clone`, `fetch` and `push` never transport. Two append-only logs:
//!
//! - `written`: the id of every commit this HAL wrote as a step or a new thread, added before the branch moves to
//!   it. A commit on a branch that is missing here was written by someone else (or just before a crash, in which
//!   case HAL asks the model again instead of acting on it: the safe side).
//! - `starts`: `<depth> <branch>` for every thread HAL started from a run: how many starts led to it.
//!
//! Each line is appended with one `write` on a file opened with `O_APPEND`, so processes sharing the repository
//! never interleave lines. Each process keeps an index in memory and reads only what was appended since it last
//! looked, so a lookup costs the same at ten steps as at a million. The record is not a cache: deleting it makes
//! HAL distrust its own unfinished runs (they ask the model again) and count the threads it started as started
//! by a person. It is not synced to disk per line: a line lost to a power cut errs on the same safe side.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use gix::ObjectId;

use crate::error::IoContext;
use crate::{Result, StoreError};

/// The two logs of one repository.
pub(crate) struct LocalRecord {
    written: Log<HashSet<ObjectId>>,
    starts: Log<HashMap<String, u32>>,
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
        LocalRecord { written: Log::new(dir.join("written")), starts: Log::new(dir.join("starts")) }
    }

    /// Record that this HAL wrote `commit`.
    pub(crate) fn add_written(&self, commit: ObjectId) -> Result<()> {
        self.written.append(&format!("{commit}\n"))
    }

    /// Whether this HAL wrote `commit`.
    pub(crate) fn wrote(&self, commit: ObjectId) -> Result<bool> {
        self.written.lookup(
            |index| index.contains(&commit),
            |index, line| {
                if let Ok(id) = ObjectId::from_hex(line.as_bytes()) {
                    index.insert(id);
                }
            },
        )
    }

    /// Record that HAL started `branch` at the end of a chain of `depth` starts.
    pub(crate) fn add_start(&self, branch: &str, depth: u32) -> Result<()> {
        if branch.contains(['\n', '\r']) {
            return Err(StoreError::InvalidText("a branch name cannot hold a line break"));
        }
        self.starts.append(&format!("{depth} {branch}\n"))
    }

    /// The chain of starts HAL recorded for `branch`, if HAL started it.
    pub(crate) fn start_depth(&self, branch: &str) -> Result<Option<u32>> {
        self.starts.lookup(
            |index| index.get(branch).copied(),
            |index, line| {
                if let Some((depth, branch)) = line.split_once(' ')
                    && let Ok(depth) = depth.parse()
                {
                    index.insert(branch.to_owned(), depth);
                }
            },
        )
    }
}

impl<I: Default> Log<I> {
    fn new(path: PathBuf) -> Log<I> {
        Log { path, state: Mutex::new(LogState { file: None, read_to: 0, index: I::default() }) }
    }

    fn append(&self, line: &str) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .io_context(|| format!("opening {}", self.path.display()))?;
            state.file = Some(file);
        }
        let file = state.file.as_mut().expect("opened just above");
        // One write call per line: with O_APPEND, lines of concurrent writers never interleave.
        file.write_all(line.as_bytes()).io_context(|| format!("appending to {}", self.path.display()))
    }

    /// `found(index)` after reading what was appended since the last look, unless the index already knows.
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

#[cfg(test)]
mod tests {
    use super::LocalRecord;

    #[test]
    fn a_second_handle_sees_what_the_first_appended() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = LocalRecord::new(dir.path());
        let second = LocalRecord::new(dir.path());
        let id = gix::ObjectId::from_hex(b"0123456789012345678901234567890123456789").expect("id");
        assert!(!second.wrote(id).expect("lookup"));
        first.add_written(id).expect("add");
        assert!(second.wrote(id).expect("lookup"));
        assert_eq!(second.start_depth("threads/a/x").expect("lookup"), None);
        first.add_start("threads/a/x", 2).expect("add");
        first.add_start("threads/a/y", 3).expect("add");
        assert_eq!(second.start_depth("threads/a/y").expect("lookup"), Some(3));
        assert_eq!(second.start_depth("threads/a/x").expect("lookup"), Some(2));
        assert!(first.add_start("threads/a/z\n9 threads/a/w", 0).is_err());
    }
}
