//! The keys that count, read from who signed what: owners from `main`'s `hal.yaml`, each actor's keys from its
//! branch. A trailer, a file or a branch only claims; a signature by an owner's key decides.
//!
//! - **Owners.** The changes to `hal.yaml` along `main`'s first parents, oldest first. The first one that names
//!   owners and is signed by one of the keys it names is the root (what `hal init` writes). After it, a change is
//!   applied only when a key of the owners in force signed it; any other (a plain `git merge` by someone else) is
//!   reported and not applied. A `hal.yaml` without `owners` leaves the owners as they are (they change only by
//!   being listed). The newest applied change is the `hal.yaml` in force.
//! - **Actor keys.** The changes to `actor.yaml` along `actors/<name>`'s first parents, oldest first. A key added by
//!   a commit an owner signed counts for that actor; one added otherwise is reported and ignored. A key removed by
//!   an owner-signed commit is revoked; a removal nobody trusted signed is reported and changes nothing. A revoked
//!   key's plain commits are shown as such; a message it signed inside a step HAL wrote stays HAL's word for it
//!   (HAL checked the key when it wrote the step). Owners' powers come from `hal.yaml` alone.
//!
//! Commits are ordered by the graph, never by their dates, which whoever writes them chooses.
//!
//! - **The pinned root.** The first root this repository saw is pinned in `.git/hal/trust-root` (git never
//!   carries it). A `main` whose root is another commit had its history rewritten (a force push with a
//!   self-signed `hal.yaml` of someone else's): no owner is believed until a person removes the pin.

use std::collections::{BTreeMap, HashMap};

use gix::ObjectId;
use hal_store::keys::{self, CommitSignature};
use hal_store::{ACTOR_FILE, ACTORS_PREFIX, CONFIG_FILE, Home, MAIN_REF};
use ssh_key::PublicKey;

use crate::TrustError;

mod main_line;

/// How many commits of one branch's history are read, at most.
pub const HISTORY_LIMIT: usize = 100_000;

/// A key that counts, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The actor it belongs to.
    pub actor: String,
    /// Revoked by an owner-signed commit.
    pub revoked: bool,
}

/// Something in the history that was not applied, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrustProblem {
    /// The branch and file (`main:hal.yaml`, `actors/hal:actor.yaml`).
    pub place: String,
    /// The commit.
    #[serde(serialize_with = "hal_store::serialize_id", deserialize_with = "hal_store::deserialize_id")]
    pub commit: ObjectId,
    /// What is wrong and what was done about it.
    pub text: String,
}

/// Owners and the keys that count.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Owners in force, by actor, with their key lines.
    pub owners: BTreeMap<String, Vec<String>>,
    /// The commit of `main` whose `hal.yaml` holds the owners in force.
    pub owners_from: Option<ObjectId>,
    /// The commit of `main` whose helps and agents are in force: the newest along its first parents that an owner
    /// signed, or that HAL wrote merging a thread an owner asked it to merge (`main`'s tip while no `hal.yaml`
    /// ever named owners; `None` when owners exist and no such commit does: then only the built-ins are).
    pub main_from: Option<ObjectId>,
    /// The root: the first change of `hal.yaml` on `main` that named owners, signed by one of them.
    pub root: Option<ObjectId>,
    /// Why `main` is not believed at all: its root is not the one this repository pinned (its history was
    /// rewritten). Then no owner counts and no `hal.yaml` of it is in force.
    pub rewritten: Option<String>,
    /// The commit of `main` whose `hal.yaml` is in force: the newest change an owner in force signed (`None` while
    /// no `hal.yaml` ever named owners: then `main`'s is, as before owners existed).
    pub settings_from: Option<ObjectId>,
    /// Keys by their line (`ssh-ed25519 AAAA…`, no comment).
    keys: HashMap<String, TrustedKey>,
    /// What was not applied.
    pub problems: Vec<TrustProblem>,
}

impl Keyring {
    /// Read owners and keys from `home` as its branches are now.
    pub fn load(home: &Home) -> Result<Keyring, TrustError> {
        // What it is read from: the same refs (and pin) give the same keyring, so a process reads it once per change.
        let key = CacheKey {
            repo: home.repo().common_dir().to_path_buf(),
            main: read_ref(home, MAIN_REF)?,
            actors: actor_branches(home)?,
            pin: std::fs::read_to_string(pin_path(home)).ok(),
            main_seen: std::fs::read_to_string(main_seen_path(home)).ok(),
        };
        let cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, ring)) = cache.iter().find(|(cached, _)| *cached == key) {
            return Ok(ring.clone());
        }
        drop(cache);
        let ring = Keyring::read(home)?;
        // Read again after a first pin: the key names the pin as it is now.
        let key = CacheKey {
            pin: std::fs::read_to_string(pin_path(home)).ok(),
            main_seen: std::fs::read_to_string(main_seen_path(home)).ok(),
            ..key
        };
        let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHED {
            cache.remove(0);
        }
        cache.push((key, ring.clone()));
        Ok(ring)
    }

    fn read(home: &Home) -> Result<Keyring, TrustError> {
        let mut ring = Keyring::default();
        let main = read_ref(home, MAIN_REF)?.map(|main| ring.main_not_moved_back(home, main));
        if let Some(main) = main {
            ring.read_owners(home, main)?;
            ring.check_pin(home, main);
        }
        for (name, tip) in actor_branches(home)? {
            ring.read_actor(home, &name, tip)?;
        }
        if let Some(main) = main {
            ring.read_main_in_force(home, main)?;
        }
        // An owner's key is an owner's by `hal.yaml`: revoked on its actor branch, it no longer counts for the
        // actor's steps, and signs `hal.yaml` changes until another owner removes it from `owners`.
        for (actor, lines) in ring.owners.clone() {
            for line in lines {
                let revoked = ring.keys.get(&line.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
                if revoked.is_some_and(|key| key.revoked) {
                    let text = format!(
                        "owner {actor}'s key {} is revoked on actors/{actor}, and still an owner's key (it signs \
                         hal.yaml and actor keys): remove it from `owners` in a hal.yaml change signed by an owner's \
                         key you still hold",
                        line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
                    );
                    let at = ring.owners_from.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1));
                    ring.problem(&format!("main:{CONFIG_FILE}"), at, text);
                }
            }
        }
        Ok(ring)
    }

    /// Who `key` belongs to, if it counts (revoked or not).
    pub fn owner_of(&self, key: &PublicKey) -> Option<&TrustedKey> {
        self.keys.get(&keys::public_line(key))
    }

    /// Whether `key` is an owner's key in force. Owner powers come from `hal.yaml`'s `owners` alone, ordered along
    /// `main`: a key revoked on its actor branch (no order relates that branch's commits to the others') stops
    /// counting for the actor's steps, not as an owner's (a problem says so), so the keys it added stay.
    pub fn is_owner_key(&self, key: &PublicKey) -> bool {
        let line = keys::public_line(key);
        self.owners.values().any(|lines| lines.iter().any(|l| same_key(l, &line)))
    }

    /// The keys that count and are not revoked, as (actor, key line), sorted.
    pub fn trusted(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .keys
            .iter()
            .filter(|(_, key)| !key.revoked)
            .map(|(line, key)| (key.actor.clone(), line.clone()))
            .collect();
        out.sort();
        out
    }

    /// An allowed-signers file (`gpg.ssh.allowedSignersFile`) of the keys that count: each may sign commits as
    /// its actor.
    pub fn allowed_signers(&self) -> String {
        self.trusted()
            .into_iter()
            .map(|(actor, line)| format!("{actor} namespaces=\"{}\" {line}\n", keys::GIT_NAMESPACE))
            .collect()
    }

    fn read_actor(&mut self, home: &Home, name: &str, tip: ObjectId) -> Result<(), TrustError> {
        let place = format!("actors/{name}:{ACTOR_FILE}");
        let mut claimed: Vec<String> = Vec::new();
        let mut truncated = Vec::new();
        let changes = changes_of(home, tip, ACTOR_FILE, &mut truncated)?;
        for commit in truncated {
            self.problem(&place, commit, format!("history read back {HISTORY_LIMIT} commits only"));
        }
        for (commit, text) in changes {
            let text = match text {
                Ok(text) => text,
                Err(why) => {
                    self.problem(&place, commit, format!("not applied: {why}"));
                    continue;
                }
            };
            let file = match hal_spec::ActorFile::parse(&place, &text) {
                Ok(file) if file.name == name => file,
                Ok(file) => {
                    let text = format!("names the actor `{}` on the branch of `{name}`: not applied", file.name);
                    self.problem(&place, commit, text);
                    continue;
                }
                Err(error) => {
                    self.problem(&place, commit, format!("not applied: it does not validate ({error})"));
                    continue;
                }
            };
            let now: Vec<String> = file.keys.iter().map(|k| k.key.clone()).collect();
            let by_owner = signer_of(home, commit)?.is_some_and(|key| self.is_owner_key(&key));
            for line in now.iter().filter(|line| !claimed.iter().any(|c| same_key(c, line))) {
                let Ok(key) = keys::parse_public(line) else { continue };
                if by_owner {
                    self.trust(&place, Some(commit), name, &key);
                } else {
                    let text = format!("adds {}, but no owner signed it: ignored", keys::fingerprint(&key));
                    self.problem(&place, commit, text);
                }
            }
            for line in claimed.iter().filter(|line| !now.iter().any(|n| same_key(n, line))) {
                let Ok(key) = keys::parse_public(line) else { continue };
                let known = self.keys.get_mut(&keys::public_line(&key));
                match known {
                    Some(trusted) if by_owner && trusted.actor == name => trusted.revoked = true,
                    Some(trusted) if trusted.actor == name => {
                        let text =
                            format!("removes {}, but no owner signed it: the key stays", keys::fingerprint(&key));
                        self.problem(&place, commit, text);
                    }
                    _ => {}
                }
            }
            claimed = now;
        }
        Ok(())
    }

    fn trust(&mut self, place: &str, commit: Option<ObjectId>, actor: &str, key: &PublicKey) {
        let line = keys::public_line(key);
        match self.keys.get(&line) {
            Some(known) if known.actor != actor => {
                let text =
                    format!("gives {} to `{actor}`, but it is `{}`'s: ignored", keys::fingerprint(key), known.actor);
                self.problem(place, commit.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1)), text);
            }
            Some(_) => {}
            None => {
                self.keys.insert(line, TrustedKey { actor: actor.to_owned(), revoked: false });
            }
        }
    }

    fn problem(&mut self, place: &str, commit: ObjectId, text: String) {
        self.problems.push(TrustProblem { place: place.to_owned(), commit, text });
    }
}

/// Whether `message` is that of a merge HAL made (its trailers, in the last paragraph HAL writes, say so): a merge
/// commit, or the `merged` step a fast-forward puts on `main`.
fn is_hals_merge(message: &str) -> bool {
    let trailers = message.trim_end().rsplit_once("\n\n").map_or("", |(_, last)| last);
    trailers.lines().any(|line| line == "Hal-Kind: merge" || line == "Hal-Kind: merged")
}

/// How many keyrings a process keeps (one per repository and state of its refs).
const CACHED: usize = 8;

/// The keyrings read last, by what they were read from.
static CACHE: std::sync::Mutex<Vec<(CacheKey, Keyring)>> = std::sync::Mutex::new(Vec::new());

/// What a keyring is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    repo: std::path::PathBuf,
    main: Option<ObjectId>,
    actors: Vec<(String, ObjectId)>,
    pin: Option<String>,
    main_seen: Option<String>,
}

/// Where the newest `main` this repository believed is kept.
fn main_seen_path(home: &Home) -> std::path::PathBuf {
    home.repo().common_dir().join(hal_store::MAIN_SEEN)
}

/// Write `text` to `path` whole, for a record of what this repository believed (`.git/hal/...`): a temporary file
/// of its own per write (threads of one process may write at once), on disk before it is renamed over `path`, so
/// a reader never sees half of it. A failure is logged, not fatal: the record is written again at the next look.
pub(crate) fn write_whole(path: &std::path::Path, text: &str) {
    if let Err(error) = hal_store::files::write_atomically(path, text.as_bytes(), hal_store::files::Readers::Umask) {
        tracing::warn!(target: "hal_trust", %error, path = %path.display(), "cannot record what was believed");
    }
}

/// Where the root this repository first saw is pinned.
fn pin_path(home: &Home) -> std::path::PathBuf {
    home.repo().common_dir().join("hal/trust-root")
}

/// Whether two key lines name the same key (comments aside).
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let strip = |line: &str| line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    strip(a) == strip(b)
}

/// The key whose good signature `commit` carries, if any.
pub(crate) fn signer_of(home: &Home, commit: ObjectId) -> Result<Option<PublicKey>, TrustError> {
    // A commit whose headers cannot be read proves nothing; it must not stop the rest from being read (anyone can
    // push one).
    Ok(match keys::verify_commit(home.repo(), commit) {
        Ok(CommitSignature::Good(key)) => Some(key),
        _ => None,
    })
}

fn read_ref(home: &Home, name: &str) -> Result<Option<ObjectId>, TrustError> {
    match home.repo().try_find_reference(name) {
        Ok(Some(reference)) => Ok(reference.target().try_id().map(|id| id.to_owned())),
        Ok(None) => Ok(None),
        Err(error) => Err(TrustError::Git(format!("reading {name}: {error}"))),
    }
}

/// Every `actors/<name>` branch with its tip.
fn actor_branches(home: &Home) -> Result<Vec<(String, ObjectId)>, TrustError> {
    let git = |e: &dyn std::fmt::Display| TrustError::Git(format!("listing actor branches: {e}"));
    let references = home.repo().references().map_err(|e| git(&e))?;
    let mut out = Vec::new();
    for reference in references.prefixed(ACTORS_PREFIX).map_err(|e| git(&e))? {
        let Ok(reference) = reference else { continue };
        let name = reference.name().as_bstr().to_string();
        let Some(actor) = name.strip_prefix(ACTORS_PREFIX) else { continue };
        if let Some(id) = reference.target().try_id() {
            out.push((actor.to_owned(), id.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// A file's text at one commit, or why it was not read (too large to be a hand-written file).
type FileText = Result<String, String>;

/// The commits along `tip`'s first parents that changed `path` (its blob differs from the first parent's), oldest
/// first, each with the file's text (empty when removed).
fn changes_of(
    home: &Home,
    tip: ObjectId,
    path: &str,
    truncated: &mut Vec<ObjectId>,
) -> Result<Vec<(ObjectId, FileText)>, TrustError> {
    let mut chain = Vec::new();
    let mut next = Some(tip);
    while let Some(commit) = next {
        if chain.len() >= HISTORY_LIMIT {
            // Read no further, and say so: the caller believes nothing of a history it did not read whole.
            truncated.push(commit);
            break;
        }
        let found = home.repo().find_commit(commit).map_err(|e| TrustError::Git(format!("reading {commit}: {e}")))?;
        next = found.parent_ids().next().map(|id| id.detach());
        chain.push((commit, home.entry_id(commit, path)?));
    }
    let mut changes = Vec::new();
    let mut before = None;
    for (commit, entry) in chain.into_iter().rev() {
        if entry != before {
            // Anyone can push a branch with a file of any size: one too large to be a hand-written file is a
            // change not applied, never a reason the keys cannot be read.
            let text = match entry {
                Some(_) => match home.file_at_most(commit, path, hal_store::MAX_SPEC_BYTES) {
                    Ok(bytes) => Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()),
                    Err(hal_store::StoreError::TooLarge { size, most, .. }) => {
                        Err(format!("it is {size} bytes, more than the {most} HAL reads of it"))
                    }
                    Err(error) => return Err(error.into()),
                },
                None => Ok(String::new()),
            };
            changes.push((commit, text));
        }
        before = entry;
    }
    Ok(changes)
}
