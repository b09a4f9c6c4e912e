//! Plain git stays a full client: clone, fsck, merge by hand.

use crate::support::{Sandbox, assert_fsck_clean, new_thread, rev, tree_paths};

#[test]
fn a_clone_brings_every_thread_and_hal_init_adopts_them() {
    let sandbox = Sandbox::new();
    let origin = sandbox.home("origin");
    let id = new_thread(&sandbox, &origin, "shared work");
    sandbox.hal(&origin, &["thread", "say", &id, "hello from origin"]).ok();

    sandbox.git(&sandbox.path(""), &["clone", "-q", origin.to_str().expect("utf-8"), "clone"]).ok();
    let clone = sandbox.path("clone");
    let remote_branch = format!("origin/threads/alice-example/{id}");
    assert_eq!(rev(&sandbox, &clone, &remote_branch), rev(&sandbox, &origin, &format!("threads/alice-example/{id}")));

    let init = sandbox.hal(&clone, &["init", "--json"]).ok().json();
    assert_eq!(init["committed_config"], false, "hal.yaml came with the clone");
    let adopted: Vec<&str> =
        init["adopted_branches"].as_array().expect("array").iter().map(|v| v.as_str().expect("str")).collect();
    assert!(adopted.contains(&format!("threads/alice-example/{id}").as_str()), "{adopted:?}");
    assert!(adopted.contains(&"actors/hal"), "{adopted:?}");

    let log = sandbox.hal(&clone, &["thread", "log", &id, "--json"]).ok().json();
    assert_eq!(log[1]["text"], "hello from origin");
    sandbox.hal(&clone, &["thread", "say", &id, "hello from the clone"]).ok();
    assert_fsck_clean(&sandbox, &clone);
}

#[test]
fn a_thread_can_be_merged_by_hand_with_git() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let first = new_thread(&sandbox, &repo, "first");
    let second = new_thread(&sandbox, &repo, "second");
    sandbox.hal_with_input(&repo, &["thread", "write", &first, "one.txt"], b"1\n").ok();
    sandbox.hal_with_input(&repo, &["thread", "write", &second, "two.txt"], b"2\n").ok();
    sandbox.hal(&repo, &["thread", "merge", &first]).ok();

    sandbox.git(&repo, &["merge", "-q", "--no-edit", &format!("threads/alice-example/{second}")]).ok();
    assert_eq!(tree_paths(&sandbox, &repo, "main"), ["hal.yaml", "one.txt", "two.txt"]);
    assert_eq!(sandbox.git(&repo, &["status", "--porcelain"]).out(), "");
    // HAL keeps working on top of a hand-made merge.
    let third = new_thread(&sandbox, &repo, "third");
    let log = sandbox.hal(&repo, &["thread", "log", &third, "--json"]).ok().json();
    assert_eq!(log.as_array().expect("array").len(), 1);
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn a_plain_git_commit_on_a_thread_shows_in_its_log() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "mixed");
    let branch = format!("threads/alice-example/{id}");
    sandbox.git(&repo, &["switch", "-q", &branch]).ok();
    std::fs::write(repo.join("by-hand.txt"), "typed by a human\n").expect("write");
    sandbox.git(&repo, &["add", "by-hand.txt"]).ok();
    sandbox.git(&repo, &["commit", "-q", "-m", "Add a file by hand"]).ok();
    sandbox.git(&repo, &["switch", "-q", "main"]).ok();
    sandbox.hal(&repo, &["thread", "say", &id, "after the hand commit"]).ok();

    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let kinds: Vec<&str> = log.as_array().expect("array").iter().map(|s| s["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["start", "commit", "message"]);
    assert_eq!(log[1]["step"], serde_json::Value::Null);
    assert_eq!(log[2]["step"], 2);
    assert_eq!(tree_paths(&sandbox, &repo, &branch), ["by-hand.txt", "hal.yaml"]);
}
