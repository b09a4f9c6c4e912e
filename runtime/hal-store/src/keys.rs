//! Keys and commit signatures in git's own SSH format.
//!
//! HAL signs every commit it writes in process, the way `git commit -S` does with `gpg.format=ssh`: an SSH
//! signature (namespace `git`, SHA-512) over the commit object without its `gpgsig` header, stored in that header.
//! So `git verify-commit` and `git log --show-signature` check HAL's commits with an allowed-signers file, and
//! the `hal-data` header, being part of the object, is covered by the signature.
//!
//! Private keys live outside git, beside the secret store: `keys/` next to `$HAL_SECRETS_FILE`, else
//! `$XDG_CONFIG_HOME/hal/keys`, else `~/.config/hal/keys` (files 0600 in a 0700 directory). HAL's own key on this
//! machine is `hal_ed25519` there; public keys are published on actor branches (`actors/<name>/actor.yaml`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::{Result, StoreError};

/// The namespace of commit signatures (what `git` passes to `ssh-keygen -Y sign -n`).
pub const GIT_NAMESPACE: &str = "git";
/// The commit header holding a signature.
pub const SIGNATURE_HEADER: &str = "gpgsig";
/// The file name of HAL's own key on this machine, in [`keys_dir`].
pub const HAL_KEY_FILE: &str = "hal_ed25519";
/// The file `hal init` writes the allowed signers to, in the git dir, for `gpg.ssh.allowedSignersFile`.
pub const ALLOWED_SIGNERS_FILE: &str = "hal/allowed_signers";

/// Where private keys are kept.
pub fn keys_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let no_place = || StoreError::Key {
        path: PathBuf::new(),
        reason: "no place for keys: set HOME, XDG_CONFIG_HOME or HAL_SECRETS_FILE (an absolute path)".to_owned(),
    };
    if let Some(secrets) = var("HAL_SECRETS_FILE") {
        return match secrets.parent() {
            Some(dir) if secrets.is_absolute() => Ok(dir.join("keys")),
            _ => Err(no_place()),
        };
    }
    let config = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|home| home.join(".config")));
    config.map(|dir| dir.join("hal/keys")).ok_or_else(no_place)
}

/// The ed25519 key in `path`, made (with `comment`) when there is none. Two processes making it at once end with
/// the same key: it is written to a temporary file and linked into place only if nothing is there yet.
pub fn load_or_create(path: &Path, comment: &str) -> Result<PrivateKey> {
    match read_key(path) {
        Err(StoreError::Key { reason, .. }) if reason == NOT_FOUND => {}
        other => return other,
    }
    let key_error = |reason: String| StoreError::Key { path: path.to_owned(), reason };
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)
        .map_err(|e| key_error(format!("making a key: {e}")))?;
    key.set_comment(comment);
    let text = key.to_openssh(LineEnding::LF).map_err(|e| key_error(format!("encoding the key: {e}")))?;
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| key_error(format!("creating its directory: {e}")))?;
        // Whoever can write the directory can swap the key.
        let mode = std::fs::metadata(dir).map_err(|e| key_error(format!("reading its directory: {e}")))?;
        if mode.permissions().mode() & 0o022 != 0 {
            return Err(key_error(format!(
                "others can write its directory (mode {:o}); run `chmod 700 {}`",
                mode.permissions().mode() & 0o777,
                dir.display()
            )));
        }
    }
    let temp = path.with_extension(format!("tmp{}-{}", std::process::id(), fastrand::u64(..)));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| file.write_all(text.as_bytes()).and_then(|()| file.sync_all()));
    let linked = written.and_then(|()| match std::fs::hard_link(&temp, path) {
        // A file system without hard links: `create_new` on the key's own path is just as exclusive.
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()).and_then(|()| file.sync_all())),
        other => other,
    });
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(key),
        // Another process made it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(error) => Err(key_error(format!("writing the key: {error}"))),
    }
}

const NOT_FOUND: &str = "there is no key file";

/// The unencrypted private key in `path`, refused when others can read it (as `ssh` does).
pub fn read_key(path: &Path) -> Result<PrivateKey> {
    let key_error = |reason: String| StoreError::Key { path: path.to_owned(), reason };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(key_error(NOT_FOUND.to_owned())),
        Err(error) => return Err(key_error(format!("reading it: {error}"))),
    };
    let mode = std::fs::metadata(path).map_err(|e| key_error(format!("reading it: {e}")))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(key_error(format!(
            "others can read it (mode {:o}); run `chmod 600 {}`",
            mode & 0o777,
            path.display()
        )));
    }
    let key =
        PrivateKey::from_openssh(text.as_bytes()).map_err(|e| key_error(format!("not an OpenSSH private key: {e}")))?;
    if key.is_encrypted() {
        return Err(key_error("it is protected by a passphrase, which HAL cannot ask for".to_owned()));
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(key_error(format!("it is an {} key; HAL signs with ed25519 keys", key.algorithm())));
    }
    Ok(key)
}

/// An ed25519 key ready to sign: `ssh-key` rebuilds the signing key from the private key (a scalar
/// multiplication) and checks it against the public one at every signature, which alone costs more than the
/// signature; this does that once.
#[derive(Clone)]
pub struct Signer {
    key: PrivateKey,
    signing: ed25519_dalek::SigningKey,
    public: ssh_key::public::KeyData,
}

impl Signer {
    /// A signer for `key` (ed25519).
    pub fn new(key: PrivateKey) -> Result<Signer> {
        let keypair = key.key_data().ed25519().ok_or_else(|| StoreError::Key {
            path: PathBuf::new(),
            reason: format!(
                "{} is an {} key; HAL signs with ed25519 keys",
                fingerprint(key.public_key()),
                key.algorithm()
            ),
        })?;
        let signing = ed25519_dalek::SigningKey::try_from(keypair).map_err(|e| StoreError::Key {
            path: PathBuf::new(),
            reason: format!("{} does not hold a matching key pair: {e}", fingerprint(key.public_key())),
        })?;
        let public = key.public_key().key_data().clone();
        Ok(Signer { key, signing, public })
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }
}

impl signature::Signer<ssh_key::Signature> for Signer {
    fn try_sign(&self, message: &[u8]) -> signature::Result<ssh_key::Signature> {
        let signature = ed25519_dalek::Signer::sign(&self.signing, message);
        ssh_key::Signature::new(Algorithm::Ed25519, signature.to_bytes().to_vec())
            .map_err(signature::Error::from_source)
    }
}

impl From<&Signer> for ssh_key::public::KeyData {
    fn from(signer: &Signer) -> ssh_key::public::KeyData {
        signer.public.clone()
    }
}

/// The signature of `payload` (a commit object without its signature header) by `signer`, armored as git stores
/// it.
pub fn sign(signer: &Signer, payload: &[u8]) -> Result<String> {
    let signature = SshSig::sign(signer, GIT_NAMESPACE, HashAlg::Sha512, payload).map_err(|e| StoreError::Key {
        path: PathBuf::new(),
        reason: format!("signing with {}: {e}", fingerprint(signer.public_key())),
    })?;
    signature
        .to_pem(LineEnding::LF)
        .map_err(|e| StoreError::Key { path: PathBuf::new(), reason: format!("encoding a signature: {e}") })
}

/// A public key as one line of OpenSSH text without its comment (`ssh-ed25519 AAAA…`): how keys are written in
/// actor files and compared.
pub fn public_line(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh().unwrap_or_default().trim().to_owned()
}

/// A public key's `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Parse one public key line (`ssh-ed25519 AAAA… [comment]`).
pub fn parse_public(line: &str) -> std::result::Result<PublicKey, String> {
    PublicKey::from_openssh(line.trim()).map_err(|e| format!("not an OpenSSH public key: {e}"))
}

/// What a commit's signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitSignature {
    /// No signature header.
    Unsigned,
    /// An SSH signature, in namespace `git`, that verifies over the commit: made by the key named here.
    Good(PublicKey),
    /// A signature that does not verify (the commit was changed after signing, another namespace, damaged), or
    /// one in a format HAL does not check (OpenPGP, X.509): it proves nothing.
    Bad(String),
}

/// Check the signature of `commit` in `repo`.
pub fn verify_commit(repo: &gix::Repository, commit: ObjectId) -> Result<CommitSignature> {
    use crate::error::GixContext;
    let object = repo.find_object(commit).git_context(|| format!("reading commit {commit}"))?;
    verify_commit_bytes(&object.data, repo.object_hash())
}

/// [`verify_commit`] on the raw bytes of a commit object.
pub fn verify_commit_bytes(data: &[u8], hash: gix::hash::Kind) -> Result<CommitSignature> {
    // gix leaves the first `gpgsig` header out of what was signed; git leaves out every `gpgsig` and
    // `gpgsig-sha256` line. So a commit with a second signature header that git accepts is "bad" here: stricter,
    // never looser.
    let found = gix::objs::CommitRefIter::signature(data, hash)
        .map_err(|e| StoreError::Key { path: PathBuf::new(), reason: format!("reading a commit: {e}") })?;
    let Some((armored, signed)) = found else { return Ok(CommitSignature::Unsigned) };
    let mut armored = armored.to_vec();
    if !armored.ends_with(b"\n") {
        armored.push(b'\n');
    }
    if !armored.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        return Ok(CommitSignature::Bad("not an SSH signature".to_owned()));
    }
    let signature = match SshSig::from_pem(&armored) {
        Ok(signature) => signature,
        Err(error) => return Ok(CommitSignature::Bad(format!("a damaged signature: {error}"))),
    };
    let key = PublicKey::from(signature.public_key().clone());
    Ok(match key.verify(GIT_NAMESPACE, &signed.to_bstring(), &signature) {
        Ok(()) => CommitSignature::Good(key),
        Err(error) => CommitSignature::Bad(format!("the signature does not match the commit: {error}")),
    })
}

/// The lines of an allowed-signers file (`gpg.ssh.allowedSignersFile`) for `keys`, given as (principal, key):
/// each key may sign commits (namespace `git`) as its principal.
pub fn allowed_signers<'a>(keys: impl IntoIterator<Item = (&'a str, &'a PublicKey)>) -> String {
    let mut out = String::new();
    for (principal, key) in keys {
        out.push_str(&format!("{principal} namespaces=\"{GIT_NAMESPACE}\" {}\n", public_line(key)));
    }
    out
}

/// This machine's name, for the comment of a key made here.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
        .unwrap_or_else(|| "this-machine".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Home, NewStep, StepKind, ThreadStatus};

    fn git(dir: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git")
    }

    /// Every commit HAL writes carries a signature `git verify-commit` accepts with the allowed-signers file; a
    /// copy of a step with one trailer changed keeps the signature bytes but verifies neither here nor in git.
    #[test]
    fn hal_commits_verify_with_git_and_a_changed_copy_does_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).expect("key");
        let public = key.public_key().clone();
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let home = home.with_hal_key(Some(Signer::new(key).expect("signer")));
        let thread = home.new_thread("alice", None, Some("t")).expect("thread");
        let step = NewStep::new(StepKind::Reply, "done", ThreadStatus::Done).fact("Hal-Help", "writer");
        let mut step = step;
        step.data = Some(r#"{"reply":{"text":"done"}}"#.to_owned());
        let appended = home.append_step("hal", &thread, &step).expect("step");
        assert_eq!(verify_commit(home.repo(), appended.commit).expect("verify"), CommitSignature::Good(public.clone()));

        let signers = dir.path().join("allowed_signers");
        std::fs::write(&signers, allowed_signers([("hal", &public)])).expect("write");
        let config = format!("gpg.ssh.allowedSignersFile={}", signers.display());
        for commit in [thread.tip, appended.commit] {
            let output = git(dir.path(), &["-c", &config, "verify-commit", &commit.to_string()]);
            assert!(output.status.success(), "{commit}: {}", String::from_utf8_lossy(&output.stderr));
        }

        // The same object with its status trailer changed, signature header kept.
        let raw = home.repo().find_object(appended.commit).expect("object").data.clone();
        let forged = String::from_utf8(raw).expect("utf-8").replace("Hal-Status: done", "Hal-Status: error");
        assert!(forged.contains("Hal-Status: error") && forged.contains("gpgsig "), "{forged}");
        let path = dir.path().join("forged");
        std::fs::write(&path, &forged).expect("write");
        let path = path.to_str().expect("utf-8 path");
        let written = git(dir.path(), &["hash-object", "-t", "commit", "-w", "--literally", path]);
        let id: ObjectId = String::from_utf8_lossy(&written.stdout).trim().parse().expect("an id");
        assert!(matches!(verify_commit(home.repo(), id).expect("verify"), CommitSignature::Bad(_)));
        let output = git(dir.path(), &["-c", &config, "verify-commit", &id.to_string()]);
        assert!(!output.status.success(), "git accepted a changed commit");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_and_one_made_twice_is_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys/k_ed25519");
        let first = load_or_create(&path, "k@here").expect("made");
        let again = load_or_create(&path, "k@here").expect("read");
        assert_eq!(first.public_key(), again.public_key());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = read_key(&path).expect_err("readable by others");
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
    }
}
