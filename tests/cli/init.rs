//! `hal init` and opening home repos.

use crate::support::{Sandbox, all_refs, assert_fsck_clean, rev, tree_paths};

#[test]
fn init_makes_a_fresh_home_repo_and_is_harmless_to_repeat() {
    let sandbox = Sandbox::new();
    let run = sandbox.hal(&sandbox.path(""), &["init", "fresh"]).ok();
    assert!(run.stdout.contains("you are `alice-example`"), "{}", run.stdout);
    let repo = sandbox.path("fresh");

    assert_eq!(tree_paths(&sandbox, &repo, "main"), ["hal.yaml"]);
    assert_eq!(sandbox.git(&repo, &["symbolic-ref", "HEAD"]).out(), "refs/heads/main");
    assert_eq!(tree_paths(&sandbox, &repo, "actors/alice-example"), ["actor.yaml"]);
    assert_eq!(tree_paths(&sandbox, &repo, "actors/hal"), ["actor.yaml"]);
    let actor = sandbox.git(&repo, &["show", "actors/alice-example:actor.yaml"]).ok().stdout;
    assert!(actor.contains("kind: \"human\"") && actor.contains("Alice Example"), "{actor}");
    assert_eq!(sandbox.git(&repo, &["config", "hal.actor"]).out(), "alice-example");
    // The checked-out main was brought along: nothing shows as changed.
    assert_eq!(sandbox.git(&repo, &["status", "--porcelain"]).out(), "");
    assert!(repo.join("hal.yaml").is_file());

    let before = all_refs(&sandbox, &repo);
    let again = sandbox.hal(&repo, &["init"]).ok();
    assert!(again.stdout.contains("already a HAL home repo"), "{}", again.stdout);
    assert_eq!(all_refs(&sandbox, &repo), before, "a second init must change nothing");
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn init_adds_hal_yaml_on_top_of_an_existing_project() {
    let sandbox = Sandbox::new();
    let repo = sandbox.fixture("make_project_repo.sh", "project");
    let old_main = rev(&sandbox, &repo, "main");
    sandbox.hal(&repo, &["init", "--actor", "bob", "--json"]).ok();

    assert_eq!(rev(&sandbox, &repo, "main~1"), old_main, "init commits on top of the existing history");
    assert_eq!(tree_paths(&sandbox, &repo, "main"), ["README.md", "docs/design.md", "hal.yaml"]);
    assert_eq!(sandbox.git(&repo, &["status", "--porcelain"]).out(), "");
    assert_eq!(rev(&sandbox, &repo, "actors/bob").len(), 40);
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn init_refuses_a_repo_without_main_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let repo = sandbox.fixture("make_master_repo.sh", "master-only");
    let before = all_refs(&sandbox, &repo);
    let run = sandbox.hal(&repo, &["init"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no `main` branch") && run.stderr.contains("git branch -m main"), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "one clear line: {}", run.stderr);
    assert_eq!(all_refs(&sandbox, &repo), before);
}

#[test]
fn init_puts_main_back_when_an_untracked_file_is_in_the_way() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path("blocked");
    sandbox.git(&sandbox.path(""), &["init", "-q", "blocked"]).ok();
    std::fs::write(repo.join("hal.yaml"), "my own file\n").expect("write");
    let run = sandbox.hal(&repo, &["init"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("hal.yaml"), "{}", run.stderr);
    assert_eq!(rev(&sandbox, &repo, "refs/heads/main"), "", "main must not be left behind");
    assert_eq!(std::fs::read_to_string(repo.join("hal.yaml")).expect("read"), "my own file\n");
}

#[test]
fn commands_outside_a_home_repo_fail_with_one_clear_line() {
    let sandbox = Sandbox::new();
    let plain = sandbox.fixture("make_project_repo.sh", "plain");
    let run = sandbox.hal(&plain, &["thread", "list"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not a HAL home repo") && run.stderr.contains("hal init"), "{}", run.stderr);

    let empty = sandbox.path("empty");
    std::fs::create_dir(&empty).expect("dir");
    let run = sandbox.hal(&empty, &["thread", "list"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not inside a git repository"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"));
}

#[test]
fn init_rejects_bad_actor_names() {
    let sandbox = Sandbox::new();
    for (bad, why) in [
        ("Bob Smith", "use lowercase letters, digits"),
        ("hal", "`hal` is HAL's own actor"),
        ("../x", "use lowercase letters, digits"),
    ] {
        let run = sandbox.hal(&sandbox.path(""), &["init", "repo", "--actor", bad]);
        assert_eq!(run.code, 2, "{bad}");
        assert!(run.stderr.contains(&format!("invalid actor name {bad:?}: {why}")), "{bad}: {}", run.stderr);
    }
}
