//! Home repos: opening, `hal init`, actors and identities.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use gix::refs::{FullName, Target};

use crate::error::{GixContext, IoContext};
use crate::local_record::LocalRecord;
use crate::refs::{self, Expect, RefWriter};
use crate::{Result, StoreError, git_cli, identity, worktree};

/// The branch that holds accepted work and the repo's configuration.
pub const MAIN_REF: &str = "refs/heads/main";

/// Where, under the common git dir, the newest `main` this repository believed is kept (`hal_trust` reads and
/// writes it; a `main` moved back or sideways from it is not believed).
pub const MAIN_SEEN: &str = "hal/main-seen";
/// The configuration file `hal init` commits on `main`.
pub const CONFIG_FILE: &str = "hal.yaml";
/// Where thread branches live.
pub const THREADS_PREFIX: &str = "refs/heads/threads/";
/// Where actor branches live.
pub const ACTORS_PREFIX: &str = "refs/heads/actors/";
/// The file on an actor branch that describes the actor.
pub const ACTOR_FILE: &str = "actor.yaml";
/// Environment variable that names the local actor.
pub const ACTOR_ENV: &str = "HAL_ACTOR";
/// Local git configuration key that names the local actor (set by `hal init`).
pub const ACTOR_CONFIG_KEY: &str = "hal.actor";

/// The `hal.yaml` that `hal init` commits, before its `owners`.
const DEFAULT_CONFIG: &str = include_str!("default-hal.yaml");
/// What `hal init` writes above the first owner in `hal.yaml`.
const OWNERS_COMMENT: &str = "\n# Owners merge to `main`, approve, and change policy: each with the public keys whose signatures count as\n# theirs. `hal init` recorded the first owner with the key that signed this file; a change to this section counts\n# only when an owner signs it.\n";

/// An opened home repo. Cloning gives an independent handle on the same repository (its own object cache), for
/// work done on another thread without sharing a lock.
#[derive(Clone)]
pub struct Home {
    repo: gix::Repository,
    refs: RefWriter,
    clock: Clock,
    /// What this HAL wrote (shared by clones of this handle).
    record: std::sync::Arc<LocalRecord>,
    /// The key HAL signs its commits with (shared by clones of this handle).
    pub(crate) signing: std::sync::Arc<crate::commit::Signing>,
}

/// Where commit times come from: read for every commit, when it is made.
pub type Clock = std::sync::Arc<dyn Fn() -> gix::date::Time + Send + Sync>;

/// The clock of a home repo opened without [`Home::with_clock`]: the time the commit is made, or the
/// `GIT_COMMITTER_DATE` git would use (tests and fixture scripts pin dates with it).
fn system_clock() -> Clock {
    std::sync::Arc::new(|| {
        std::env::var("GIT_COMMITTER_DATE")
            .ok()
            .and_then(|date| gix::date::parse(&date, None).ok())
            .unwrap_or_else(gix::date::Time::now_local_or_utc)
    })
}

/// What `hal init` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct InitReport {
    /// The repository's work tree (or git dir when bare).
    pub path: PathBuf,
    /// Whether a new git repository was created.
    pub created_repository: bool,
    /// Whether `hal.yaml` was committed on `main`.
    pub committed_config: bool,
    /// The local human's actor name.
    pub actor: String,
    /// Actor branches that were created.
    pub created_actors: Vec<String>,
    /// Local branches created for threads and actors found on remotes (after a `git clone`).
    pub adopted_branches: Vec<String>,
    /// The private key the person signs with on this machine.
    pub key: Option<PathBuf>,
    /// The allowed-signers file git checks HAL's signatures with (`gpg.ssh.allowedSignersFile`).
    pub allowed_signers: Option<PathBuf>,
}

/// Whether an actor is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A person.
    Human,
    /// A program, such as HAL itself.
    Machine,
}

impl Home {
    /// Open the home repo that contains `path` (searching upwards like git).
    pub fn open(path: &Path) -> Result<Home> {
        let repo =
            gix::discover(path).map_err(|source| StoreError::NotARepository { path: path.to_owned(), source })?;
        let home = Home::from_repo(repo);
        let main = home.main_tip()?.ok_or_else(|| home.not_home("it has no `main` branch"))?;
        if home.file_at(main, CONFIG_FILE)?.is_none() {
            return Err(home.not_home("`main` has no hal.yaml"));
        }
        Ok(home)
    }

    /// Prepare the repository at (or containing) `path` as a home repo, creating it when needed. Running it
    /// again changes nothing that is already in place.
    pub fn init(path: &Path, actor: Option<&str>) -> Result<(Home, InitReport)> {
        let mut report = InitReport::default();
        let repo = match gix::discover(path) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(path).io_context(|| format!("creating {}", path.display()))?;
                report.created_repository = true;
                gix::init(path).git_context(|| format!("creating a git repository in {}", path.display()))?
            }
        };
        let home = Home::from_repo(repo);
        report.path = home.path().to_owned();
        report.actor = home.resolve_actor(actor)?;
        // The person signs what makes them the first owner: hal.yaml's owners, and the keys of actors.
        let person = home.person_key(&report.actor)?;
        report.committed_config = home.ensure_config(&report.actor, &person)?;
        if actor.is_some() || home.config_string(ACTOR_CONFIG_KEY).is_none() {
            home.set_local_config(ACTOR_CONFIG_KEY, &report.actor)?;
        }
        // The settings just written are not in the opened repository's configuration snapshot.
        let home = Home::from_repo(
            gix::discover(&report.path).git_context(|| format!("reopening {}", report.path.display()))?,
        );
        report.adopted_branches = home.adopt_remote_branches()?;
        let machine = crate::keys::hostname();
        let person_keys: Vec<_> = person.public_keys().into_iter().map(|key| (key, machine.clone())).collect();
        let hal_key = home.hal_key()?.map(|key| key.public_key().clone());
        let hal_keys: Vec<_> = hal_key.iter().map(|key| (key.clone(), machine.clone())).collect();
        for (name, kind, keys) in [
            (report.actor.as_str(), ActorKind::Human, &person_keys),
            (identity::HAL_ACTOR, ActorKind::Machine, &hal_keys),
        ] {
            if home.ensure_actor_keys(name, kind, keys, Some(&person.key))? {
                report.created_actors.push(name.to_owned());
            }
        }
        let signers = crate::keys::allowed_signers(
            person_keys
                .iter()
                .map(|(key, _)| (report.actor.as_str(), key))
                .chain(hal_keys.iter().map(|(key, _)| (identity::HAL_ACTOR, key))),
        );
        report.allowed_signers = Some(home.write_allowed_signers(&signers)?);
        report.key = Some(person.path);
        Ok((home, report))
    }

    fn from_repo(mut repo: gix::Repository) -> Home {
        // Reading a few commits and trees per operation: a small cache avoids re-inflating the same objects.
        repo.object_cache_size_if_unset(4 * 1024 * 1024);
        let refs = RefWriter::new(&repo);
        let record = std::sync::Arc::new(LocalRecord::new(repo.common_dir()));
        Home {
            repo,
            refs,
            clock: system_clock(),
            record,
            signing: std::sync::Arc::new(crate::commit::Signing::MachineKey(Default::default())),
        }
    }

    /// The time now by the repo's clock (what the next commit is dated), in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        (self.clock)().seconds
    }

    /// The same home repo, dating its commits by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Home {
        self.clock = clock;
        self
    }

    /// The underlying repository.
    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    pub(crate) fn refs(&self) -> &RefWriter {
        &self.refs
    }

    pub(crate) fn record(&self) -> &LocalRecord {
        &self.record
    }

    /// The work tree, or the git dir of a bare repository.
    pub fn path(&self) -> &Path {
        self.repo.workdir().unwrap_or_else(|| self.repo.git_dir())
    }

    /// The error for a repository that is not (or no longer) a home repo.
    pub(crate) fn not_home(&self, reason: &str) -> StoreError {
        StoreError::NotAHomeRepo { path: self.path().to_owned(), reason: reason.to_owned() }
    }

    /// The commit `main` points at.
    pub fn main_tip(&self) -> Result<Option<ObjectId>> {
        refs::read(&self.repo, &refs::full_name(MAIN_REF)?)
    }

    /// A string from the repository's git configuration.
    pub fn config_string(&self, key: &str) -> Option<String> {
        self.repo.config_snapshot().string(key).map(|value| value.to_str_lossy().into_owned())
    }

    /// Write `key = value` into the repository's own (local) git configuration.
    pub(crate) fn set_local_config(&self, key: &str, value: &str) -> Result<()> {
        git_cli::run(git_cli::in_git_dir(self.repo.git_dir()), &["config", "--local", key, value])
    }

    /// The local human's actor name: `explicit`, else `HAL_ACTOR`, else `hal.actor` from git config, else
    /// derived from `user.name`.
    pub fn resolve_actor(&self, explicit: Option<&str>) -> Result<String> {
        if let Some(name) = explicit {
            identity::validate(name)?;
            if name == identity::HAL_ACTOR {
                return Err(StoreError::InvalidActor {
                    name: name.to_owned(),
                    reason: "`hal` is HAL's own actor; choose a name for yourself",
                });
            }
            return Ok(name.to_owned());
        }
        if let Some(name) = std::env::var(ACTOR_ENV).ok().filter(|n| !n.is_empty()) {
            return self.resolve_actor(Some(&name));
        }
        if let Some(name) = self.config_string(ACTOR_CONFIG_KEY) {
            return self.resolve_actor(Some(&name));
        }
        self.config_string("user.name").and_then(|name| identity::slug(&name)).ok_or(StoreError::UnknownActor)
    }

    /// The signature for a commit made on behalf of `actor`: the git identity for the local human, a
    /// generated one for anyone else.
    pub(crate) fn signature(&self, actor: &str) -> gix::actor::Signature {
        // Read now, not from `repo.committer()`: gix works that out once per opened repository, so a daemon
        // would date every commit with the time it started.
        let time = (self.clock)();
        let is_local = self.resolve_actor(None).is_ok_and(|local| local == actor);
        let (name, email) = match (is_local, self.config_string("user.name"), self.config_string("user.email")) {
            (true, Some(name), email) => (name, email.unwrap_or_else(|| format!("{actor}@hal.invalid"))),
            _ if actor == identity::HAL_ACTOR => ("HAL".to_owned(), "hal@hal.invalid".to_owned()),
            _ => (actor.to_owned(), format!("{actor}@hal.invalid")),
        };
        gix::actor::Signature { name: name.into(), email: email.into(), time }
    }

    /// Commit `hal.yaml` on `main` unless it is there, or add the person as its first owner when it names none.
    /// Returns whether a commit was made.
    fn ensure_config(&self, actor: &str, person: &crate::actor_keys::PersonKey) -> Result<bool> {
        let main = refs::full_name(MAIN_REF)?;
        let head = self.repo.head_name().git_context(|| "reading HEAD".to_owned())?;
        let main_tip = refs::read(&self.repo, &main)?;
        if main_tip.is_none() {
            let head_tip = match &head {
                Some(name) => refs::read(&self.repo, name)?,
                None => Some(self.repo.head_id().git_context(|| "reading HEAD".to_owned())?.detach()),
            };
            match (&head, head_tip) {
                (Some(name), None) => {
                    // An unborn branch: start `main` and point HEAD at it, as `git init -b main` would.
                    if *name != main {
                        self.point_head_at_main()?;
                    }
                }
                (head, _) => {
                    let on = head.as_ref().map_or("a detached HEAD".to_owned(), |n| format!("`{}`", n.shorten()));
                    return Err(StoreError::NoMainBranch(format!(
                        "this repository has no `main` branch (HEAD is on {on}); HAL keeps accepted work on `main`: \
                         rename your branch with `git branch -m main` or create one with `git branch main`, then run \
                         `hal init` again"
                    )));
                }
            }
        }
        let owners: String =
            person.public_keys().iter().map(|key| format!("    - \"{}\"\n", crate::keys::public_line(key))).collect();
        let owners = format!("{OWNERS_COMMENT}owners:\n  {}:\n{owners}", yaml_string(actor));
        let existing = match main_tip {
            Some(tip) => self.file_at(tip, CONFIG_FILE)?,
            None => None,
        };
        let (config, message, reflog) = match existing {
            None => (
                format!("{DEFAULT_CONFIG}{owners}"),
                "hal: initialise home repo\n\nAdd hal.yaml, the settings HAL reads from `main`.\n",
                "hal init: add hal.yaml",
            ),
            // A hal.yaml from before owners: the person running `hal init` becomes the first owner, unless the file
            // does not validate (then it is the owner's to fix) or says something of owners already.
            Some(bytes) => {
                let Ok(text) = String::from_utf8(bytes) else { return Ok(false) };
                let valid = hal_spec::Settings::parse(CONFIG_FILE, &text).is_ok_and(|s| s.owners.is_empty());
                if !valid || text.lines().any(|line| line.starts_with("owners:")) {
                    return Ok(false);
                }
                let separator = if text.ends_with('\n') { "" } else { "\n" };
                let config = format!("{text}{separator}{owners}");
                if hal_spec::Settings::parse(CONFIG_FILE, &config).map_or(true, |s| s.owners.is_empty()) {
                    return Ok(false);
                }
                (
                    config,
                    "hal: record the first owner\n\nAdd `owners` to hal.yaml, signed by that owner.\n",
                    "hal init: add owners",
                )
            }
        };
        let blob = self.repo.write_blob(config).git_context(|| "writing hal.yaml".to_owned())?.detach();
        let signature = self.signature(actor);
        let base_tree = match main_tip {
            Some(tip) => self.tree_of(tip)?.id,
            None => ObjectId::empty_tree(self.repo.object_hash()),
        };
        let mut editor = self.repo.edit_tree(base_tree).git_context(|| "editing main's tree".to_owned())?;
        editor.upsert(CONFIG_FILE, EntryKind::Blob, blob).git_context(|| "adding hal.yaml".to_owned())?;
        let tree = editor.write().git_context(|| "writing main's tree".to_owned())?.detach();
        let parents = main_tip.into_iter().collect();
        let commit = self.write_signed_commit(tree, parents, &signature, message, None, Some(&person.key))?;
        self.move_branch(&main, main_tip, commit, &signature, reflog)?;
        Ok(true)
    }

    /// Point a HEAD that names some other unborn branch at `main`.
    fn point_head_at_main(&self) -> Result<()> {
        git_cli::run(git_cli::in_git_dir(self.repo.git_dir()), &["symbolic-ref", "HEAD", MAIN_REF])
    }

    /// Move a branch that may be checked out from `old` to `new` with a compare-and-swap, bringing its work
    /// tree along. If the work tree cannot follow, the branch is put back and the error says why.
    pub(crate) fn move_branch(
        &self,
        name: &FullName,
        old: Option<ObjectId>,
        new: ObjectId,
        signature: &gix::actor::Signature,
        reflog: &str,
    ) -> Result<()> {
        let expect = old.map_or(Expect::Absent, Expect::At);
        self.refs.swap_once(name, expect, Target::Object(new), Some((signature, reflog)))?;
        let Some(workdir) = worktree::checked_out_at(&self.repo, name) else { return Ok(()) };
        let old_tree = match old {
            Some(old) => self.tree_of(old)?.id,
            None => ObjectId::empty_tree(self.repo.object_hash()),
        };
        let new_tree = self.tree_of(new)?.id;
        if let Err(error) = worktree::update(workdir, old_tree, new_tree) {
            self.put_back(name, old, new)?;
            return Err(error);
        }
        Ok(())
    }

    /// Undo a branch move that its work tree could not follow.
    fn put_back(&self, name: &FullName, old: Option<ObjectId>, new: ObjectId) -> Result<()> {
        use gix::refs::transaction::{Change, PreviousValue, RefEdit, RefLog};
        match old {
            Some(old) => {
                self.refs.swap_once(name, Expect::At(new), Target::Object(old), None)?;
                // HAL's own step back is no push moving main back: a reader that saw `new` meanwhile forgets it.
                let seen = self.repo.common_dir().join(MAIN_SEEN);
                if name.as_bstr() == MAIN_REF && std::fs::read_to_string(&seen).is_ok_and(|t| *t.trim() == new) {
                    std::fs::write(&seen, format!("{old}\n")).io_context(|| format!("writing {}", seen.display()))?;
                }
                Ok(())
            }
            None => {
                let edit = RefEdit {
                    change: Change::Delete {
                        expected: PreviousValue::MustExistAndMatch(Target::Object(new)),
                        log: RefLog::AndReference,
                    },
                    name: name.clone(),
                    deref: false,
                };
                self.repo.edit_reference(edit).map(drop).git_context(|| format!("putting back {}", name.as_bstr()))
            }
        }
    }

    /// Create the branch `actors/<name>` unless it exists (a commit HAL signs). Returns whether it was created.
    pub fn ensure_actor(&self, name: &str, kind: ActorKind) -> Result<bool> {
        self.ensure_actor_keys(name, kind, &[], None)
    }

    /// After a `git clone`, threads and actors exist only as remote-tracking branches: create local branches
    /// for those that have none, so the clone is a complete home repo. Returns the branches created.
    fn adopt_remote_branches(&self) -> Result<Vec<String>> {
        let mut adopted = Vec::new();
        let platform = self.repo.references().git_context(|| "listing refs".to_owned())?;
        let remotes = platform.prefixed("refs/remotes/").git_context(|| "listing remote refs".to_owned())?;
        let mut candidates = Vec::new();
        for reference in remotes {
            let Ok(reference) = reference else { continue };
            let name = reference.name().as_bstr().to_str_lossy().into_owned();
            let Some(rest) = name.strip_prefix("refs/remotes/") else { continue };
            let Some((_remote, branch)) = rest.split_once('/') else { continue };
            if !(branch.starts_with("threads/") || branch.starts_with("actors/")) {
                continue;
            }
            if let Some(id) = reference.target().try_id() {
                candidates.push((branch.to_owned(), id.to_owned()));
            }
        }
        candidates.sort();
        for (branch, id) in candidates {
            let local = refs::full_name(&format!("refs/heads/{branch}"))?;
            if refs::read(&self.repo, &local)?.is_none()
                && self.refs.swap_once(&local, Expect::Absent, Target::Object(id), None).is_ok()
            {
                adopted.push(branch);
            }
        }
        Ok(adopted)
    }
}

/// Quote `text` as a YAML double-quoted string.
pub(crate) fn yaml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
