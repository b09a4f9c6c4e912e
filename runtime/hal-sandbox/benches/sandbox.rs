//! What the sandbox costs: compiling a component, loading it from the cache, and one call in a fresh store.
//!
//! `cargo bench -p hal-sandbox --bench sandbox`. Prints a Markdown table for BENCHMARKS.md.

#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hal_runner::SharedHome;
use hal_runner::tools::ToolContext;
use hal_sandbox::builtin::BUILTINS;
use hal_sandbox::{CallContext, Granted, Isolate, IsolateLimits, Sandbox};
use hal_spec::{IsolateManifest, SandboxLimits};
use hal_store::Home;

fn load(sandbox: &Sandbox, name: &str, wasm: &[u8], manifest: &str) -> Isolate {
    let manifest = IsolateManifest::parse(name, manifest).expect("manifest");
    let granted = Granted::new(name, &manifest.capabilities, None, true);
    let limits = IsolateLimits::resolve(SandboxLimits::default(), manifest.limits, SandboxLimits::default());
    sandbox.load(wasm, manifest, granted, limits, true).expect("loads")
}

fn per_call(iterations: u32, mut work: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        work();
    }
    started.elapsed() / iterations
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hostile = std::fs::read(Path::new(env!("HAL_SANDBOX_GUESTS")).join("hostile.wasm")).expect("hostile guest");
    let hostile_manifest = include_str!("../../../fixtures/isolates/hostile/isolate.yaml");
    let files = &BUILTINS[0];

    let (home, _) = Home::init(&dir.path().join("home"), Some("bench")).expect("init");
    let thread = home.new_thread("bench", None, None).expect("thread");
    let journal = SharedHome::new(home);
    for n in 0..100 {
        let step = hal_store::NewStep {
            writes: vec![(format!("notes/{n}.md"), format!("note {n}\n").into_bytes())],
            ..hal_store::NewStep::new(hal_store::StepKind::Write, "note", hal_store::ThreadStatus::Open)
        };
        journal.with(|home| home.append_step("bench", &thread, &step)).expect("write");
    }
    let tip = journal.with(|home| home.resolve_thread(&thread.id)).expect("thread").tip;

    println!(
        "| measurement | files ({} KB) | hostile test guest ({} KB) |",
        files.wasm.len() / 1024,
        hostile.len() / 1024
    );
    println!("|---|---:|---:|");
    let cache = dir.path().join("cache");
    let cold = Sandbox::new(Some(cache.clone()), 1024).expect("sandbox");
    let started = Instant::now();
    let files_isolate = load(&cold, "files", files.wasm, files.manifest);
    let compile_files = started.elapsed();
    let started = Instant::now();
    load(&cold, "hostile", &hostile, hostile_manifest);
    let compile_hostile = started.elapsed();
    assert!(!files_isolate.from_cache);
    println!(
        "| compile (cranelift) and store in the cache | {:.0} ms | {:.0} ms |",
        compile_files.as_secs_f64() * 1e3,
        compile_hostile.as_secs_f64() * 1e3
    );
    drop(cold);

    let warm = Sandbox::new(Some(cache), 1024).expect("sandbox");
    let load_files = per_call(20, || assert!(load(&warm, "files", files.wasm, files.manifest).from_cache));
    let load_hostile = per_call(20, || assert!(load(&warm, "hostile", &hostile, hostile_manifest).from_cache));
    println!(
        "| load from the cache (deserialize_file) + describe | {} | {} |",
        micros(load_files),
        micros(load_hostile)
    );

    let files_isolate = Arc::new(load(&warm, "files", files.wasm, files.manifest));
    let hostile_isolate = load(&warm, "hostile", &hostile, hostile_manifest);
    let context = || CallContext {
        tree: Some(Box::new(ToolContext::new(journal.clone(), &thread.id, tip))),
        http: false,
        secret: Arc::new(|_| None),
        progress: None,
    };
    let echo = per_call(2000, || {
        warm.call(&hostile_isolate, "echo", "{}", context()).expect("echo");
    });
    let read = per_call(2000, || {
        warm.call(&files_isolate, "read", r#"{"path": "notes/7.md"}"#, context()).expect("read");
    });
    let list = per_call(500, || {
        warm.call(&files_isolate, "list", "{}", context()).expect("list");
    });
    println!("| one call in a fresh store (`files.read`; `echo`) | {} | {} |", micros(read), micros(echo));
    println!("| `files.list` of 100 files | {} | |", micros(list));
}
