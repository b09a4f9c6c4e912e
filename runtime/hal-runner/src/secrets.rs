//! The secret store: values of named secrets (API keys, tokens) kept outside git, in a file readable by its
//! owner only: `$HAL_SECRETS_FILE`, else `$XDG_CONFIG_HOME/hal/secrets.json`, else `~/.config/hal/secrets.json`
//! (mode 0600, in a 0700 directory). The repo only names the secrets it needs. A name not in the store falls
//! back to the environment variable of that name, for CI and for keys exported in a shell.
//!
//! Values are read when needed, so `hal secret set` takes effect for a running daemon at once.

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Looks up a secret's value by its name.
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Overrides where the store is.
pub const SECRETS_FILE_ENV: &str = "HAL_SECRETS_FILE";

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No place for the store: neither `HAL_SECRETS_FILE` (an absolute path), `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("no place for the secret store: set HOME, XDG_CONFIG_HOME or {SECRETS_FILE_ENV} (an absolute path)")]
    NoPlace,
    /// A secret's name is not letters, digits and `_`, starting with a letter or `_` (what the schemas allow).
    #[error("`{0}` is not a secret name: use letters, digits and `_`, starting with a letter (like OPENAI_API_KEY)")]
    BadName(String),
    /// The value is empty.
    #[error("the value is empty: nothing was stored")]
    Empty,
    /// The file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not a JSON object of strings.
    #[error("{path} is damaged ({reason}); fix or remove it")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file can be read by others.
    #[error("{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Where the store is.
pub fn store_path() -> Result<PathBuf, SecretError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(path) = var(SECRETS_FILE_ENV) {
        // A relative path would depend on where a command runs (the daemon and the CLI could disagree).
        return if path.is_absolute() { Ok(path) } else { Err(SecretError::NoPlace) };
    }
    let config = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|home| home.join(".config")));
    config.map(|dir| dir.join("hal/secrets.json")).ok_or(SecretError::NoPlace)
}

/// Check that `name` can name a secret.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && name.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(SecretError::BadName(name.to_owned()))
    }
}

/// Every secret in the store at `path`, by name.
fn read(path: &Path) -> Result<BTreeMap<String, String>, SecretError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(SecretError::Io { what: "reading", path: path.to_owned(), source }),
    };
    let mode = std::fs::metadata(path)
        .map_err(|source| SecretError::Io { what: "reading", path: path.to_owned(), source })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed { path: path.to_owned(), mode: mode & 0o777 });
    }
    // serde's message may quote a value: say only where the damage is.
    serde_json::from_str(&text).map_err(|e| SecretError::Damaged {
        path: path.to_owned(),
        reason: format!("not a JSON object of strings, at line {} column {}", e.line(), e.column()),
    })
}

/// Replace the store at `path` with `secrets`, by a 0600 temporary file renamed over it.
fn write(path: &Path, secrets: &BTreeMap<String, String>) -> Result<(), SecretError> {
    let io = |what, source| SecretError::Io { what, path: path.to_owned(), source };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let text = serde_json::to_string_pretty(secrets).map_err(|e| io("encoding", std::io::Error::other(e)))?;
    // Readable by this user only.
    hal_store::files::write_atomically(path, text.as_bytes(), hal_store::files::Readers::Owner)
        .map_err(|e| io("replacing", e))
}

/// Change the store at `path` with `change` under an exclusive lock, so concurrent changes are not lost.
fn update<T>(path: &Path, change: impl FnOnce(&mut BTreeMap<String, String>) -> T) -> Result<T, SecretError> {
    let io = |what, source| SecretError::Io { what, path: path.to_owned(), source };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| io("locking", e))?;
    lock.lock().map_err(|e| io("locking", e))?;
    let mut secrets = read(path)?;
    let result = change(&mut secrets);
    write(path, &secrets)?;
    Ok(result)
}

/// Store `value` as the secret `name`.
pub fn set(name: &str, value: &str) -> Result<(), SecretError> {
    check_name(name)?;
    if value.is_empty() {
        return Err(SecretError::Empty);
    }
    update(&store_path()?, |secrets| {
        secrets.insert(name.to_owned(), value.to_owned());
    })
}

/// Remove the secret `name`; whether it was there.
pub fn unset(name: &str) -> Result<bool, SecretError> {
    check_name(name)?;
    update(&store_path()?, |secrets| secrets.remove(name).is_some())
}

/// The names in the store.
pub fn names() -> Result<Vec<String>, SecretError> {
    Ok(read(&store_path()?)?.into_keys().collect())
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The secret store (`hal secret set`).
    Store,
    /// The environment variable of its name.
    Environment,
}

impl Source {
    /// `store` or `environment`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Store => "store",
            Source::Environment => "environment",
        }
    }
}

/// The value of `name`: from the store, else from the environment variable of that name; unset or empty is
/// none. A damaged or exposed store is logged and ignored.
pub fn get(name: &str) -> Option<String> {
    get_with_source(name).map(|(value, _)| value)
}

/// [`get`], saying where the value came from.
pub fn get_with_source(name: &str) -> Option<(String, Source)> {
    let stored = match store_path().and_then(|path| read(&path)) {
        Ok(mut secrets) => secrets.remove(name),
        Err(error) => {
            tracing::warn!(target: "hal_runner::secrets", %error, "secret store not used");
            None
        }
    };
    match stored.filter(|v| !v.is_empty()) {
        Some(value) => Some((value, Source::Store)),
        None => std::env::var(name).ok().filter(|v| !v.is_empty()).map(|value| (value, Source::Environment)),
    }
}

/// [`get`] as a [`SecretLookup`].
pub fn lookup() -> SecretLookup {
    Arc::new(get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_the_file_is_private() {
        assert!(check_name("OPENAI_API_KEY").is_ok());
        assert!(check_name("_X1").is_ok());
        assert!(check_name("api_key").is_ok(), "the schemas allow lower case");
        for bad in ["", "1ABC", "A-B", "A B", "../X"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hal/secrets.json");
        let mut secrets = BTreeMap::new();
        secrets.insert("TOKEN".to_owned(), "v1".to_owned());
        write(&path, &secrets).expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read(&path).expect("read").get("TOKEN").map(String::as_str), Some("v1"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(read(&path), Err(SecretError::Exposed { .. })));
    }
}
