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
