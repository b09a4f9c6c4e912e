//! The keys `hal init` sets up: the person's (theirs from git's `user.signingkey`, or one HAL makes), HAL's on this
//! machine, both published on actor branches by commits the person signs, and the allowed-signers file git checks
//! signatures with.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use gix::refs::Target;
use ssh_key::PublicKey;

use crate::error::{GixContext, IoContext};
use crate::home::{ACTOR_FILE, ACTORS_PREFIX, ActorKind};
use crate::keys::{self, ALLOWED_SIGNERS_FILE, Signer};
use crate::refs::{self, Expect};
use crate::{Home, Result, StoreError, git_cli, identity};
use hal_spec::{ActorFile, ActorKey};

/// The key a person signs with on this machine.
pub struct PersonKey {
    /// The private key HAL signs the person's commits with.
    pub key: Signer,
    /// Its file.
    pub path: PathBuf,
    /// A further public key of the person's that HAL cannot sign with (git's `user.signingkey`, protected by a
    /// passphrase or held by an agent): published too, so the person's own `git commit -S` verifies.
    pub also: Option<PublicKey>,
}

impl PersonKey {
    /// The public keys to publish for the person.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        let mut keys = vec![self.key.public_key().clone()];
        keys.extend(self.also.clone());
        keys
    }
}

impl Home {
    /// The key `actor` (the local person) signs with: git's `user.signingkey` when `gpg.format` is `ssh` and HAL
    /// can read it, else one HAL keeps for them in the key directory (made now if needed, and set as git's
    /// signing key when git has none, so `git commit -S` signs with it too).
    pub fn person_key(&self, actor: &str) -> Result<PersonKey> {
        // Commits are not signed behind the person's back (`commit.gpgsign`): a signature on main is an owner's
        // deliberate word (a merge they sign brings in what the other side holds).
        let (key, _git_signs_ssh) = self.find_person_key(actor)?;
        Ok(key)
    }

    /// The person's key, and whether git signs with an SSH key in this repo (theirs, or the one set now).
    fn find_person_key(&self, actor: &str) -> Result<(PersonKey, bool)> {
        let configured = match self.config_string("gpg.format").as_deref() {
            Some("ssh") => self.config_string("user.signingkey"),
            _ => None,
        };
        let mut also = None;
        if let Some(value) = &configured {
            // As git reads it: `key::<public key>`, a public key itself, or a file (a private key, or its `.pub`).
            let literal = value.strip_prefix("key::").or_else(|| value.starts_with("ssh-").then_some(value.as_str()));
            match literal {
                Some(literal) => also = keys::parse_public(literal).ok(),
                None => {
                    let path = expand_home(value);
                    let private = match path.to_str().and_then(|p| p.strip_suffix(".pub")) {
                        Some(stem) => PathBuf::from(stem),
                        None => path.clone(),
                    };
                    match keys::read_key(&private) {
                        Ok(key) => return Ok((PersonKey { key: Signer::new(key)?, path: private, also: None }, true)),
                        Err(error) => {
                            tracing::info!(target: "hal_store", %error, "git's signing key cannot sign in process");
                            let mut public = private.clone().into_os_string();
                            public.push(".pub");
                            also = std::fs::read_to_string(&public).ok().and_then(|t| keys::parse_public(&t).ok());
                        }
                    }
                }
            }
        }
        // Only ed25519 keys are published (the formats of actor files and owners say so); another kind of key
        // keeps signing the person's own commits, which then show as signed by an unknown key.
        if let Some(key) = also.take_if(|key| key.algorithm() != ssh_key::Algorithm::Ed25519) {
            tracing::warn!(target: "hal_store", algorithm = %key.algorithm(),
                "git's signing key is not an ed25519 key: HAL does not publish it");
        }
        let path = keys::keys_dir()?.join(format!("{actor}_ed25519"));
        let key = keys::load_or_create(&path, &format!("{actor}@{}", keys::hostname()))?;
        let mut git_signs_ssh = configured.is_some();
        if configured.is_none() && self.config_string("user.signingkey").is_none() {
            let path_text = path.to_str().ok_or_else(|| StoreError::Key {
                path: path.clone(),
                reason: "the path is not UTF-8, which git's configuration needs".to_owned(),
            })?;
            self.set_local_config("user.signingkey", path_text)?;
            self.set_local_config("gpg.format", "ssh")?;
            git_signs_ssh = true;
        }
        Ok((PersonKey { key: Signer::new(key)?, path, also }, git_signs_ssh))
    }

    /// Make sure the branch `actors/<name>` exists and its `actor.yaml` lists `keys` (each with the machine it
    /// lives on), by commits `signer` signs (HAL's key when `None`). The file is read as an actor file and written
    /// again whole, so what it holds is what the schema says; one that does not validate is refused, not patched.
    /// Returns whether the branch was created.
    pub fn ensure_actor_keys(
        &self,
        name: &str,
        kind: ActorKind,
        keys: &[(PublicKey, String)],
        signer: Option<&Signer>,
    ) -> Result<bool> {
        identity::validate(name)?;
        let branch = refs::full_name(&format!("{ACTORS_PREFIX}{name}"))?;
        let place = format!("actors/{name}:{ACTOR_FILE}");
        const ATTEMPTS: u32 = 5;
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            let tip = refs::read(self.repo(), &branch)?;
            // An actor that exists with nothing to add is left as it is, whatever its file holds: a broken
            // actor.yaml pushed to its branch must not stop HAL from writing that actor's steps.
            if tip.is_some() && keys.is_empty() {
                return Ok(false);
            }
            let existing = match tip {
                Some(tip) => self.file_at(tip, ACTOR_FILE)?,
                None => None,
            };
            let mut file = match existing {
                Some(bytes) => {
                    let text = String::from_utf8(bytes)
                        .map_err(|_| StoreError::InvalidFile(format!("{place}: not UTF-8; fix it on the branch")))?;
                    ActorFile::parse(&place, &text).map_err(|error| StoreError::InvalidFile(error.to_string()))?
                }
                None => self.new_actor(name, kind),
            };
            let missing: Vec<&(PublicKey, String)> = keys
                .iter()
                .filter(|(key, _)| {
                    let line = keys::public_line(key);
                    !file.keys.iter().any(|known| known.key.split_whitespace().take(2).eq(line.split_whitespace()))
                })
                .collect();
            if tip.is_some() && missing.is_empty() {
                return Ok(false);
            }
            for (key, machine) in &missing {
                file.keys.push(ActorKey { key: keys::public_line(key), machine: Some(machine.clone()) });
            }
            let text = actor_text(&file);
            // Written by HAL from a validated file: still, nothing that does not validate is ever signed.
            ActorFile::parse(&place, &text).map_err(|error| StoreError::InvalidFile(error.to_string()))?;
            let blob = self.repo().write_blob(&text).git_context(|| "writing actor.yaml".to_owned())?.detach();
            let base = match tip {
                Some(tip) => self.tree_of(tip)?.id,
                None => ObjectId::empty_tree(self.repo().object_hash()),
            };
            let mut editor = self.repo().edit_tree(base).git_context(|| "building the actor tree".to_owned())?;
            editor.upsert(ACTOR_FILE, EntryKind::Blob, blob).git_context(|| "adding actor.yaml".to_owned())?;
            let tree = editor.write().git_context(|| "writing the actor tree".to_owned())?.detach();
            let signature = self.signature(name);
            let message = match tip {
                None => format!("{name}: joined as a {} actor\n", kind_text(kind)),
                Some(_) => format!("{name}: add {} key(s)\n", missing.len()),
            };
            let hal_key = match signer {
                Some(_) => None,
                None => self.hal_key()?,
            };
            let signer = signer.or(hal_key.as_deref());
            let parents = tip.into_iter().collect();
            let commit = self.write_signed_commit(tree, parents, &signature, &message, None, signer)?;
            let expect = tip.map_or(Expect::Absent, Expect::At);
            match self.refs().swap_once(&branch, expect, Target::Object(commit), None) {
                Ok(()) => return Ok(tip.is_none()),
                // Another process changed it at the same moment: read it again.
                Err(error) if refs::read(self.repo(), &branch)? != tip => last_error = error.to_string(),
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::RefUpdateFailed { name: branch.to_string(), attempts: ATTEMPTS, reason: last_error })
    }

    fn new_actor(&self, name: &str, kind: ActorKind) -> ActorFile {
        let display = match kind {
            ActorKind::Human => self.config_string("user.name").unwrap_or_else(|| name.to_owned()),
            ActorKind::Machine => "HAL".to_owned(),
        };
        ActorFile {
            name: name.to_owned(),
            kind: kind_text(kind).to_owned(),
            display_name: Some(display),
            keys: Vec::new(),
        }
    }

    /// Write `signers` (the text of an allowed-signers file) to `.git/hal/allowed_signers` and point git's
    /// `gpg.ssh.allowedSignersFile` at it unless it names another file, so `git verify-commit` and
    /// `git log --show-signature` check HAL's commits.
    pub fn write_allowed_signers(&self, signers: &str) -> Result<PathBuf> {
        // Absolute: git reads the setting from wherever it runs.
        let common = self.repo().common_dir();
        let common = std::fs::canonicalize(common).io_context(|| format!("finding {}", common.display()))?;
        let path = common.join(ALLOWED_SIGNERS_FILE);
        crate::files::write_atomically(&path, signers.as_bytes(), crate::files::Readers::Umask)
            .io_context(|| format!("writing {}", path.display()))?;
        if self.config_string("gpg.ssh.allowedSignersFile").is_none() {
            let text = path.to_str().ok_or_else(|| StoreError::Key {
                path: path.clone(),
                reason: "the path is not UTF-8, which git's configuration needs".to_owned(),
            })?;
            git_cli::run(
                git_cli::in_git_dir(self.repo().git_dir()),
                &["config", "--local", "gpg.ssh.allowedSignersFile", text],
            )?;
        }
        Ok(path)
    }
}

/// `file` as YAML, every value quoted (an actor named `007` or `true` stays a name).
fn actor_text(file: &ActorFile) -> String {
    let quoted = crate::home::yaml_string;
    let mut text = format!(
        "# The actor `{}`: an identity that starts and takes part in threads.\nname: {}\nkind: {}\n",
        file.name,
        quoted(&file.name),
        quoted(&file.kind)
    );
    if let Some(display) = &file.display_name {
        text.push_str(&format!("display_name: {}\n", quoted(display)));
    }
    if !file.keys.is_empty() {
        text.push_str("keys:\n");
        for key in &file.keys {
            text.push_str(&format!("  - key: {}\n", quoted(&key.key)));
            if let Some(machine) = &key.machine {
                text.push_str(&format!("    machine: {}\n", quoted(machine)));
            }
        }
    }
    text
}

fn kind_text(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Human => "human",
        ActorKind::Machine => "machine",
    }
}

/// `~/x` as git reads it in `user.signingkey`.
fn expand_home(value: &str) -> PathBuf {
    match (value.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(value),
    }
}

impl Home {
    /// The key `actor` signs with on this machine, if there is one HAL can use, without making or configuring
    /// anything (for signing a message as it is sent): git's `user.signingkey` when `gpg.format` is `ssh` and HAL
    /// can read it, else the one `hal init` made in the key directory.
    pub fn existing_person_key(&self, actor: &str) -> Option<Signer> {
        if self.config_string("gpg.format").as_deref() == Some("ssh")
            && let Some(value) = self.config_string("user.signingkey")
            && !value.starts_with("key::")
            && !value.starts_with("ssh-")
        {
            let path = expand_home(&value);
            let private = match path.to_str().and_then(|p| p.strip_suffix(".pub")) {
                Some(stem) => PathBuf::from(stem),
                None => path,
            };
            if let Ok(key) = keys::read_key(&private) {
                return Signer::new(key).ok();
            }
        }
        let path = keys::keys_dir().ok()?.join(format!("{actor}_ed25519"));
        keys::read_key(&path).ok().and_then(|key| Signer::new(key).ok())
    }
}
