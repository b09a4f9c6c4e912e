//! What a Python plugin costs: from source to the first call cold (provision componentize-py, build with it,
//! compile the component, call) and warm (everything from the caches), and one call of a loaded plugin.
//!
//! `cargo bench -p hal-sandbox --bench plugin` (needs Python 3 and PyPI for the cold run). Prints a Markdown
//! table for BENCHMARKS.md.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use hal_sandbox::plugins::load_plugin;
use hal_sandbox::{CallContext, Sandbox};
use hal_spec::{PluginManifest, Settings};

const MANIFEST: &str = "name: convert\nversion: 1\ndescription: Converts lengths.\nfunctions:\n  - name: convert\n    \
                        description: Convert a length.\n";
const SOURCE: &str = "FACTORS = {'m': 1.0, 'km': 1000.0, 'mi': 1609.344}\n\n\ndef convert(value, unit_from, unit_to):\n    \
                      return {'value': value * FACTORS[unit_from] / FACTORS[unit_to], 'unit': unit_to}\n";
const ARGUMENTS: &str = r#"{"value": 2, "unit_from": "km", "unit_to": "mi"}"#;

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1e3)
}

/// Provision (when the cache is cold), build, load and call once: the time of each.
fn source_to_first_call(cache: &std::path::Path) -> [Duration; 4] {
    let manifest = PluginManifest::parse("plugin.yaml", MANIFEST).expect("manifest");
    let files = vec![
        ("plugin.yaml".to_owned(), MANIFEST.as_bytes().to_vec()),
        ("plugin.py".to_owned(), SOURCE.as_bytes().to_vec()),
    ];
    let started = Instant::now();
    hal_sandbox::python::componentize_py(cache).expect("componentize-py");
    let provisioned = started.elapsed();
    let started = Instant::now();
    let wasm = hal_sandbox::python::build(&manifest, &files, cache).expect("build");
    let built = started.elapsed();
    let started = Instant::now();
    let sandbox = Sandbox::new(Some(cache.join("wasm")), 1024).expect("sandbox");
    let isolate = load_plugin(&sandbox, &Settings::default(), &manifest, "convert", &wasm).expect("load");
    let loaded = started.elapsed();
    let started = Instant::now();
    let context = CallContext { tree: None, http: false, secret: std::sync::Arc::new(|_| None), progress: None };
    let result = sandbox.call(&isolate, "convert", ARGUMENTS, context).expect("call");
    assert!(result.result.contains("1.24"), "{}", result.result);
    [provisioned, built, loaded, started.elapsed()]
}

fn main() {
    let cache = tempfile::tempdir().expect("temp dir");
    let cold = source_to_first_call(cache.path());
    let warm = source_to_first_call(cache.path());
    let manifest = PluginManifest::parse("plugin.yaml", MANIFEST).expect("manifest");
    let files = vec![("plugin.py".to_owned(), SOURCE.as_bytes().to_vec())];
    let wasm = hal_sandbox::python::build(&manifest, &files, cache.path()).expect("build");
    let sandbox = Sandbox::new(Some(cache.path().join("wasm")), 1024).expect("sandbox");
    let isolate = load_plugin(&sandbox, &Settings::default(), &manifest, "convert", &wasm).expect("load");
    let mut calls = Vec::new();
    for _ in 0..200 {
        let context = CallContext { tree: None, http: false, secret: std::sync::Arc::new(|_| None), progress: None };
        let started = Instant::now();
        sandbox.call(&isolate, "convert", ARGUMENTS, context).expect("call");
        calls.push(started.elapsed());
    }
    calls.sort();
    let total = |phases: [Duration; 4]| phases.iter().sum::<Duration>();
    println!("component: {:.1} MB", wasm.len() as f64 / 1e6);
    println!("| phase | cold | warm |\n|---|---:|---:|");
    for (n, phase) in
        ["provision componentize-py", "build (componentize-py)", "compile or load from cache", "first call"]
            .iter()
            .enumerate()
    {
        println!("| {phase} | {} | {} |", ms(cold[n]), ms(warm[n]));
    }
    println!("| **source to first call** | **{}** | **{}** |", ms(total(cold)), ms(total(warm)));
    println!(
        "one call of a loaded plugin (fresh store each): p50 {:.2} ms, p95 {:.2} ms",
        calls[calls.len() / 2].as_secs_f64() * 1e3,
        calls[calls.len() * 95 / 100].as_secs_f64() * 1e3
    );
}
