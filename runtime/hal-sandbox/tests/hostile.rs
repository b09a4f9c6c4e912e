//! The hostile guest: every escape ends as a clear error, the host serves the next call, and nothing outside the
//! thread's tree changes.

use std::path::Path;
use std::sync::Arc;

use hal_runner::SharedHome;
use hal_runner::tools::ToolContext;
use hal_sandbox::{CallError, Granted, Isolate, IsolateLimits, Sandbox};
use hal_spec::{IsolateManifest, IsolatePolicy, SandboxLimits, TreeAccess};
use hal_store::Home;

#[path = "../../hal-runner/tests/support/checked.rs"]
mod checked;
use checked::Checked;

const MANIFEST: &str = include_str!("../../../fixtures/isolates/hostile/isolate.yaml");

fn hostile_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("HAL_SANDBOX_GUESTS")).join("hostile.wasm")).expect("the hostile guest was built")
}

fn load(sandbox: &Sandbox, limits: SandboxLimits, policy: Option<&IsolatePolicy>) -> Isolate {
    let manifest = IsolateManifest::parse("hostile/isolate.yaml", MANIFEST).expect("manifest");
    let granted = Granted::new("hostile", &manifest.capabilities, policy, false);
    let limits = IsolateLimits::resolve(limits, manifest.limits, SandboxLimits::default());
    sandbox.load(&hostile_bytes(), manifest, granted, limits, false).expect("loads")
}

struct Thread {
    journal: SharedHome,
    id: String,
    tip: gix::ObjectId,
}

fn thread(dir: &Path) -> Thread {
    let (home, _) = Home::init(dir, Some("alice")).expect("init");
    let thread = home.new_thread("alice", None, None).expect("thread");
    Thread { journal: SharedHome::new(home), id: thread.id, tip: thread.tip }
}

fn call(sandbox: &Sandbox, isolate: &Isolate, thread: &Thread, function: &str) -> Result<String, CallError> {
    let context = hal_sandbox::CallContext {
        tree: Some(Box::new(ToolContext::new(thread.journal.clone(), &thread.id, thread.tip))),
        http: false,
        secret: Arc::new(|name| (name == "UNDECLARED_SECRET").then(|| "top secret value".to_owned())),
        progress: None,
    };
    sandbox.call(isolate, function, "{}", context).map(|output| output.result)
}

#[test]
fn every_escape_is_contained_and_the_host_serves_the_next_call() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let thread = thread(&dir.path().join("home"));
    let sandbox = Sandbox::new(Some(dir.path().join("cache")), 512).expect("sandbox");
    // A wall limit a loaded 2-core machine still leaves room under for growing 64 MiB (300 ms once was not: the
    // memory case ended by the clock instead), met by the spin case before its fuel runs out.
    let tight = SandboxLimits {
        wall_ms: Some(1000),
        memory_mb: Some(64),
        fuel: Some(1_000_000_000_000),
        ..SandboxLimits::default()
    };
    let isolate = load(&sandbox, tight, None);
    let names: Vec<&str> = isolate.functions.iter().map(|(name, _, _)| name.as_str()).collect();
    assert!(names.contains(&"spin") && names.contains(&"echo"), "{names:?}");

    let cases: &[(&str, &str)] = &[
        ("spin", "ran longer than its limit of 1000 ms"),
        ("allocate", "ran out of memory: it asked for more than its limit of 64 MiB"),
        ("passwd", "cannot read /etc/passwd"),
        ("fetch", "may not fetch from forbidden.invalid: its isolate.yaml does not list that host"),
        ("secret", "may not read the secret UNDECLARED_SECRET: its isolate.yaml does not declare it"),
        ("recurse", "too deep"),
        ("panic", "crashed: "),
        ("write", "may not write the thread's files: grant it with `sandbox.isolates.hostile.tree: write`"),
    ];
    for (function, expected) in cases {
        let started = std::time::Instant::now();
        let error = call(&sandbox, &isolate, &thread, function).expect_err(function).to_string();
        assert!(error.contains(expected), "{function}: {error}");
        assert!(!error.contains("top secret value"));
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{function} was stopped");
        assert_eq!(call(&sandbox, &isolate, &thread, "echo").expect("the next call is served"), "{}");
    }
    // A socket to a port that listens on the host: the guest reports the host's own error, and nothing arrives.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("non-blocking");
    let address = format!("\"{}\"", listener.local_addr().expect("address"));
    let context = hal_sandbox::CallContext { tree: None, http: false, secret: Arc::new(|_| None), progress: None };
    let Err(refused) = sandbox.call(&isolate, "socket", &address, context) else { panic!("the guest connected") };
    let refused = refused.to_string();
    assert_eq!(refused, "PermissionDenied", "the host's error, as the guest's standard library sees it");
    let reached = listener.accept();
    assert!(
        matches!(&reached, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection reached the host: {reached:?}"
    );

    let panic = call(&sandbox, &isolate, &thread, "panic").expect_err("panics").to_string();
    assert!(panic.contains("panics on purpose"), "the panic message is kept: {panic}");

    // Fuel bounds work independently of time.
    let frugal = load(&sandbox, SandboxLimits { fuel: Some(1_000_000), ..SandboxLimits::default() }, None);
    let error = call(&sandbox, &frugal, &thread, "spin").expect_err("out of fuel").to_string();
    assert!(error.contains("did more work than its limit of 1000000 units of fuel"), "{error}");

    // A 100 MB result is refused by size, with room enough in memory to build it.
    let roomy = load(&sandbox, SandboxLimits::default(), None);
    let error = call(&sandbox, &roomy, &thread, "huge").expect_err("too big").to_string();
    assert!(error.contains("104857600 bytes, more than the limit of 1048576 bytes"), "{error}");

    // A granted secret reaches the guest, but never what the guest returns.
    let policy = IsolatePolicy { secrets: vec!["DECLARED_SECRET".into()], ..IsolatePolicy::default() };
    let keeper = load(&sandbox, SandboxLimits::default(), Some(&policy));
    let context = hal_sandbox::CallContext {
        tree: None,
        http: false,
        secret: Arc::new(|name| (name == "DECLARED_SECRET").then(|| "hunter2-value".to_owned())),
        progress: None,
    };
    let Err(leaked) = sandbox.call(&keeper, "leak", "{}", context) else { panic!("the guest returns an error") };
    let leaked = leaked.to_string();
    assert_eq!(leaked, "the secret is <secret DECLARED_SECRET>, see?");
    // Its progress notes reach whoever listens, scrubbed like everything else it says.
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = heard.clone();
    let context = hal_sandbox::CallContext {
        tree: None,
        http: false,
        secret: Arc::new(|name| (name == "DECLARED_SECRET").then(|| "hunter2-value".to_owned())),
        progress: Some(Arc::new(move |done, total, message: &str| {
            listener.lock().expect("lock").push(format!("{done}/{total} {message}"));
        })),
    };
    sandbox.call(&keeper, "leak-log", "{}", context).expect("logged");
    assert_eq!(*heard.lock().expect("lock"), ["1/2 progress with <secret DECLARED_SECRET>"]);

    // Granted, the write is staged for the step's commit and goes nowhere else.
    let policy = IsolatePolicy { tree: Some(TreeAccess::Write), ..IsolatePolicy::default() };
    let writer = load(&sandbox, SandboxLimits::default(), Some(&policy));
    let context = hal_sandbox::CallContext {
        tree: Some(Box::new(ToolContext::new(thread.journal.clone(), &thread.id, thread.tip))),
        http: false,
        secret: Arc::new(|_| None),
        progress: None,
    };
    let output = sandbox.call(&writer, "write", "{}", context).expect("granted write");
    let writes = output.tree.expect("tree").into_writes();
    assert_eq!(writes, vec![("escape.txt".to_owned(), b"written by the guest".to_vec())]);
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(dir.path().join("home"))
        .output()
        .expect("git status");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "", "the work tree is untouched");
}

#[test]
fn a_compiled_component_is_loaded_from_the_cache_after_a_restart() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let first = Sandbox::new(Some(dir.path().to_owned()), 512).expect("sandbox");
    assert!(!load(&first, SandboxLimits::default(), None).from_cache);
    drop(first);
    let second = Sandbox::new(Some(dir.path().to_owned()), 512).expect("sandbox");
    let isolate = load(&second, SandboxLimits::default(), None);
    assert!(isolate.from_cache, "the restart did not recompile");
    let thread = thread(&dir.path().join("home"));
    assert_eq!(call(&second, &isolate, &thread, "echo").expect("works"), "{}");
    // A corrupt artifact is recompiled, not trusted. (It is replaced by rename, as HAL itself writes the cache:
    // the live sandbox maps the old file, and rewriting a mapped file in place would pull it from under it.)
    for entry in std::fs::read_dir(dir.path()).expect("cache dir").flatten() {
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            let corrupt = dir.path().join("corrupt.tmp");
            std::fs::write(&corrupt, b"not a component").expect("corrupt");
            std::fs::rename(&corrupt, entry.path()).expect("replace");
        }
    }
    assert!(!load(&second, SandboxLimits::default(), None).from_cache);
}

/// Regression: one call writing 12,000 files took 110 s and blocked the daemon: the number of files one call may
/// write is capped (`sandbox.limits.files`), and the refusal names the setting.
#[test]
fn regression_the_files_one_call_writes_are_capped() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let thread = thread(&dir.path().join("home"));
    let sandbox = Sandbox::new(Some(dir.path().join("cache")), 512).expect("sandbox");
    let policy = IsolatePolicy { tree: Some(TreeAccess::Write), ..IsolatePolicy::default() };
    let writer = load(&sandbox, SandboxLimits { files: Some(100), ..SandboxLimits::default() }, Some(&policy));
    let context = || hal_sandbox::CallContext {
        tree: Some(Box::new(ToolContext::new(thread.journal.clone(), &thread.id, thread.tip))),
        http: false,
        secret: Arc::new(|_| None),
        progress: None,
    };
    let output = sandbox.call(&writer, "write-many", r#"{"count": 100}"#, context()).expect("at the limit");
    assert_eq!(output.tree.expect("tree").writes_count(), 100);
    let Err(refused) = sandbox.call(&writer, "write-many", r#"{"count": 101}"#, context()) else {
        panic!("101 files were written")
    };
    assert!(refused.to_string().contains("at most 100 files (sandbox.limits.files"), "{refused}");
}
