//! Every isolate a home repo offers: the built-ins, and prebuilt components committed on `main` as
//! `isolates/<name>/isolate.yaml` with one `isolates/<name>/*.wasm` (a repo isolate replaces a built-in of the
//! same name).

use std::path::PathBuf;
use std::sync::Arc;

use hal_spec::{IsolateManifest, Settings};
use hal_store::Home;
use serde::Serialize;

use crate::Builds;
use crate::builtin::BUILTINS;
use crate::capabilities::Granted;
use crate::host::{Isolate, Sandbox};
use crate::limits::{DEFAULT_LIMITS, IsolateLimits};

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

/// A component as `builds` has it: from the cache (`cached`: built, failed, or neither) or by `build`.
pub(crate) fn by_policy(
    builds: Builds,
    cached: impl FnOnce() -> Option<Result<Vec<u8>, crate::Unusable>>,
    build: impl FnOnce() -> Result<Vec<u8>, crate::Unusable>,
) -> Result<Vec<u8>, Missing> {
    let kept = match builds {
        Builds::Retry => None,
        Builds::Run | Builds::CachedOnly => cached(),
    };
    match (kept, builds) {
        (Some(kept), _) => Ok(kept?),
        (None, Builds::CachedOnly) => Err(Missing::NotBuilt),
        (None, Builds::Run | Builds::Retry) => Ok(build()?),
    }
}

impl IsolateEntry {
    fn new(name: String, source: String, loaded: Result<Isolate, Missing>) -> IsolateEntry {
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

/// Where an isolate comes from, and its component and manifest (or why they cannot be read).
struct Found {
    name: String,
    source: String,
    files: Result<(Vec<u8>, String), Missing>,
    builtin: bool,
}

/// Load every isolate: built-ins, then those on `main` (replacing built-ins of the same name), building what
/// `builds` allows.
pub fn load_isolates(sandbox: &Sandbox, settings: &Settings, home: Option<&Home>, builds: Builds) -> Vec<IsolateEntry> {
    let mut sources: Vec<Found> = BUILTINS
        .iter()
        .map(|b| Found {
            name: b.name.to_owned(),
            source: "built-in".to_owned(),
            files: Ok((b.wasm.to_vec(), b.manifest.to_owned())),
            builtin: true,
        })
        .collect();
    if let Some(home) = home {
        match repo_isolates(home, sandbox.cache_dir(), builds) {
            Ok(found) => {
                for isolate in found {
                    sources.retain(|existing| existing.name != isolate.name);
                    sources.push(isolate);
                }
            }
            Err(error) => tracing::warn!(target: "hal_sandbox", %error, "cannot list the isolates on main"),
        }
    }
    let plugins = home.map(|home| crate::plugins::repo_plugins(home, sandbox.cache_dir(), builds)).unwrap_or_default();
    let mut entries: Vec<IsolateEntry> = sources
        .into_iter()
        .map(|found| {
            let Found { name, source, files, builtin } = found;
            let loaded =
                files.and_then(|(wasm, manifest)| Ok(load_one(sandbox, settings, &source, &wasm, &manifest, builtin)?));
            IsolateEntry::new(name, source, loaded)
        })
        .collect();
    for (name, source, built) in plugins {
        let loaded = if entries.iter().any(|e| e.name == name) {
            Err(Missing::Invalid(format!("an isolate is named `{name}` too: rename the plugin")))
        } else {
            built.and_then(|(component, manifest)| match component {
                crate::plugins::Component::Kept(path) => {
                    Ok(crate::plugins::load_plugin_later(sandbox, settings, &manifest, &name, path))
                }
                crate::plugins::Component::Bytes(wasm) => {
                    Ok(crate::plugins::load_plugin(sandbox, settings, &manifest, &name, &wasm)?)
                }
            })
        };
        entries.push(IsolateEntry::new(name, source, loaded));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

fn load_one(
    sandbox: &Sandbox,
    settings: &Settings,
    source: &str,
    wasm: &[u8],
    manifest: &str,
    builtin: bool,
) -> Result<Isolate, String> {
    let file = if builtin { "built-in isolate.yaml".to_owned() } else { format!("{source}/isolate.yaml") };
    let manifest = IsolateManifest::parse(&file, manifest).map_err(|e| e.to_string())?;
    // Grants follow the name, so an isolate may not borrow another's.
    if !builtin && source.rsplit('/').next() != Some(manifest.name.as_str()) {
        return Err(format!("{file}: name `{}` must be the directory's name, as grants follow it", manifest.name));
    }
    let policy = settings.sandbox.isolates.get(&manifest.name);
    let granted = Granted::new(&manifest.name, &manifest.capabilities, policy, builtin);
    let limits =
        IsolateLimits::resolve(policy.map(|p| p.limits).unwrap_or_default(), manifest.limits, settings.sandbox.limits);
    Ok(sandbox.load(wasm, manifest, granted, limits, builtin)?)
}

/// The commit of `main` whose isolates and plugins are in force: as for helps and agents, the newest an owner signed
/// or HAL merged for one (`hal_trust::Keyring::main_from`); code pushed by anyone else waits, and is never built.
pub(crate) fn main_in_force(home: &Home) -> Option<gix::ObjectId> {
    match hal_trust::Keyring::load(home) {
        Ok(keyring) => keyring.main_from,
        Err(error) => {
            tracing::warn!(target: "hal_sandbox", %error, "cannot tell which main is in force: no isolate from it");
            None
        }
    }
}

/// Each `isolates/<name>/` on main with an `isolate.yaml`: its prebuilt component, or the one built from its
/// Rust source (built only if `builds` says so).
fn repo_isolates(
    home: &Home,
    cache: Option<&std::path::Path>,
    builds: Builds,
) -> Result<Vec<Found>, hal_store::StoreError> {
    let Some(main) = main_in_force(home) else { return Ok(Vec::new()) };
    let prefix = format!("{ISOLATES_DIR}/");
    let all = home.list_files(main, ISOLATES_DIR)?;
    let mut names: Vec<String> = all
        .iter()
        .filter_map(|(path, _)| path.strip_prefix(&prefix)?.strip_suffix("/isolate.yaml").map(str::to_owned))
        .filter(|name| !name.contains('/'))
        .collect();
    names.dedup();
    let mut found = Vec::new();
    for name in names {
        let dir = format!("{ISOLATES_DIR}/{name}");
        let top = home.files_in(main, &dir)?;
        let manifest = top
            .iter()
            .find(|(file, _)| file == "isolate.yaml")
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();
        let prebuilt = top.iter().find(|(file, _)| file.ends_with(".wasm")).map(|(_, bytes)| bytes.clone());
        let has_source = top.iter().any(|(file, _)| file == "Cargo.toml");
        let files = match (prebuilt, has_source, cache) {
            (Some(wasm), _, _) => Ok((wasm, manifest)),
            (None, true, Some(cache)) => crate::plugins::files_under(home, main, &dir)
                .map_err(Missing::Invalid)
                .and_then(|sources| {
                    let cached = || crate::source::cached(&name, &sources, cache);
                    by_policy(builds, cached, || crate::source::build(&name, &sources, cache))
                })
                .map(|wasm| (wasm, manifest)),
            (None, true, None) => {
                Err(format!("main:{dir} is Rust source, and there is no cache directory to build it in").into())
            }
            (None, false, _) => Err(format!(
                "main:{dir} has neither a component (`.wasm`) nor Rust source (`Cargo.toml`) beside its isolate.yaml"
            )
            .into()),
        };
        found.push(Found { name, source: format!("main:{dir}"), files, builtin: false });
    }
    Ok(found)
}

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
