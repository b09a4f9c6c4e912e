//! Compiled components on disk, so a restart never recompiles.
//!
//! The key is the blake3 hash of the component's bytes plus the engine's compatibility hash (wasmtime version
//! and every setting that changes the code), so a stale artifact is never loaded. Files are written to a
//! temporary name and renamed, so a reader never sees half of one.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Components larger than this take long enough to compile that the person is shown it happening.
const SHOWN_COMPILE_BYTES: usize = 4 << 20;

/// Where a component's compiled form lives in `dir`.
fn artifact_path(engine: &Engine, bytes: &[u8], dir: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let content = blake3::hash(bytes);
    dir.join(format!("{}-{:016x}.cwasm", content.to_hex(), hasher.finish()))
}

/// The component for `bytes`: loaded from `dir` when compiled before, else compiled and stored there. Returns
/// whether it came from the cache.
pub(crate) fn load(engine: &Engine, bytes: &[u8], dir: Option<&Path>) -> wasmtime::Result<(Component, bool)> {
    let Some(dir) = dir else { return Ok((Component::new(engine, bytes)?, false)) };
    let path = artifact_path(engine, bytes, dir);
    if path.exists() {
        match deserialize(engine, &path) {
            Ok(component) => return Ok((component, true)),
            Err(error) => {
                tracing::warn!(target: "hal_sandbox", path = %path.display(), %error, "recompiling a cached component that did not load")
            }
        }
    }
    // Compiled once per component and machine: seconds for a Python plugin's (tens of megabytes), shown; a blink
    // for a small isolate's, not.
    let what = format!("compiling a {} MB component (once: cached afterwards)", bytes.len() >> 20);
    let shown = (bytes.len() > SHOWN_COMPILE_BYTES).then(|| crate::progress::start(what));
    let component = Component::new(engine, bytes)?;
    if let Some(shown) = shown {
        shown.done();
    }
    if let Err(error) = store(&component, dir, &path) {
        tracing::warn!(target: "hal_sandbox", dir = %dir.display(), %error, "cannot cache a compiled component");
    }
    Ok((component, false))
}

fn store(component: &Component, dir: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let serialized = component.serialize().map_err(std::io::Error::other)?;
    // Native code, loaded without checks: this user's alone (0600).
    hal_store::files::write_atomically(path, &serialized, hal_store::files::Readers::Owner)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is one HAL wrote itself (0600, through a rename) with `Component::serialize` into its own
    // cache directory (inside the repository's `.git/` or the user's cache directory), named by the hash of the
    // source bytes and of the engine's compatibility settings, so it was produced by this wasmtime version with
    // this configuration. wasmtime checks the header and version before using it. Anyone able to replace it can
    // already replace the `hal` binary's inputs.
    unsafe { Component::deserialize_file(engine, path) }
}
