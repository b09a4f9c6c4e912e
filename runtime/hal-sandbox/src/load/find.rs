//! The first stage of loading: which isolates and plugin versions there are, and their sources, read from the
//! binary (built-ins) and from the `main` in force, nothing built or compiled.

use hal_spec::PluginManifest;
use hal_store::Home;

use crate::builtin::BUILTINS;
use crate::catalog::{ISOLATES_DIR, Missing};
use crate::plugins::{PLUGINS_DIR, PluginFiles, PluginVersion, Schemas, read_plugin, versions_in};

/// An isolate's source.
#[derive(Clone)]
pub(crate) enum Source {
    /// Built into HAL: its component and manifest.
    BuiltIn { wasm: &'static [u8], manifest: &'static str },
    /// A component committed on main beside its manifest.
    Prebuilt { wasm: Vec<u8>, manifest: String },
    /// Rust source on main (a crate), to build.
    Rust { files: PluginFiles, manifest: String },
}

impl Source {
    /// Its manifest's text, and whether it is built into HAL.
    pub(crate) fn manifest(&self) -> (String, bool) {
        match self {
            Source::BuiltIn { manifest, .. } => ((*manifest).to_owned(), true),
            Source::Prebuilt { manifest, .. } | Source::Rust { manifest, .. } => (manifest.clone(), false),
        }
    }
}

/// An isolate found: its name, where it comes from (`built-in`, `main:isolates/<name>`), and its source.
pub(crate) struct FoundIsolate {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) what: Result<Source, Missing>,
}

/// A plugin version found on main: its manifest and files, or why not.
pub(crate) struct FoundPlugin {
    pub(crate) version: PluginVersion,
    pub(crate) origin: String,
    pub(crate) what: Result<(PluginManifest, PluginFiles), Missing>,
}

/// Names a plugin may not take: HAL's own command groups.
const RESERVED: &[&str] = &["threads", "git", "plugins", "finish", "helps"];

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

/// The built-ins, then each `isolates/<name>/` on main with an `isolate.yaml` (replacing a built-in of its name).
pub(crate) fn isolates(home: Option<&Home>) -> Vec<FoundIsolate> {
    let mut found: Vec<FoundIsolate> = BUILTINS
        .iter()
        .map(|b| FoundIsolate {
            name: b.name.to_owned(),
            origin: "built-in".to_owned(),
            what: Ok(Source::BuiltIn { wasm: b.wasm, manifest: b.manifest }),
        })
        .collect();
    if let Some(home) = home {
        match repo_isolates(home) {
            Ok(repo) => {
                for isolate in repo {
                    found.retain(|existing| existing.name != isolate.name);
                    found.push(isolate);
                }
            }
            Err(error) => tracing::warn!(target: "hal_sandbox", %error, "cannot list the isolates on main"),
        }
    }
    found
}

/// Each `isolates/<name>/` on main with an `isolate.yaml`: its component, or its Rust source.
fn repo_isolates(home: &Home) -> Result<Vec<FoundIsolate>, hal_store::StoreError> {
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
        let what = match (prebuilt, has_source) {
            (Some(wasm), _) => Ok(Source::Prebuilt { wasm, manifest }),
            (None, true) => {
                files_under(home, main, &dir).map(|files| Source::Rust { files, manifest }).map_err(Missing::Invalid)
            }
            (None, false) => Err(Missing::Invalid(format!(
                "main:{dir} has neither a component (`.wasm`) nor Rust source (`Cargo.toml`) beside its isolate.yaml"
            ))),
        };
        found.push(FoundIsolate { name, origin: format!("main:{dir}"), what });
    }
    Ok(found)
}

/// The most the files of a plugin version or an isolate may hold in all (sources, manifest, tests), in bytes.
pub(crate) const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// The plugin versions on main, newest first within each name, each with its manifest and files (read in one
/// walk of `plugins/`, by blob id).
pub(crate) fn plugins(home: &Home) -> Vec<FoundPlugin> {
    let Some(main) = main_in_force(home) else { return Vec::new() };
    let Ok(files) = home.file_ids_under(main, PLUGINS_DIR) else { return Vec::new() };
    let versions = versions_in(files.iter().map(|(path, _)| path.as_str()));
    versions
        .into_iter()
        .rev()
        .map(|version| {
            let what = if RESERVED.contains(&version.name.as_str()) {
                let reason = format!("`{}` is the name of HAL's own commands: rename the plugin", version.name);
                Err(Missing::Invalid(reason))
            } else {
                version_files(home, &files, &version.dir())
                    .map_err(Missing::Invalid)
                    .and_then(|files| Ok(read_plugin(&version, files, Schemas::Checked)?))
            };
            FoundPlugin { origin: format!("main:{}", version.dir()), version, what }
        })
        .collect()
}

/// Every file under `dir` of `commit`, recursively, with paths relative to `dir`; a path that is not plain
/// (`..`, empty or absolute parts: a crafted tree) is refused, as it would be written outside the build.
pub(crate) fn files_under(home: &Home, commit: gix::ObjectId, dir: &str) -> Result<PluginFiles, String> {
    let files = home.file_ids_under(commit, dir).map_err(|e| e.to_string())?;
    version_files(home, &files, dir)
}

/// The files in `dir` among `files` (full paths with their blob ids), paths relative to `dir`, checked as in
/// [`files_under`].
fn version_files(home: &Home, files: &[(String, gix::ObjectId)], dir: &str) -> Result<PluginFiles, String> {
    let prefix = format!("{dir}/");
    let mut mine = Vec::new();
    for (path, id) in files {
        let Some(relative) = path.strip_prefix(&prefix) else { continue };
        crate::names::check_relative(relative)?;
        let size = home.repo().find_header(*id).map_err(|e| format!("reading {path}: {e}"))?.size();
        mine.push((relative, *id, size));
    }
    // Sizes from the headers first: the sources are read whole, and a file of any size can be committed.
    check_sizes(dir, mine.iter().map(|(relative, _, size)| (*relative, *size)))?;
    let mut found = Vec::new();
    for (relative, id, _) in mine {
        let blob = home.repo().find_blob(id).map_err(|e| format!("reading {dir}/{relative}: {e}"))?;
        found.push((relative.to_owned(), blob.detach().data));
    }
    Ok(found)
}

/// Whether the files of the plugin or isolate in `dir` (paths relative to it, with sizes) are within what HAL
/// reads of one: [`hal_store::MAX_FILE_BYTES`] each, [`MAX_SOURCE_BYTES`] in all. The same bounds hold a plugin
/// written on a thread (`plugins.test`) and one loaded from main, so what passes there loads here.
pub(crate) fn check_sizes<'a>(dir: &str, files: impl Iterator<Item = (&'a str, u64)>) -> Result<(), String> {
    let mut total = 0u64;
    for (relative, size) in files {
        total = total.saturating_add(size);
        if size > hal_store::MAX_FILE_BYTES || total > MAX_SOURCE_BYTES {
            return Err(format!(
                "{dir}/{relative} is {size} bytes ({total} so far in {dir}); the files of a plugin or isolate may \
                 hold {} bytes each and {MAX_SOURCE_BYTES} in all",
                hal_store::MAX_FILE_BYTES
            ));
        }
    }
    Ok(())
}
