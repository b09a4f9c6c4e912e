//! One daemon per home repo: an exclusive lock on `.git/hal/daemon.lock`, held as long as the process lives
//! (the kernel releases it when the process dies, however it dies). The file holds the holder's pid.

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

fn pid_in(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let pid = text.trim();
    if pid.is_empty() { "unknown".to_owned() } else { pid.to_owned() }
}

impl DaemonLock {
    /// Take the lock in `dir`, or say which process holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DaemonLock, DaemonError> {
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
                Err(TryLockError::WouldBlock) => return Err(DaemonError::AlreadyRunning { pid: pid_in(&mut file) }),
                Err(TryLockError::Error(error)) => return Err(DaemonError::io("locking", &path, error)),
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| DaemonError::io("writing", &path, e))?;
        Ok(DaemonLock { _file: file })
    }
}

/// The pid of the daemon holding the lock in `dir`, or `None` when no daemon runs there.
pub fn holder(dir: &Path) -> Result<Option<String>, DaemonError> {
    if !dir.join(LOCK_FILE).exists() {
        return Ok(None);
    }
    let (mut file, path) = open(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(pid_in(&mut file))),
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
        let lock = DaemonLock::acquire(dir.path()).expect("first");
        let pid = std::process::id().to_string();
        assert_eq!(holder(dir.path()).expect("check"), Some(pid.clone()));
        match DaemonLock::acquire(dir.path()) {
            Err(DaemonError::AlreadyRunning { pid: holder }) => assert_eq!(holder, pid),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(lock);
        assert_eq!(holder(dir.path()).expect("check"), None);
        DaemonLock::acquire(dir.path()).expect("free again");
    }
}
