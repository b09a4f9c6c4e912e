//! `hal demo`, the README's main job, on a machine where git knows nobody.

use crate::support::{Sandbox, assert_fsck_clean, tree_paths};

#[test]
fn the_demo_runs_without_a_git_identity_and_leaves_a_healthy_repo() {
    let sandbox = Sandbox::new();
    let nobody = sandbox.path("nobody");
    std::fs::create_dir(&nobody).expect("empty home");
    let dir = sandbox.path("demo");
    let output = sandbox
        .hal_command(&sandbox.path(""), &["demo", "--dir", "demo"])
        .env("HOME", &nobody)
        .env("XDG_CONFIG_HOME", nobody.join(".config"))
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for expected in [
        "#3 write",
        "fast-forward",
        "refused:",
        "conflicts with main in greeting.md",
        "a recording shipped with HAL",
        "hal daemon serving on http://127.0.0.1:",
        "the daemon loaded it",
        "tool    hal: started thread",
        "run by the daemon, step by step",
        "tool    hal: wrote notes/welcome.md",
        "finish  hal: Wrote a welcome note",
        "(fast-forward to",
        "git log --graph",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert_eq!(
        tree_paths(&sandbox, &dir, "main"),
        ["greeting.md", "hal.yaml", "helps/welcome.yaml", "notes/welcome.md"]
    );
    assert_fsck_clean(&sandbox, &dir);

    let again = sandbox.hal(&sandbox.path(""), &["demo", "--dir", "demo"]);
    assert_eq!(again.code, 2, "an existing demo is never overwritten");
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
}

/// Run `command` to its end, within two minutes (a demo that waits forever fails the test instead of hanging it).
fn bounded(mut command: std::process::Command) -> crate::support::Run {
    use std::time::{Duration, Instant};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the demo");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hal demo --live still waits after 120 s: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::support::Run::from(child.wait_with_output().expect("output"))
}

/// Regression: `hal demo --live` followed the thread HAL started until a `finish` step, and said nothing of how
/// it ended, so a turn that failed waited forever or passed for a success. A turn that cannot run (no key here)
/// and a thread whose run fails (the model refuses) each end the demo with the error and a non-zero exit.
#[test]
fn regression_demo_live_ends_with_the_error_of_a_failing_turn() {
    use hal_testmodel::{Scripted, ScriptedServer};
    use serde_json::json;
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    let run = bounded(sandbox.hal_command(&repo, &["demo", "--live", "--dir", "no-key"]));
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains(crate::runs::KEY_VAR), "the error names the missing key: {run:?}");
    assert!(server.requests().is_empty(), "nothing reached the model");

    // HAL starts the thread; the thread's run meets a model that refuses the key.
    let start = json!({"help": "welcome", "input": "Write a welcome note.", "title": "welcome note"});
    server.push([
        Scripted::tools(&[("threads.start", start), ("finish", json!({"status": "DONE", "output": "started"}))]),
        Scripted::status(401, "invalid key"),
    ]);
    let run = bounded(crate::runs::hal_command(&sandbox, &repo, &["demo", "--live", "--dir", "refused"]));
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("run by the daemon, step by step"), "{run:?}");
    assert!(run.stderr.contains("the thread's run ended error") && run.stderr.contains("401"), "{run:?}");
}
