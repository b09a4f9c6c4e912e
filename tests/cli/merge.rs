//! Accepting work: `hal thread merge`.

use crate::support::{Sandbox, all_refs, assert_fsck_clean, new_thread, rev, tree_paths};

#[test]
fn merge_fast_forwards_and_brings_only_work_files() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "report");
    sandbox.hal(&repo, &["thread", "say", &id, "write the report"]).ok();
    sandbox.hal_with_input(&repo, &["thread", "write", &id, "reports/q1.md"], b"# Q1\n").ok();

    let run = sandbox.hal(&repo, &["thread", "merge", &id]).ok();
    assert!(run.stdout.contains("fast-forward"), "{}", run.stdout);
    let branch = format!("threads/alice-example/{id}");
    assert_eq!(rev(&sandbox, &repo, "main"), rev(&sandbox, &repo, &branch), "main is the thread's merged step");
    // Work files arrive; no bookkeeping does.
    assert_eq!(tree_paths(&sandbox, &repo, "main"), ["hal.yaml", "reports/q1.md"]);
    // The checked-out work tree followed.
    assert_eq!(std::fs::read_to_string(repo.join("reports/q1.md")).expect("file"), "# Q1\n");
    assert_eq!(sandbox.git(&repo, &["status", "--porcelain"]).out(), "");

    let list = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    assert_eq!(list[0]["status"], "merged");
    let log = sandbox.hal(&repo, &["thread", "log", &id, "-n", "1", "--json"]).ok().json();
    assert_eq!(log[0]["kind"], "merged");

    let again = sandbox.hal(&repo, &["thread", "merge", &id]).ok();
    assert!(again.stdout.contains("already merged"), "{}", again.stdout);
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn merge_makes_a_merge_commit_when_main_moved_on() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let first = new_thread(&sandbox, &repo, "first");
    let second = new_thread(&sandbox, &repo, "second");
    sandbox.hal_with_input(&repo, &["thread", "write", &first, "a.txt"], b"a\n").ok();
    sandbox.hal_with_input(&repo, &["thread", "write", &second, "b.txt"], b"b\n").ok();
    sandbox.hal(&repo, &["thread", "merge", &first]).ok();
    let main_before = rev(&sandbox, &repo, "main");

    let run = sandbox.hal(&repo, &["thread", "merge", &second, "--json"]).ok().json();
    assert_eq!(run["outcome"], "merged");
    let merge = rev(&sandbox, &repo, "main");
    assert_eq!(run["commit"], merge.as_str());
    assert_eq!(rev(&sandbox, &repo, "main^1"), main_before);
    assert_eq!(rev(&sandbox, &repo, "main^2"), rev(&sandbox, &repo, &format!("threads/alice-example/{second}")));
    assert_eq!(tree_paths(&sandbox, &repo, "main"), ["a.txt", "b.txt", "hal.yaml"]);
    assert_eq!(sandbox.git(&repo, &["status", "--porcelain"]).out(), "");
    let subject = sandbox.git(&repo, &["log", "-1", "--format=%s", "main"]).ok();
    assert!(subject.out().starts_with(&format!("Merge thread {second}")), "{}", subject.out());
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn a_conflict_lists_the_paths_and_leaves_everything_untouched() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let first = new_thread(&sandbox, &repo, "first");
    let second = new_thread(&sandbox, &repo, "second");
    sandbox.hal_with_input(&repo, &["thread", "write", &first, "shared/plan.md"], b"plan A\n").ok();
    sandbox.hal_with_input(&repo, &["thread", "write", &second, "shared/plan.md"], b"plan B\n").ok();
    sandbox.hal(&repo, &["thread", "merge", &first]).ok();
    let before = all_refs(&sandbox, &repo);

    let run = sandbox.hal(&repo, &["thread", "merge", &second]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("shared/plan.md") && run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(all_refs(&sandbox, &repo), before, "no ref moved");
    assert_eq!(std::fs::read_to_string(repo.join("shared/plan.md")).expect("file"), "plan A\n");
    assert_eq!(sandbox.git(&repo, &["status", "--porcelain"]).out(), "");

    let json = sandbox.hal(&repo, &["thread", "merge", &second, "--json"]);
    assert_eq!(json.code, 1);
    assert_eq!(json.json()["paths"], serde_json::json!(["shared/plan.md"]));
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn a_local_edit_in_the_way_stops_the_merge_and_main_is_put_back() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "edit hal.yaml");
    sandbox.hal_with_input(&repo, &["thread", "write", &id, "hal.yaml"], b"version: 1\n# changed by a thread\n").ok();
    std::fs::write(repo.join("hal.yaml"), "version: 1\n# my uncommitted edit\n").expect("edit");
    let before = all_refs(&sandbox, &repo);

    let run = sandbox.hal(&repo, &["thread", "merge", &id]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("working tree") && run.stderr.contains("hal.yaml"), "{}", run.stderr);
    assert_eq!(all_refs(&sandbox, &repo), before, "main was put back");
    assert_eq!(std::fs::read_to_string(repo.join("hal.yaml")).expect("file"), "version: 1\n# my uncommitted edit\n");
}

/// A thread merged by hand (`git merge`, as a person would, and push) listed as `open`: a thread whose tip `main`
/// reaches is merged, and stops being so when it moves on or `main` is reset, with the tip cache kept in step.
#[test]
fn regression_a_thread_merged_by_hand_lists_as_merged() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "by hand");
    sandbox.hal_with_input(&repo, &["thread", "write", &id, "notes.md"], b"notes\n").ok();
    let other = new_thread(&sandbox, &repo, "left alone");
    let status = |thread: &str| {
        let list = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
        let found = list.as_array().expect("list").iter().find(|t| t["id"] == thread).expect("listed").clone();
        found["status"].as_str().expect("status").to_owned()
    };
    assert_eq!((status(&id), status(&other)), ("open".to_owned(), "open".to_owned()), "listed (and cached) first");
    let before = rev(&sandbox, &repo, "main");
    let branch = format!("threads/alice-example/{id}");
    sandbox.git(&repo, &["merge", "--no-ff", "--no-edit", &branch]).ok();
    assert_eq!((status(&id), status(&other)), ("merged".to_owned(), "open".to_owned()), "main moved forward");
    sandbox.hal(&repo, &["thread", "say", &id, "one more thing"]).ok();
    assert_eq!(status(&id), "open", "a step after the merge is not on main");
    sandbox.git(&repo, &["merge", "--no-ff", "--no-edit", &branch]).ok();
    assert_eq!(status(&id), "merged");
    sandbox.git(&repo, &["reset", "-q", "--hard", &before]).ok();
    assert_eq!(status(&id), "open", "main reset to before the merges");
    std::fs::remove_file(repo.join(".git/hal/cache/thread-tips")).expect("the cache exists");
    sandbox.git(&repo, &["merge", "--no-ff", "--no-edit", &branch]).ok();
    assert_eq!(status(&id), "merged", "without a cache too");
    assert_fsck_clean(&sandbox, &repo);
}

/// Merging into main is an owner's act: through the API without an owner's signature, or signed for another tip
/// than the thread's, the merge is refused (403 `not-owner`) and main does not move; `hal thread merge` signs.
#[test]
fn a_merge_no_owner_signed_is_refused() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "report");
    sandbox.hal_with_input(&repo, &["thread", "write", &id, "reports/q1.md"], b"# Q1\n").ok();
    let main = rev(&sandbox, &repo, "main");
    let daemon = crate::daemon::DaemonProcess::start(&sandbox, &repo);
    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let path = format!("/v1/threads/{id}/merge");
    let (code, body) = crate::daemon::http_with(&repo, "POST", &path, Some(token.trim()), "");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("not-owner") && body.contains("owner's signature"), "{body}");
    let old = sandbox.git(&repo, &["rev-parse", &format!("threads/alice-example/{id}~1")]).ok().out().to_owned();
    let command = serde_json::json!({"command": "merge", "thread": id, "signature": {"tip": old, "signature": "AAAA"}});
    let (code, body) = crate::daemon::http_with(&repo, "POST", "/v1/command", Some(token.trim()), &command.to_string());
    assert_eq!(code, 403, "{body}");
    assert_eq!(rev(&sandbox, &repo, "main"), main, "main did not move");
    // The owner's good signature, for the tip before the last step: the thread moved on since, 409 `moved`.
    let home = hal_store::Home::open(&repo).expect("open");
    let key = home.existing_person_key("alice-example").expect("the key hal init set up");
    let thread = home.resolve_thread(&id).expect("thread");
    let statement = hal_trust::merge_statement("alice-example", &thread.id, &old);
    let signature = hal_trust::sign_statement(&key, hal_trust::MERGE_NAMESPACE, &statement).expect("sign");
    let command = serde_json::json!({"command": "merge", "actor": "alice-example", "thread": id,
        "signature": {"tip": old, "signature": signature}});
    let (code, body) = crate::daemon::http_with(&repo, "POST", "/v1/command", Some(token.trim()), &command.to_string());
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("moved"), "{body}");
    assert_eq!(rev(&sandbox, &repo, "main"), main, "main did not move");

    // Unfreezing is an owner's act too.
    let branch = format!("refs/heads/threads/alice-example/{id}");
    sandbox.git(&repo, &["update-ref", &branch, &old]).ok();
    let command = serde_json::json!({"command": "unfreeze", "thread": id});
    let (code, body) = crate::daemon::http_with(&repo, "POST", "/v1/command", Some(token.trim()), &command.to_string());
    assert_eq!(code, 403, "{body}");
    assert_eq!(rev(&sandbox, &repo, &branch), old, "nothing was written");
    sandbox.hal(&repo, &["thread", "unfreeze", &id]).ok();
    let run = sandbox.hal(&repo, &["thread", "merge", &id]).ok();
    assert!(run.stdout.contains("fast-forward"), "{}", run.stdout);
    assert_eq!(daemon.stop(), 0);
}

/// With `members` in hal.yaml, the API refuses a message in the name of someone who is neither a member nor an
/// owner (403 `not-member`), and nothing is written.
#[test]
fn a_message_from_someone_not_a_member_is_refused_through_the_api() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    crate::runs::commit(&sandbox, &repo, &[("hal.yaml", &format!("{settings}members: [bob]\n"))]);
    let id = new_thread(&sandbox, &repo, "talk");
    let branch = format!("threads/alice-example/{id}");
    let before = rev(&sandbox, &repo, &branch);
    let daemon = crate::daemon::DaemonProcess::start(&sandbox, &repo);
    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let command = serde_json::json!({"command": "say", "actor": "carol", "thread": id, "text": "do my bidding"});
    let (code, body) = crate::daemon::http_with(&repo, "POST", "/v1/command", Some(token.trim()), &command.to_string());
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("not-member") && body.contains("carol is neither an owner nor one of the members"), "{body}");
    assert_eq!(rev(&sandbox, &repo, &branch), before, "nothing was written");
    assert_eq!(daemon.stop(), 0);
}
