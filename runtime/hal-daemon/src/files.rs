//! The daemon's files under `.git/hal/`: where it listens (`daemon.json`) and the API token (`daemon.token`,
//! mode 0600, new at every start).

use std::path::{Path, PathBuf};

use crate::error::DaemonError;
use crate::protocol::DaemonInfo;

/// Where a running daemon listens.
const INFO_FILE: &str = "daemon.json";
/// The API token.
const TOKEN_FILE: &str = "daemon.token";

/// `.git/hal/` of the home repo whose git directory is `common_dir`.
pub fn hal_dir(common_dir: &Path) -> PathBuf {
    common_dir.join("hal")
}

impl DaemonInfo {
    /// Write `daemon.json` in `dir` (complete or not at all).
    pub(crate) fn write(&self, dir: &Path) -> Result<(), DaemonError> {
        let path = dir.join(INFO_FILE);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| DaemonError::InfoFile { path: path.clone(), reason: e.to_string() })?;
        hal_store::files::write_atomically(&path, text.as_bytes(), hal_store::files::Readers::Owner)
            .map_err(|e| DaemonError::io("writing", &path, e))
    }

    /// Read `daemon.json` from `dir`.
    pub fn read(dir: &Path) -> Result<DaemonInfo, DaemonError> {
        let path = dir.join(INFO_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| DaemonError::io("reading", &path, e))?;
        serde_json::from_str(&text).map_err(|e| DaemonError::InfoFile { path, reason: e.to_string() })
    }

    /// Remove `daemon.json` from `dir` (when the daemon stops).
    pub(crate) fn remove(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(INFO_FILE));
    }
}

/// Make a new random token and write it to `daemon.token` in `dir`, readable by the owner only.
pub(crate) fn new_token(dir: &Path) -> Result<String, DaemonError> {
    let mut bytes = [0u8; 32];
    // The operating system's random source (getrandom(2) on Linux), as the `getrandom` crate reaches it anywhere.
    getrandom::fill(&mut bytes).map_err(|e| {
        DaemonError::io("drawing random bytes for", &dir.join(TOKEN_FILE), std::io::Error::other(e.to_string()))
    })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(TOKEN_FILE);
    hal_store::files::write_atomically(&path, token.as_bytes(), hal_store::files::Readers::Owner)
        .map_err(|e| DaemonError::io("writing", &path, e))?;
    Ok(token)
}

/// The token in `dir`.
pub(crate) fn read_token(dir: &Path) -> Result<String, DaemonError> {
    let path = dir.join(TOKEN_FILE);
    let token = std::fs::read_to_string(&path).map_err(|e| DaemonError::io("reading", &path, e))?;
    Ok(token.trim().to_owned())
}
