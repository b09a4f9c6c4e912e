//! Loading the isolates a home repo offers, as a pipeline read top to bottom, one stage per module:
//!
//! 1. [`find`]: the sources in force: the built-ins, `isolates/<name>/` and `plugins/<name>/v<N>/` on the `main` an
//!    owner signed (a repo isolate replaces a built-in of the same name).
//! 2. [`build`]: a component for each, built if need be and if the load may (cargo for Rust, componentize-py for
//!    Python), else from the cache, else said not to be built yet.
//! 3. [`instantiate`]: each component compiled (or taken from the compile cache) and linked into the sandbox, and
//!    asked for its functions; a Python plugin's only at its first call, its manifest giving its functions.
//!
//! Registering the loaded isolates' functions as tools is the caller's last stage ([`crate::add_isolate_tools`]).

use hal_spec::Settings;
use hal_store::Home;

use crate::Builds;
use crate::catalog::{IsolateEntry, Missing};
use crate::host::Sandbox;

mod build;
mod find;
pub(crate) use find::check_sizes;
mod instantiate;

/// Load every isolate: built-ins, then those on `main`, then the plugin versions on `main` (each as
/// `<name>@v<N>`, and the newest that may serve also as `<name>`), building what `builds` allows.
pub fn load_isolates(sandbox: &Sandbox, settings: &Settings, home: Option<&Home>, builds: Builds) -> Vec<IsolateEntry> {
    let cache = sandbox.cache_dir();
    let mut entries: Vec<IsolateEntry> = find::isolates(home)
        .into_iter()
        .map(|found| {
            let loaded = found.what.and_then(|source| {
                let (manifest, builtin) = source.manifest();
                let component = build::isolate(&found.name, source, cache, builds)?;
                Ok(instantiate::isolate(sandbox, settings, &found.origin, &manifest, builtin, component)?)
            });
            IsolateEntry::new(found.name, found.origin, loaded)
        })
        .collect();
    let mut offered: Option<String> = None;
    for found in home.map(find::plugins).unwrap_or_default() {
        let name = found.version.name.clone();
        let built = found.what.and_then(|(manifest, files)| {
            let component = build::plugin(&manifest, &files, cache, builds)?;
            Ok((manifest, component))
        });
        // Newest first within each name: `<name>` is the newest version that builds, or may (one the cache does
        // not hold yet stands for `<name>` as the daemon, which builds it, would have it).
        let may_serve = matches!(built, Ok(_) | Err(Missing::NotBuilt));
        let versioned = format!("{name}@v{}", found.version.version);
        let mut names = vec![versioned];
        // Both names of one version run one component: a Python plugin's, loaded at its first call, is loaded
        // (compiled, linked) once for either name. (A Rust plugin's is loaded when offered, under each name: from
        // the compiled cache the second time.)
        let shared_load = crate::host::LoadedLater::default();
        if may_serve && offered.as_deref() != Some(name.as_str()) {
            offered = Some(name.clone());
            names.insert(0, name.clone());
        }
        for isolate in names {
            // An isolate of the name keeps it: the plugin is reached by its version only.
            let taken = entries.iter().any(|e| e.name == isolate);
            let loaded = match taken {
                true => Err(Missing::Invalid(format!("an isolate is named `{isolate}` too: rename the plugin"))),
                false => built.clone().and_then(|(manifest, component)| {
                    Ok(instantiate::plugin(sandbox, settings, &manifest, &isolate, component, shared_load.clone())?)
                }),
            };
            entries.push(IsolateEntry::new(isolate, found.origin.clone(), loaded));
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}
