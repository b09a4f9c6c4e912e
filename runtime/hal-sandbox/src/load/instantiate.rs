//! The third stage of loading: each component compiled (or taken from the compile cache) and linked into the
//! sandbox with the grants and limits of its name, and asked for its functions; a built Python plugin only at its
//! first call, its manifest giving its functions (HAL's glue answers `describe` from that same manifest).

use hal_spec::{IsolateManifest, PluginManifest, Settings};

use super::build::Component;
use crate::capabilities::Granted;
use crate::host::{Isolate, LoadedLater, Sandbox};
use crate::limits::IsolateLimits;

/// The isolate found at `origin` with the manifest text `manifest` (built into HAL, or not) and its `component`.
pub(crate) fn isolate(
    sandbox: &Sandbox,
    settings: &Settings,
    origin: &str,
    manifest: &str,
    builtin: bool,
    component: Component,
) -> Result<Isolate, String> {
    let Component::Bytes(wasm) = component else {
        return Err(format!("{origin}: an isolate's component is loaded when it is offered"));
    };
    let file = if builtin { "built-in isolate.yaml".to_owned() } else { format!("{origin}/isolate.yaml") };
    let manifest = IsolateManifest::parse(&file, manifest).map_err(|e| e.to_string())?;
    // Grants follow the name, so an isolate may not borrow another's.
    if !builtin && origin.rsplit('/').next() != Some(manifest.name.as_str()) {
        return Err(format!("{file}: name `{}` must be the directory's name, as grants follow it", manifest.name));
    }
    let policy = settings.sandbox.isolates.get(&manifest.name);
    let granted = Granted::new(&manifest.name, &manifest.capabilities, policy, builtin);
    let limits =
        IsolateLimits::resolve(policy.map(|p| p.limits).unwrap_or_default(), manifest.limits, settings.sandbox.limits);
    Ok(sandbox.load(&wasm, manifest, granted, limits, builtin)?)
}

/// The plugin `manifest` as the isolate `isolate` (its name, or `<name>@v<N>`), with what `settings` grants the
/// plugin's name; a component loaded at its first call is kept in `loaded`, which the version's two names share.
pub(crate) fn plugin(
    sandbox: &Sandbox,
    settings: &Settings,
    manifest: &PluginManifest,
    isolate: &str,
    component: Component,
    loaded: LoadedLater,
) -> Result<Isolate, crate::Unusable> {
    let mut isolate = match component {
        Component::Bytes(wasm) => crate::plugins::load_plugin(sandbox, settings, manifest, isolate, &wasm)?,
        Component::Kept(path) => {
            let policy = settings.sandbox.isolates.get(&manifest.name);
            let granted = Granted::new(&manifest.name, &manifest.capabilities, policy, false);
            let limits = IsolateLimits::resolve(
                policy.map(|p| p.limits).unwrap_or_default(),
                manifest.limits,
                settings.sandbox.limits,
            );
            let functions =
                manifest.functions.iter().map(|f| (f.name.clone(), f.description.clone(), f.parameters.clone()));
            sandbox.load_later(path, loaded, manifest.as_isolate(isolate), granted, limits, functions.collect())
        }
    };
    isolate.plugin = true;
    Ok(isolate)
}
