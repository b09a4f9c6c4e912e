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
        let configured = match self.config_string("gpg.format").as_deref() {
            Some("ssh") => self.config_string("user.signingkey"),
            _ => None,
        };
        let mut also = None;
        if let Some(value) = &configured {
            match value.strip_prefix("key::") {
                Some(literal) => also = keys::parse_public(literal).ok(),
                None => {
                    let path = expand_home(value);
                    let private = match path.extension().and_then(|e| e.to_str()) {
                        Some("pub") => path.with_extension(""),
                        _ => path.clone(),
                    };
                    match keys::read_key(&private) {
                        Ok(key) => return Ok(PersonKey { key: Signer::new(key)?, path: private, also: None }),
                        Err(error) => {
                            tracing::info!(target: "hal_store", %error, "git's signing key cannot sign in process");
                            let public = private.with_extension("pub");
                            also = std::fs::read_to_string(&public).ok().and_then(|t| keys::parse_public(&t).ok());
                        }
                    }
                }
            }
        }
        let path = keys::keys_dir()?.join(format!("{actor}_ed25519"));
        let key = keys::load_or_create(&path, &format!("{actor}@{}", keys::hostname()))?;
        if configured.is_none() && self.config_string("user.signingkey").is_none() {
            let path_text = path.to_str().ok_or_else(|| StoreError::Key {
                path: path.clone(),
                reason: "the path is not UTF-8, which git's configuration needs".to_owned(),
            })?;
            self.set_local_config("user.signingkey", path_text)?;
            self.set_local_config("gpg.format", "ssh")?;
        }
        Ok(PersonKey { key: Signer::new(key)?, path, also })
    }

    /// Make sure the branch `actors/<name>` exists and its `actor.yaml` lists `keys` (each with the machine it
    /// lives on), by commits `signer` signs (HAL's key when `None`). Returns whether the branch was created.
    pub fn ensure_actor_keys(
        &self,
        name: &str,
        kind: ActorKind,
        keys: &[(PublicKey, String)],
        signer: Option<&Signer>,
    ) -> Result<bool> {
        identity::validate(name)?;
        let branch = refs::full_name(&format!("{ACTORS_PREFIX}{name}"))?;
        let tip = refs::read(self.repo(), &branch)?;
        let text = match tip {
            Some(tip) => String::from_utf8_lossy(&self.file_at(tip, ACTOR_FILE)?.unwrap_or_default()).into_owned(),
            None => self.new_actor_text(name, kind),
        };
        let missing: Vec<&(PublicKey, String)> =
            keys.iter().filter(|(key, _)| !text.contains(&keys::public_line(key))).collect();
        if tip.is_some() && missing.is_empty() {
            return Ok(false);
        }
        let mut text = text;
        if !missing.is_empty() && !text.lines().any(|line| line == "keys:") {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("keys:\n");
        }
        for (key, machine) in &missing {
            text.push_str(&format!("  - key: \"{}\"\n    machine: \"{}\"\n", keys::public_line(key), machine));
        }
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
        let commit = self.write_signed_commit(tree, tip.into_iter().collect(), &signature, &message, None, signer)?;
        let expect = tip.map_or(Expect::Absent, Expect::At);
        match self.refs().swap_once(&branch, expect, Target::Object(commit), None) {
            Ok(()) => Ok(tip.is_none()),
            // Another process changed it at the same moment: look again (bounded by what is left to add).
            Err(_) if refs::read(self.repo(), &branch)? != tip => {
                self.ensure_actor_keys(name, kind, keys, signer).map(|_| false)
            }
            Err(error) => Err(error),
        }
    }

    fn new_actor_text(&self, name: &str, kind: ActorKind) -> String {
        let display = match kind {
            ActorKind::Human => self.config_string("user.name").unwrap_or_else(|| name.to_owned()),
            ActorKind::Machine => "HAL".to_owned(),
        };
        format!(
            "# The actor `{name}`: an identity that starts and takes part in threads.\nname: {name}\nkind: {}\ndisplay_name: {}\n",
            kind_text(kind),
            crate::home::yaml_string(&display)
        )
    }

    /// Write `signers` (the text of an allowed-signers file) to `.git/hal/allowed_signers` and point git's
    /// `gpg.ssh.allowedSignersFile` at it unless it names another file, so `git verify-commit` and
    /// `git log --show-signature` check HAL's commits.
    pub fn write_allowed_signers(&self, signers: &str) -> Result<PathBuf> {
        // Absolute: git reads the setting from wherever it runs.
        let common = self.repo().common_dir();
        let common = std::fs::canonicalize(common).io_context(|| format!("finding {}", common.display()))?;
        let path = common.join(ALLOWED_SIGNERS_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
        }
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, signers).io_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, &path).io_context(|| format!("writing {}", path.display()))?;
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
