//! Replaying a thread (its recorded model turns played back, never the model) and `hal help test`'s report of each
//! case.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

use crate::runs::{commit, fact, hal, home_with_model, log, thread_of};
use crate::support::{Run, Sandbox};

#[test]
fn replay_matches_then_diverges_when_the_tree_changed() {
    let sandbox = Sandbox::new();
    let script = || {
        vec![
            Scripted::tool("files.read", json!({"path": "facts.txt"})),
            Scripted::tool("worker", json!({"input": "check it"})),
            Scripted::text("checked"),
            Scripted::finish("DONE", "facts are fine"),
        ]
    };
    let server = ScriptedServer::start(script());
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(
        &sandbox,
        &repo,
        &[
            ("facts.txt", "the sky is blue\n"),
            ("helps/checker.yaml", "description: Checks facts\ncommands: [files, worker]\n"),
            ("helps/worker.yaml", "description: Checks one thing\n"),
        ],
    );
    let run = hal(&sandbox, &repo, &["help", "run", "checker", "check facts.txt", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let original = thread_of(&run);
    let requests_before = server.requests().len();

    let same = sandbox.hal(&repo, &["thread", "replay", &original, "--idempotency-key", "replay-1", "--json"]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    let report = same.json();
    // Again with the key: no new thread, the same replay thread compared again.
    let threads = sandbox.hal(&repo, &["thread", "list", "--all", "--json"]).ok().json();
    let again =
        sandbox.hal(&repo, &["thread", "replay", &original, "--idempotency-key", "replay-1", "--json"]).ok().json();
    assert_eq!((&again["replay"], &again["divergence"]), (&report["replay"], &report["divergence"]), "{again}");
    assert!(again["notes"].to_string().contains("ran before"), "{again}");
    assert_eq!(sandbox.hal(&repo, &["thread", "list", "--all", "--json"]).ok().json(), threads, "nothing was started");
    let reused = sandbox.hal(&repo, &["thread", "say", &original, "hi", "--idempotency-key", "replay-1"]);
    assert_eq!(reused.code, 2, "a replay's key is not a message's: {reused:?}");
    let mut by_another = sandbox.hal_command(&repo, &["thread", "replay", &original, "--idempotency-key", "replay-1"]);
    let by_another = Run::from(by_another.env("HAL_ACTOR", "someone-else").output().expect("run hal"));
    assert!(by_another.code == 2 && by_another.stderr.contains("different request"), "another actor's: {by_another:?}");
    assert_eq!(report["divergence"], serde_json::Value::Null, "{report}");
    assert_eq!(report["compared"], 3, "two tool calls and the finish: {report}");
    assert_eq!(server.requests().len(), requests_before, "a replay never calls the model");
    let replayed = log(&sandbox, &repo, report["replay"].as_str().expect("replay thread"));
    assert!(replayed.iter().any(|s| fact(s, "Hal-Model") == Some("recording")));
    let tip = replayed.last().expect("steps")["commit"].as_str().expect("commit").to_owned();
    let count = format!("-n{}", replayed.len());
    let format = "--format=%(trailers:key=Hal-Purpose,valueonly,separator=)";
    let trailers = sandbox.git(&repo, &["log", format, &count, &tip]).ok().stdout;
    assert!(trailers.lines().all(|l| l == "replay"), "every step of the replay says so: {trailers}");
    assert_eq!(trailers.lines().count(), replayed.len(), "{trailers}");

    commit(&sandbox, &repo, &[("facts.txt", "the sky is green\n")]);
    let differs = sandbox.hal(&repo, &["thread", "replay", &original, "--from", "main"]);
    assert_eq!(differs.code, 1, "{}{}", differs.stdout, differs.stderr);
    assert!(differs.stdout.contains("differs from"), "{}", differs.stdout);
    assert!(
        differs.stdout.contains("original: files.read") && differs.stdout.contains("the sky is blue"),
        "{}",
        differs.stdout
    );
    assert!(
        differs.stdout.contains("replay:   files.read") && differs.stdout.contains("the sky is green"),
        "{}",
        differs.stdout
    );
}

#[test]
fn help_test_reports_each_case() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::text("Bonjour"),
        Scripted::text("Hallo"),
        Scripted::finish("NOCANDO", "no"),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let help = "description: Translates to French\ntests:\n  - name: greeting\n    input: Hello\n    output:\n      equals: Bonjour\n  \
                - name: second\n    input: Good day\n    output:\n      contains: [Bonjour]\n  - name: refuses\n    input: Fly\n    status: NOCANDO\n";
    commit(&sandbox, &repo, &[("helps/french.yaml", help)]);
    let run = hal(&sandbox, &repo, &["help", "test", "french"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("PASS  greeting"), "{}", run.stdout);
    assert!(run.stdout.contains("FAIL  second: output does not contain \"Bonjour\""), "{}", run.stdout);
    assert!(run.stdout.contains("PASS  refuses"), "{}", run.stdout);
    assert!(run.stdout.contains("2 passed, 1 failed"), "{}", run.stdout);
    // The cases' threads are marked as such, on every step: `hal thread list` leaves them out unless --all.
    let listed = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    assert_eq!(listed, json!([]), "{listed}");
    let text = sandbox.hal(&repo, &["thread", "list"]).ok();
    assert!(text.stderr.contains("3 thread(s) of help tests and replays not shown"), "{text:?}");
    let all = sandbox.hal(&repo, &["thread", "list", "--all", "--json"]).ok().json();
    let purposes: Vec<&str> = all.as_array().expect("all").iter().filter_map(|t| t["purpose"].as_str()).collect();
    assert_eq!(purposes, ["test", "test", "test"], "{all}");
    // A fork of one is a person's own thread.
    let first = all[0]["id"].as_str().expect("id");
    let fork = sandbox.hal(&repo, &["thread", "fork", first]).ok().out().to_owned();
    let listed = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["id"], fork.as_str(), "{listed}");
}

/// Regression: a replay split a sub-thread's runs at every message on it, HAL's own notes to its model included
/// (a failed `done` check writes one), so a sub-run that was told to try again was played as two runs and the
/// replay diverged. Runs begin at requests only.
#[test]
fn a_sub_run_told_to_try_again_replays_as_one_run() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::tool("worker", json!({"input": "check it"})),
        Scripted::text("checked"),
        Scripted::text("fine: checked"),
        Scripted::finish("DONE", "facts are fine"),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(
        &sandbox,
        &repo,
        &[
            ("helps/checker.yaml", "description: Checks facts\ncommands: [worker]\n"),
            ("helps/worker.yaml", "description: Checks one thing\ndone:\n  output_matches: '^fine'\n"),
        ],
    );
    let run = hal(&sandbox, &repo, &["help", "run", "checker", "check", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "facts are fine", "the worker was told to try again once");
    let original = thread_of(&run);
    let report = sandbox.hal(&repo, &["thread", "replay", &original, "--json"]).ok().json();
    assert_eq!(report["divergence"], serde_json::Value::Null, "{report:#}");
    assert!(report["notes"].as_array().is_some_and(Vec::is_empty), "every recorded reply was played: {report:#}");
}
