//! Every isolate a home repo offers: the built-ins, and prebuilt components committed on `main` as
//! `isolates/<name>/isolate.yaml` with one `isolates/<name>/*.wasm` (a repo isolate replaces a built-in of the
//! same name).

use std::path::PathBuf;
use std::sync::Arc;

use hal_spec::{IsolateManifest, Settings};
use hal_store::Home;
use serde::Serialize;

use crate::builtin::BUILTINS;
use crate::capabilities::Granted;
use crate::host::{Isolate, Sandbox};
use crate::limits::{DEFAULT_LIMITS, Limits};

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
}

/// The environment variable that names the directory compiled components are cached in.
pub const CACHE_ENV: &str = "HAL_CACHE_DIR";

/// The sandbox for a home repo, with the stack size from `hal.yaml`. Compiled components are cached in
/// `$HAL_CACHE_DIR/wasm`, else `$XDG_CACHE_HOME/hal/wasm` or `~/.cache/hal/wasm` (shared by every home repo of
/// the user: the key is the content's hash), else the repo's `.git/hal/cache/wasm`.
pub fn sandbox_for(home: Option<&Home>, settings: &Settings) -> Result<Sandbox, String> {
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
    files: Result<(Vec<u8>, String), String>,
    builtin: bool,
}

/// Load every isolate: built-ins, then those on `main` (replacing built-ins of the same name).
pub fn load_isolates(sandbox: &Sandbox, settings: &Settings, home: Option<&Home>) -> Vec<IsolateEntry> {
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
        match repo_isolates(home) {
            Ok(found) => {
                for isolate in found {
                    sources.retain(|existing| existing.name != isolate.name);
                    sources.push(isolate);
                }
            }
            Err(error) => tracing::warn!(target: "hal_sandbox", %error, "cannot list the isolates on main"),
        }
    }
    let mut entries: Vec<IsolateEntry> = sources
        .into_iter()
        .map(|found| {
            let Found { name, source, files, builtin } = found;
            let loaded =
                files.and_then(|(wasm, manifest)| load_one(sandbox, settings, &source, &wasm, &manifest, builtin));
            match loaded {
                Ok(isolate) => IsolateEntry { name, source, isolate: Some(Arc::new(isolate)), error: None },
                Err(error) => IsolateEntry { name, source, isolate: None, error: Some(error) },
            }
        })
        .collect();
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
    let policy = settings.sandbox.isolates.get(&manifest.name);
    let granted = Granted::new(&manifest.name, &manifest.capabilities, policy, builtin);
    let limits =
        Limits::resolve(policy.map(|p| p.limits).unwrap_or_default(), manifest.limits, settings.sandbox.limits);
    sandbox.load(wasm, manifest, granted, limits, builtin)
}

/// Each `isolates/<name>/` on main with an `isolate.yaml`, with its component if it has one.
fn repo_isolates(home: &Home) -> Result<Vec<Found>, hal_store::StoreError> {
    let Some(main) = home.main_tip()? else { return Ok(Vec::new()) };
    let prefix = format!("{ISOLATES_DIR}/");
    let mut names: Vec<String> = home
        .list_files(main)?
        .into_iter()
        .filter_map(|(path, _)| path.strip_prefix(&prefix)?.strip_suffix("/isolate.yaml").map(str::to_owned))
        .filter(|name| !name.contains('/'))
        .collect();
    names.dedup();
    let mut found = Vec::new();
    for name in names {
        let dir = format!("{ISOLATES_DIR}/{name}");
        let files = home.files_in(main, &dir)?;
        let manifest = files
            .iter()
            .find(|(file, _)| file == "isolate.yaml")
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned());
        let wasm = files.iter().find(|(file, _)| file.ends_with(".wasm")).map(|(_, bytes)| bytes.clone());
        let files = match (wasm, manifest) {
            (Some(wasm), Some(manifest)) => Ok((wasm, manifest)),
            _ => Err(format!(
                "main:{dir} has no prebuilt component: commit the `.wasm` built for wasm32-wasip2 beside isolate.yaml"
            )),
        };
        found.push(Found { name, source: format!("main:{dir}"), files, builtin: false });
    }
    Ok(found)
}
