//! Compare-and-swap ref updates, retried on a lost race.
//!
//! Every state change ends with one ref edit whose precondition is the value the change was built on. If
//! another writer got there first, the edit fails, the change is rebuilt on the new tip and tried again: work is
//! never silently overwritten. gix reports a mismatched precondition and a busy lock the same way, so after any
//! failed edit the ref is re-read: a moved ref means rebuild at once, an unmoved one means wait and retry.
//!
//! A writer killed with SIGKILL between taking a ref's lock file and renaming it leaves `<ref>.lock` behind,
//! which would block every later writer. Ref locks live for microseconds, so a lock file older than
//! [`STALE_LOCK_AGE`] is taken to be such a leftover and is removed (moved aside first and checked again, so a
//! fresh lock that replaced it in the meantime is put back).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};

use crate::error::GixContext;
use crate::{Result, StoreError};

/// How long one attempt waits for a ref's lock file.
const LOCK_WAIT: Duration = Duration::from_millis(500);
/// How long a compare-and-swap keeps retrying before it gives up.
const RETRY_DEADLINE: Duration = Duration::from_secs(60);
/// Failed edits of an unmoved, unlocked ref tolerated before giving up.
const MAX_UNEXPLAINED_FAILURES: u32 = 3;
/// A ref lock file older than this is a leftover of a killed writer.
pub const STALE_LOCK_AGE: Duration = Duration::from_secs(5);

/// What the ref must hold for an edit to go through.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// The ref must not exist yet.
    Absent,
    /// The ref must point at this commit.
    At(ObjectId),
}

/// Writes refs with preconditions. Holds a ref store configured for HAL's needs.
#[derive(Clone)]
pub(crate) struct RefWriter {
    /// Store used for thread and actor branches: no reflog (the commit graph already is the log, and a reflog
    /// would add a line per step forever).
    quiet: gix::RefStore,
    /// Store used for `main` and `HEAD`: reflog as the repository's configuration says.
    logged: gix::RefStore,
    /// Where loose refs and their lock files live.
    common_dir: PathBuf,
}

impl RefWriter {
    /// Build a writer for `repo`.
    pub(crate) fn new(repo: &gix::Repository) -> RefWriter {
        let mut quiet = repo.refs.clone();
        quiet.write_reflog = gix::refs::store::WriteReflog::Disable;
        RefWriter { quiet, logged: repo.refs.clone(), common_dir: repo.common_dir().to_owned() }
    }

    /// Apply one edit of `name` from `expect` to `new`, once. `reflog` names the committer and message for
    /// refs that keep a reflog; `None` writes none.
    pub(crate) fn swap_once(
        &self,
        name: &FullName,
        expect: Expect,
        new: Target,
        reflog: Option<(&gix::actor::Signature, &str)>,
    ) -> Result<()> {
        let expected = match expect {
            Expect::Absent => PreviousValue::MustNotExist,
            Expect::At(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
        };
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: reflog.map(|(_, message)| message).unwrap_or_default().into(),
                },
                expected,
                new,
            },
            name: name.clone(),
            deref: false,
        };
        let store = if reflog.is_some() { &self.logged } else { &self.quiet };
        let lock = gix::lock::acquire::Fail::AfterDurationWithBackoff(LOCK_WAIT);
        let mut time = gix::date::parse::TimeBuf::default();
        let committer = reflog.map(|(signature, _)| signature.to_ref(&mut time));
        let result =
            store.transaction().prepare(Some(edit), lock, lock).and_then(|prepared| prepared.commit(committer));
        result.map(drop).git_context(|| format!("updating {}", name.as_bstr()))
    }

    /// Compare-and-swap `name` to a commit made by `build` from the ref's current value, retrying on a lost
    /// race until it lands or [`RETRY_DEADLINE`] passes. `build` gets the current tip (`None` if the ref does
    /// not exist) and returns the new commit with a value to hand back. No reflog is written.
    pub(crate) fn update_with_retry<T>(
        &self,
        repo: &gix::Repository,
        name: &FullName,
        mut build: impl FnMut(Option<ObjectId>) -> Result<(ObjectId, T)>,
    ) -> Result<(ObjectId, T)> {
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut unexplained = 0u32;
        loop {
            attempts += 1;
            let tip = read(repo, name)?;
            let (new, extra) = build(tip)?;
            let expect = tip.map_or(Expect::Absent, Expect::At);
            let error = match self.swap_once(name, expect, Target::Object(new), None) {
                Ok(()) => return Ok((new, extra)),
                Err(error) => error,
            };
            if read(repo, name)? != tip {
                tracing::debug!(target: "hal_store::refs", ref_name = %name.as_bstr(), attempts, "lost a race, rebuilding on the new tip");
                continue;
            }
            // Unmoved ref: either another writer holds its lock (wait, clearing a stale leftover), or the edit
            // cannot succeed (permissions, a broken ref), which a few quick retries will not change.
            let contended = self.lock_path(name).exists();
            if !contended {
                unexplained += 1;
            }
            if started.elapsed() > RETRY_DEADLINE || unexplained > MAX_UNEXPLAINED_FAILURES {
                return Err(StoreError::RefUpdateFailed {
                    name: name.as_bstr().to_string(),
                    attempts,
                    reason: format!("{error:#}"),
                });
            }
            if contended {
                self.break_stale_lock(name);
            }
            std::thread::sleep(Duration::from_millis(u64::from(attempts.min(50))));
        }
    }

    /// The lock file git and gix use for a loose ref.
    fn lock_path(&self, name: &FullName) -> PathBuf {
        let mut path = self.common_dir.join(name.as_bstr().to_str_lossy().as_ref());
        path.as_mut_os_string().push(".lock");
        path
    }

    /// Remove `name`'s lock file if a killed writer left it behind.
    fn break_stale_lock(&self, name: &FullName) {
        let lock = self.lock_path(name);
        if !is_stale(&lock) {
            return;
        }
        let aside = lock.with_extension(format!("lock.stale-{}-{}", std::process::id(), fastrand::u32(..)));
        if std::fs::rename(&lock, &aside).is_err() {
            return; // someone else handled it
        }
        if is_stale(&aside) {
            tracing::warn!(target: "hal_store::refs", lock = %lock.display(), "removed a stale ref lock left by a killed writer");
            let _ = std::fs::remove_file(&aside);
        } else {
            // A live lock replaced the stale one between our check and the rename: give it back unless yet
            // another lock has appeared, in which case the owner of this one will fail and retry.
            let _ = std::fs::hard_link(&aside, &lock);
            let _ = std::fs::remove_file(&aside);
        }
    }
}

/// Whether the file at `path` exists and was last modified more than [`STALE_LOCK_AGE`] ago.
fn is_stale(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > STALE_LOCK_AGE)
}

/// The commit `name` points at, or `None` if it does not exist.
pub(crate) fn read(repo: &gix::Repository, name: &FullName) -> Result<Option<ObjectId>> {
    let reference = repo.try_find_reference(name.as_ref()).git_context(|| format!("reading {}", name.as_bstr()))?;
    Ok(reference.and_then(|r| r.target().try_id().map(ToOwned::to_owned)))
}

/// Parse a ref name HAL built itself.
pub(crate) fn full_name(name: &str) -> Result<FullName> {
    FullName::try_from(name).map_err(|source| StoreError::Git {
        context: format!("{name:?} is not a valid ref name"),
        source: gix::Error::from_error(source),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::Home;

    fn home() -> (tempfile::TempDir, Home, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(&dir.path().join("home"), Some("tester")).expect("init");
        let thread = home.new_thread("tester", None, None).expect("thread");
        (dir, home, thread.branch)
    }

    fn lock_file(home: &Home, branch: &str) -> std::path::PathBuf {
        home.repo().common_dir().join(format!("refs/heads/{branch}.lock"))
    }

    #[test]
    fn a_lock_left_by_a_killed_writer_is_cleared() {
        let (_dir, home, branch) = home();
        let lock = lock_file(&home, &branch);
        let file = std::fs::File::create(&lock).expect("create lock");
        file.set_modified(SystemTime::now() - Duration::from_secs(60)).expect("age the lock");
        drop(file);
        let appended = home.say("tester", &branch, "after a crash").expect("append despite the stale lock");
        assert_eq!(appended.step, 2);
        assert!(!lock.exists(), "the stale lock is gone");
    }

    #[test]
    fn a_live_lock_is_waited_for_not_broken() {
        let (_dir, home, branch) = home();
        let lock = lock_file(&home, &branch);
        std::fs::write(&lock, b"").expect("create lock");
        let holder = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(700));
                std::fs::remove_file(lock).expect("release lock");
            })
        };
        let appended = home.say("tester", &branch, "waited").expect("append after the lock is released");
        holder.join().expect("holder");
        assert_eq!(appended.step, 2);
    }
}
