//! One turn-taker per home repo: an exclusive lock on `.git/hal/daemon.lock`, held as long as the process lives
//! (the kernel releases it when the process dies, however it dies). The holder is the daemon, or a `hal` command
//! taking turns in its own process; the file holds the holder's pid, and `command` after it for the latter.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::DaemonError;

/// The lock file's name under `.git/hal/`.
const LOCK_FILE: &str = "daemon.lock";

/// The held lock; released on drop.
#[derive(Debug)]
pub(crate) struct DaemonLock {
    _file: File,
}

fn open(dir: &Path) -> Result<(File, PathBuf), DaemonError> {
    std::fs::create_dir_all(dir).map_err(|e| DaemonError::io("creating", dir, e))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| DaemonError::io("opening", &path, e))?;
    Ok((file, path))
}

/// Who holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// `hal daemon`: it serves the HTTP API (`.git/hal/daemon.json` says where).
    Daemon,
    /// A `hal` command taking turns in its own process (no daemon ran when it started); it serves no API.
    Command,
}

/// The holder of a taken lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its process id, as it wrote it.
    pub pid: String,
    /// What it is.
    pub by: Holder,
}

fn held_in(file: &mut File) -> Held {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let mut words = text.split_whitespace();
    let pid = words.next().unwrap_or("unknown").to_owned();
    let by = if words.next() == Some("command") { Holder::Command } else { Holder::Daemon };
    Held { pid, by }
}

impl DaemonLock {
    /// Take the lock in `dir` for `by`, or say which process holds it.
    pub(crate) fn acquire(dir: &Path, by: Holder) -> Result<DaemonLock, DaemonError> {
        let (mut file, path) = open(dir)?;
        // A client checking whether a daemon runs holds the lock for an instant: try a few times.
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if attempts < 10 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    let held = held_in(&mut file);
                    return Err(match held.by {
                        Holder::Daemon => DaemonError::AlreadyRunning { pid: held.pid },
                        Holder::Command => DaemonError::TurnsInProcess { pid: held.pid },
                    });
                }
                Err(TryLockError::Error(error)) => return Err(DaemonError::io("locking", &path, error)),
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| match by {
                Holder::Daemon => writeln!(file, "{}", std::process::id()),
                Holder::Command => writeln!(file, "{} command", std::process::id()),
            })
            .map_err(|e| DaemonError::io("writing", &path, e))?;
        Ok(DaemonLock { _file: file })
    }
}

/// Who holds the lock in `dir`, or `None` when nothing takes turns there.
pub fn holder(dir: &Path) -> Result<Option<Held>, DaemonError> {
    if !dir.join(LOCK_FILE).exists() {
        return Ok(None);
    }
    let (mut file, path) = open(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(held_in(&mut file))),
        Err(TryLockError::Error(error)) => Err(DaemonError::io("checking the lock", &path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_and_the_lock_frees_on_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(holder(dir.path()).expect("check"), None);
        let lock = DaemonLock::acquire(dir.path(), Holder::Daemon).expect("first");
        let pid = std::process::id().to_string();
        assert_eq!(holder(dir.path()).expect("check"), Some(Held { pid: pid.clone(), by: Holder::Daemon }));
        match DaemonLock::acquire(dir.path(), Holder::Command) {
            Err(DaemonError::AlreadyRunning { pid: holder }) => assert_eq!(holder, pid),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(lock);
        assert_eq!(holder(dir.path()).expect("check"), None);
        let command = DaemonLock::acquire(dir.path(), Holder::Command).expect("free again");
        assert_eq!(holder(dir.path()).expect("check"), Some(Held { pid: pid.clone(), by: Holder::Command }));
        match DaemonLock::acquire(dir.path(), Holder::Daemon) {
            Err(DaemonError::TurnsInProcess { pid: holder }) => assert_eq!(holder, pid),
            other => panic!("expected TurnsInProcess, got {other:?}"),
        }
        drop(command);
    }
}
