//! The catalogue of isolates a home repo offers (the built-ins, `isolates/<name>/` and the plugin versions on
//! `main`), each loaded or with why not, as [`crate::load`] loads them; the sandbox they run in; and the tools they
//! offer, registered in a toolbox ([`add_repo_tools`]).

use std::path::PathBuf;
use std::sync::Arc;

use hal_spec::Settings;
use hal_store::Home;
use serde::Serialize;

use crate::Builds;
use crate::host::{Isolate, Sandbox};
use crate::limits::DEFAULT_LIMITS;

/// Directory on `main` that holds a home repo's isolates.
pub const ISOLATES_DIR: &str = "isolates";

/// One isolate of the catalogue, loaded or not.
#[derive(Clone, Serialize)]
pub struct IsolateEntry {
    /// Its name.
    pub name: String,
    /// `built-in` or `main:isolates/<name>`.
    pub source: String,
    /// The loaded isolate.
    #[serde(skip)]
    pub isolate: Option<Arc<Isolate>>,
    /// Why it could not be loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// It is Rust or Python source the cache holds no build of, and this load did not build it
    /// ([`Builds::CachedOnly`]); `error` says how it gets built.
    pub not_built: bool,
}

/// What `error` says of an isolate or plugin that is not built yet.
pub const NOT_BUILT: &str =
    "not built yet: the daemon builds it when it loads main, and `hal isolate build` builds it now";

/// Why an isolate's component is not at hand.
#[derive(Debug, Clone)]
pub(crate) enum Missing {
    /// Its source is not built yet, and this load does not build.
    NotBuilt,
    /// It cannot be used, and why.
    Invalid(String),
}

impl From<String> for Missing {
    fn from(reason: String) -> Missing {
        Missing::Invalid(reason)
    }
}

impl From<crate::Unusable> for Missing {
    fn from(reason: crate::Unusable) -> Missing {
        Missing::Invalid(reason.0)
    }
}

impl IsolateEntry {
    pub(crate) fn new(name: String, source: String, loaded: Result<Isolate, Missing>) -> IsolateEntry {
        match loaded {
            Ok(isolate) => {
                IsolateEntry { name, source, isolate: Some(Arc::new(isolate)), error: None, not_built: false }
            }
            Err(Missing::NotBuilt) => {
                IsolateEntry { name, source, isolate: None, error: Some(NOT_BUILT.to_owned()), not_built: true }
            }
            Err(Missing::Invalid(error)) => {
                IsolateEntry { name, source, isolate: None, error: Some(error), not_built: false }
            }
        }
    }
}

/// The environment variable that names the directory compiled components are cached in.
pub const CACHE_ENV: &str = "HAL_CACHE_DIR";

/// The sandbox for a home repo, with the stack size from `hal.yaml`. Compiled components are cached in
/// `$HAL_CACHE_DIR/wasm`, else `$XDG_CACHE_HOME/hal/wasm` or `~/.cache/hal/wasm` (shared by every home repo of
/// the user: the key is the content's hash), else the repo's `.git/hal/cache/wasm`.
pub fn sandbox_for(home: Option<&Home>, settings: &Settings) -> Result<Sandbox, crate::StartError> {
    let cache = user_cache_dir().or_else(|| home.map(|home| home.repo().common_dir().join("hal/cache")));
    let stack_kb = settings.sandbox.limits.stack_kb.or(DEFAULT_LIMITS.stack_kb).unwrap_or(1024);
    Sandbox::new(cache.map(|dir| dir.join("wasm")), stack_kb)
}

/// `$HAL_CACHE_DIR`, `$XDG_CACHE_HOME/hal` or `~/.cache/hal`.
fn user_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_ENV) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("hal"))
}

pub use crate::load::load_isolates;

/// What [`add_repo_tools`] offered: the sandbox the tools call into, and every isolate of the catalogue, loaded or
/// not (with why), by name.
pub struct Offered {
    /// The sandbox the tools call into.
    pub sandbox: Arc<Sandbox>,
    /// Every isolate, loaded or not.
    pub entries: Vec<IsolateEntry>,
}

impl Offered {
    /// The isolates that did not load, with why, by name.
    pub fn left_out(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter(|e| e.isolate.is_none()).map(|e| (e.name.as_str(), e.error.as_deref().unwrap_or("")))
    }
}

/// Offer the functions of every isolate that loads (built-in ones and those on `main`) as tools in `toolbox`,
/// with `secrets` for those granted some. Returns the sandbox and every isolate, loaded or not: the catalogue a
/// client is shown and calls by hand.
pub fn add_repo_tools(
    toolbox: &mut hal_runner::tools::Toolbox,
    home: &Home,
    settings: &Settings,
    secrets: &hal_runner::model::SecretLookup,
    builds: Builds,
) -> Result<Offered, crate::Unusable> {
    let sandbox = Arc::new(sandbox_for(Some(home), settings).map_err(|e| e.to_string())?);
    let entries = load_isolates(&sandbox, settings, Some(home), builds);
    let isolates: Vec<Arc<Isolate>> = entries.iter().filter_map(|e| e.isolate.clone()).collect();
    crate::add_isolate_tools(toolbox, &sandbox, &isolates, secrets).map_err(|e| e.to_string())?;
    crate::plugins::add_plugin_tools(toolbox, &sandbox, settings).map_err(|e| e.to_string())?;
    Ok(Offered { sandbox, entries })
}
