//! Thread commands: new, list, log, say, write, fork.

use crate::support::{Sandbox, assert_fsck_clean, new_thread, rev, tree_paths};

#[test]
fn a_thread_records_each_step_as_one_commit() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "design notes");
    assert_eq!(id.len(), 11, "{id}");
    let branch = format!("threads/alice-example/{id}");
    assert_eq!(rev(&sandbox, &repo, &format!("{branch}~1")), rev(&sandbox, &repo, "main"));

    sandbox.hal(&repo, &["thread", "say", &id, "Summarise", "the", "notes"]).ok();
    let multi = "first line\n\nsecond paragraph\nHal-Step: 99\n";
    sandbox.hal_with_input(&repo, &["thread", "say", &id[..6], "-"], multi.as_bytes()).ok();
    let written = sandbox
        .hal_with_input(&repo, &["thread", "write", &id, "notes/summary.md", "-m", "Add the summary"], b"# Summary\n")
        .ok();
    assert!(written.stdout.contains(" step 4 "), "{}", written.stdout);

    // One commit per step, straight on top of main.
    assert_eq!(sandbox.git(&repo, &["rev-list", "--count", &format!("main..{branch}")]).out(), "4");
    assert_eq!(tree_paths(&sandbox, &repo, &branch), ["hal.yaml", "notes/summary.md"]);
    assert_eq!(sandbox.git(&repo, &["show", &format!("{branch}:notes/summary.md")]).stdout, "# Summary\n");

    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let steps = log.as_array().expect("array");
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["start", "message", "message", "write"]);
    assert_eq!(steps[1]["text"], "Summarise the notes");
    assert_eq!(steps[2]["text"], multi, "text is recorded exactly");
    assert_eq!(steps[3]["path"], "notes/summary.md");
    for (index, step) in steps.iter().enumerate() {
        assert_eq!(step["step"], index + 1);
        assert_eq!(step["commit"].as_str().expect("commit").len(), 40);
    }
    let newest = sandbox.hal(&repo, &["thread", "log", &id, "-n", "2", "--json"]).ok().json();
    assert_eq!(newest.as_array().expect("array").len(), 2);
    assert_eq!(newest[1]["kind"], "write");

    // The transcript reads well in plain git, with the facts in trailers.
    let subjects = sandbox.git(&repo, &["log", "--format=%s", &format!("main..{branch}")]).ok().stdout;
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            "alice-example: Add the summary",
            "alice-example: first line",
            "alice-example: Summarise the notes",
            "alice-example: started thread \"design notes\" from main"
        ]
    );
    let trailers = sandbox.git(&repo, &["log", "-1", "--format=%(trailers:key=Hal-Step,valueonly)", &branch]).ok();
    assert_eq!(trailers.out(), "4");

    let human = sandbox.hal(&repo, &["thread", "log", &id]).ok().stdout;
    assert!(human.contains("#2 message") && human.contains("    Summarise the notes"), "{human}");
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn list_shows_every_thread_with_its_state() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let empty = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    assert_eq!(empty, serde_json::json!([]));

    let first = new_thread(&sandbox, &repo, "first");
    let second = new_thread(&sandbox, &repo, "second");
    sandbox.hal(&repo, &["thread", "say", &second, "hi"]).ok();
    let list = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], first.as_str(), "sorted by creation");
    assert_eq!(list[0]["branch"], format!("threads/alice-example/{first}"));
    assert_eq!(list[0]["title"], "first");
    assert_eq!(list[0]["status"], "open");
    assert_eq!(list[0]["steps"], 1);
    assert_eq!(list[1]["steps"], 2);
    assert!(list[1]["last_activity"].as_i64().expect("time") > 1_700_000_000);

    // The listing cache is keyed by tip: a new step shows at once, and a damaged cache file is ignored.
    sandbox.hal(&repo, &["thread", "say", &first, "more"]).ok();
    let cache = repo.join(".git/hal/cache/thread-tips");
    assert!(cache.is_file(), "listing wrote its cache");
    let relisted = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    assert_eq!(relisted[0]["steps"], 2);
    std::fs::write(&cache, "hal thread-tips v1\nnot a line\n").expect("damage the cache");
    let repaired = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    assert_eq!(repaired, relisted);

    let text = sandbox.hal(&repo, &["thread", "list"]).ok().stdout;
    assert!(text.lines().next().expect("header").starts_with("ID"), "{text}");
    assert!(text.contains(&second) && text.contains("second"), "{text}");
    // The columns line up whatever the names' lengths: a long actor name moves the TITLE column of every row.
    let mut long = sandbox.hal_command(&repo, &["thread", "new", "--title", "third"]);
    crate::support::Run::from(long.env("HAL_ACTOR", "a-rather-long-actor-name").output().expect("run hal")).ok();
    let text = sandbox.hal(&repo, &["thread", "list"]).ok().stdout;
    let title_at: Vec<Option<usize>> = text
        .lines()
        .map(|line| ["TITLE", "first", "second", "third"].iter().find_map(|title| line.find(title)))
        .collect();
    assert!(title_at.windows(2).all(|w| w[0] == w[1] && w[0].is_some()), "aligned:\n{text}");
}

#[test]
fn ids_resolve_by_unique_prefix_and_errors_are_clear() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let a = new_thread(&sandbox, &repo, "a");
    let b = new_thread(&sandbox, &repo, "b");
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    assert!(common >= 1, "ids made a moment apart share a time prefix: {a} {b}");

    let ambiguous = sandbox.hal(&repo, &["thread", "say", &a[..common], "hi"]);
    assert_eq!(ambiguous.code, 2);
    assert!(ambiguous.stderr.contains("ambiguous") && ambiguous.stderr.contains(&a), "{}", ambiguous.stderr);

    sandbox.hal(&repo, &["thread", "say", &b[..=common], "hi"]).ok();
    sandbox.hal(&repo, &["thread", "say", &format!("threads/alice-example/{a}"), "by branch"]).ok();

    let unknown = sandbox.hal(&repo, &["thread", "log", "zzzzzz"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("no thread matches \"zzzzzz\""), "{}", unknown.stderr);
    assert_eq!(unknown.stderr.trim().lines().count(), 1);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "t");
    sandbox.hal_with_input(&repo, &["thread", "write", &id, "dir/file.txt"], b"x").ok();
    let tip = rev(&sandbox, &repo, &format!("threads/alice-example/{id}"));

    for path in ["../escape", "/etc/passwd", ".git/config", "a//b", "dir", "dir/file.txt/inner"] {
        let run = sandbox.hal_with_input(&repo, &["thread", "write", &id, path], b"x");
        assert_eq!(run.code, 2, "{path}: {run:?}");
        assert!(run.stderr.contains("invalid path"), "{path}: {}", run.stderr);
    }
    let empty = sandbox.hal(&repo, &["thread", "say", &id, "  "]);
    assert_eq!(empty.code, 2);
    assert!(empty.stderr.contains("empty"), "{}", empty.stderr);
    let missing = sandbox.hal(&repo, &["thread", "new", "--from", "no-such-branch"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("cannot resolve \"no-such-branch\" to a commit"), "{}", missing.stderr);

    assert_eq!(rev(&sandbox, &repo, &format!("threads/alice-example/{id}")), tip, "nothing was written");
}

#[test]
fn fork_continues_a_conversation_without_touching_the_original() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "origin");
    sandbox.hal(&repo, &["thread", "say", &id, "one"]).ok();
    sandbox.hal(&repo, &["thread", "say", &id, "two"]).ok();
    sandbox.hal(&repo, &["thread", "say", &id, "three"]).ok();
    let original_tip = rev(&sandbox, &repo, &format!("threads/alice-example/{id}"));
    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let at = log[2]["commit"].as_str().expect("commit")[..9].to_owned(); // the step "two"

    let fork = sandbox.hal(&repo, &["thread", "fork", &id, "--at", &at]).ok().out().to_owned();
    sandbox.hal(&repo, &["thread", "say", &fork, "a different three"]).ok();
    let forked = sandbox.hal(&repo, &["thread", "log", &fork, "--json"]).ok().json();
    let texts: Vec<&str> =
        forked.as_array().expect("array").iter().map(|s| s["text"].as_str().expect("text")).collect();
    assert_eq!(texts[1..3], ["one", "two"]);
    assert!(texts[3].starts_with(&format!("forked thread {id} at step 3")), "{texts:?}");
    assert_eq!(texts[4], "a different three");
    assert_eq!(forked[4]["step"], 5);
    assert_eq!(forked[4]["thread"], fork.as_str());
    assert_eq!(forked[1]["thread"], id.as_str());

    assert_eq!(rev(&sandbox, &repo, &format!("threads/alice-example/{id}")), original_tip);
    let list = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    let title = |thread: &str| {
        list.as_array().expect("list").iter().find(|t| t["id"] == thread).expect("listed")["title"].clone()
    };
    assert_eq!(title(&id), "origin");
    assert_eq!(title(&fork), "origin (fork at step 3)", "a fork says so in its title");

    // Forking at a commit that is not one of the thread's steps is refused.
    let main = rev(&sandbox, &repo, "main");
    let run = sandbox.hal(&repo, &["thread", "fork", &id, "--at", &main]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not a step of thread"), "{}", run.stderr);

    // A new thread from another thread starts a fresh conversation on that thread's files.
    let fresh = sandbox.hal(&repo, &["thread", "new", "--from", &id]).ok().out().to_owned();
    let fresh_log = sandbox.hal(&repo, &["thread", "log", &fresh, "--json"]).ok().json();
    assert_eq!(fresh_log.as_array().expect("array").len(), 1);
    assert_eq!(rev(&sandbox, &repo, &format!("threads/alice-example/{fresh}~1")), original_tip);
    assert_fsck_clean(&sandbox, &repo);
}

/// `hal thread log/fork/write` are commands of the protocol too: with a daemon they go through its API and do what
/// they do without one, binary files included.
#[test]
fn log_fork_and_write_go_through_the_daemon() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let daemon = crate::daemon::DaemonProcess::start(&sandbox, &repo);
    let id = new_thread(&sandbox, &repo, "through the daemon");
    let bytes = [0u8, 159, 146, 150, 255, b'\n'];
    let wrote = sandbox.hal_with_input(&repo, &["thread", "write", &id, "data.bin", "--json"], &bytes).ok().json();
    let commit = wrote["commit"].as_str().expect("commit").to_owned();
    let stored = sandbox.git(&repo, &["rev-parse", &format!("{commit}:data.bin")]).ok().out().to_owned();
    let mut hash = std::process::Command::new("git");
    hash.args(["hash-object", "--stdin"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    sandbox.env(&mut hash);
    let mut child = hash.spawn().expect("git hash-object");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &bytes).expect("write");
    let expected = String::from_utf8(child.wait_with_output().expect("wait").stdout).expect("utf-8");
    assert_eq!(stored, expected.trim(), "the bytes arrive as they were");
    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let kinds: Vec<&str> = log.as_array().expect("steps").iter().map(|s| s["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["start", "write"]);
    let fork = sandbox.hal(&repo, &["thread", "fork", &id, "--at", &commit]).ok().stdout.trim().to_owned();
    let forked = sandbox.hal(&repo, &["thread", "log", &fork, "-n", "1", "--json"]).ok().json();
    assert_eq!(forked[0]["kind"], "fork", "{forked}");
    assert_eq!(daemon.stop(), 0);
}
