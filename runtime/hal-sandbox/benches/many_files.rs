//! One isolate call that writes 10,000 files, from the guest's first write to the step's commit, while another
//! thread keeps asking the store's lock for what the daemon's API reads (the branch of `main`).
//!
//! `cargo bench -p hal-sandbox --bench many_files`. Prints a Markdown table for BENCHMARKS.md.

#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hal_runner::SharedHome;
use hal_runner::tools::ToolContext;
use hal_sandbox::{CallContext, Granted, IsolateLimits, Sandbox};
use hal_spec::{IsolateManifest, IsolatePolicy, SandboxLimits, TreeAccess};
use hal_store::{Home, NewStep, StepKind, ThreadStatus};

const FILES: u32 = 10_000;

fn disk_usage(dir: &Path) -> (usize, u64) {
    let mut count = 0;
    let mut bytes = 0;
    for fan in std::fs::read_dir(dir).expect("objects").flatten().filter(|e| e.file_name().len() == 2) {
        for object in std::fs::read_dir(fan.path()).expect("fan-out").flatten() {
            count += 1;
            bytes += object.metadata().map(|m| m.len()).unwrap_or_default();
        }
    }
    (count, bytes)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (home, _) = Home::init(&dir.path().join("home"), Some("bench")).expect("init");
    let thread = home.new_thread("bench", None, None).expect("thread");
    let journal = SharedHome::new(home);
    let hostile = std::fs::read(Path::new(env!("HAL_SANDBOX_GUESTS")).join("hostile.wasm")).expect("hostile guest");
    let manifest = IsolateManifest::parse("hostile", include_str!("../../../fixtures/isolates/hostile/isolate.yaml"))
        .expect("manifest");
    let policy = IsolatePolicy { tree: Some(TreeAccess::Write), ..IsolatePolicy::default() };
    let granted = Granted::new("hostile", &manifest.capabilities, Some(&policy), false);
    let limits = IsolateLimits::resolve(SandboxLimits::default(), manifest.limits, SandboxLimits::default());
    let sandbox = Sandbox::new(Some(dir.path().join("cache")), 1024).expect("sandbox");
    let isolate = sandbox.load(&hostile, manifest, granted, limits, false).expect("loads");

    // What the API does meanwhile: take the store's lock for a read, over and over; the longest wait is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (journal, stop) = (journal.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut longest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                journal.with(|home| home.main_tip()).expect("main");
                longest = longest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(1));
            }
            longest
        })
    };

    let objects = dir.path().join("home/.git/objects");
    let before = disk_usage(&objects);
    let started = Instant::now();
    let context = CallContext {
        tree: Some(Box::new(ToolContext::new(journal.clone(), &thread.id, thread.tip))),
        http: false,
        secret: Arc::new(|_| None),
        progress: None,
    };
    let output = sandbox.call(&isolate, "write-many", &format!(r#"{{"count": {FILES}}}"#), context).expect("call");
    let called = started.elapsed();
    let writes = output.tree.expect("tree").into_writes();
    assert_eq!(writes.len(), FILES as usize);
    let mut step = NewStep::new(StepKind::Tool, output.result, ThreadStatus::Running);
    step.writes = writes;
    // As the runner commits a step with writes: on a handle of its own, not under the store's lock.
    let committing = Instant::now();
    journal.handle().append_step("hal", &thread, &step).expect("commit");
    let committed = committing.elapsed();
    stop.store(true, Ordering::Relaxed);
    let longest_wait = prober.join().expect("prober");
    let after = disk_usage(&objects);

    println!("| {FILES} files written by one isolate call | figure |");
    println!("|---|---:|");
    println!("| the call in the sandbox (guest writes, staged on the host) | {:.0} ms |", called.as_secs_f64() * 1e3);
    println!("| the step's commit (blobs, one tree build, commit, ref) | {:.0} ms |", committed.as_secs_f64() * 1e3);
    println!("| loose objects added | {} |", after.0 - before.0);
    println!("| bytes of loose objects added | {:.1} MB |", (after.1 - before.1) as f64 / 1e6);
    println!("| longest wait for the store's lock meanwhile | {:.2} ms |", longest_wait.as_secs_f64() * 1e3);
}
