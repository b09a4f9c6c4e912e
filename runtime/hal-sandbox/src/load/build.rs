//! The second stage of loading: a component for each source, as the load's [`Builds`] allows: built now (cargo for
//! Rust, componentize-py for Python), taken from the build cache (a build, or why it failed), or said not to be
//! built yet.

use std::path::{Path, PathBuf};

use hal_spec::PluginManifest;

use super::find::Source;
use crate::Builds;
use crate::catalog::Missing;
use crate::plugins::PluginFiles;

/// A component to instantiate: its bytes, or where a built Python plugin is kept (read at its first call).
#[derive(Clone)]
pub(crate) enum Component {
    Bytes(Vec<u8>),
    Kept(PathBuf),
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

/// The component of isolate `name` from `source`.
pub(crate) fn isolate(name: &str, source: Source, cache: Option<&Path>, builds: Builds) -> Result<Component, Missing> {
    match source {
        Source::BuiltIn { wasm, .. } => Ok(Component::Bytes(wasm.to_vec())),
        Source::Prebuilt { wasm, .. } => Ok(Component::Bytes(wasm)),
        Source::Rust { files, .. } => {
            let cache = cache.ok_or_else(|| {
                Missing::Invalid(format!(
                    "isolate `{name}` is Rust source, and there is no cache directory to build it in"
                ))
            })?;
            let cached = || crate::source::cached(name, &files, cache);
            by_policy(builds, cached, || crate::source::build(name, &files, cache)).map(Component::Bytes)
        }
    }
}

/// The component of the plugin version `manifest` with its `files`.
pub(crate) fn plugin(
    manifest: &PluginManifest,
    files: &PluginFiles,
    cache: Option<&Path>,
    builds: Builds,
) -> Result<Component, Missing> {
    let cache = cache.ok_or_else(|| Missing::Invalid("there is no cache directory to build plugins in".into()))?;
    match manifest.language.as_deref() {
        Some("rust") => by_policy(
            builds,
            || crate::plugins::cached(manifest, files, cache),
            || crate::plugins::build(manifest, files, cache),
        )
        .map(Component::Bytes),
        _ => crate::python::located(manifest, files, cache, builds).map(Component::Kept),
    }
}
