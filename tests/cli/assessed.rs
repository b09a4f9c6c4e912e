//! Help tests judged by an assessor: a case's criteria in words go to the `assessor` help on a thread started from
//! the run's (it reads the run's files); `--iterations` reports each case's pass rate; each run's report is written
//! to its thread.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::{Value, json};

use crate::support::Sandbox;

/// The assessor's reply to a request whose newest tool result is the file it read.
fn verdict(request: &Value) -> Scripted {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let read =
        messages.iter().rev().find(|m| m["role"] == "tool").map(|m| m["content"].to_string()).unwrap_or_default();
    let system = messages.first().map(|m| m["content"].to_string()).unwrap_or_default();
    let user = messages.iter().find(|m| m["role"] == "user").map(|m| m["content"].to_string()).unwrap_or_default();
    if !system.contains("You assess the result of a run against criteria") || !user.contains("lists the decision") {
        return Scripted::text("FAIL\nthe assessor was not asked as it should be");
    }
    if read.contains("Decision: ship") {
        Scripted::text("PASS\nthe decision to ship is listed")
    } else {
        Scripted::text("FAIL\nminutes.md does not list the decision")
    }
}

#[test]
fn an_assessor_judges_each_run_and_iterations_give_a_pass_rate() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        // Run 1 writes the minutes; the assessor reads them and passes it.
        Scripted::tool("files.write", json!({"path": "minutes.md", "content": "Decision: ship"})),
        Scripted::text("minutes.md"),
        Scripted::tool("files.read", json!({"path": "minutes.md"})),
        Scripted::from_request(verdict),
        // Run 2 writes nothing; the assessor finds no minutes and fails it.
        Scripted::text("minutes.md"),
        Scripted::tool("files.read", json!({"path": "minutes.md"})),
        Scripted::from_request(verdict),
    ]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    let help = "description: Writes minutes\ncommands: [files]\ntests:\n  - name: writes minutes\n    input: Minute \
                the meeting.\n    assess:\n      criteria: The file minutes.md lists the decision.\n";
    crate::runs::commit(&sandbox, &repo, &[("helps/minutes.yaml", help)]);
    let run = crate::runs::hal(&sandbox, &repo, &["help", "test", "minutes", "--iterations", "2"]);
    assert_eq!(run.code, 1, "one run failed: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL  writes minutes (1/2 runs, 50%)"), "{}", run.stdout);
    assert!(run.stdout.contains("minutes.md does not list the decision"), "{}", run.stdout);
    assert_eq!(server.remaining(), 0, "{}", run.stdout);
    // Each run's thread holds its report.
    let threads = sandbox.hal(&repo, &["thread", "list", "--all", "--json"]).ok().json();
    let tests: Vec<String> = threads
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["title"].as_str().is_some_and(|title| title.starts_with("test minutes")))
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(tests.len(), 2, "{threads:#}");
    let reports: Vec<String> = tests
        .iter()
        .map(|id| {
            let branch = format!("threads/alice-example/{id}");
            sandbox.git(&repo, &["show", &format!("{branch}:test-report.md")]).ok().stdout
        })
        .collect();
    assert!(reports.iter().any(|r| r.contains("PASS") && r.contains("the decision to ship is listed")), "{reports:?}");
    assert!(reports.iter().any(|r| r.contains("FAIL") && r.contains("does not list the decision")), "{reports:?}");
}

/// A help cannot judge its own tests; the report written to a test thread keeps the run's ending as its status.
#[test]
fn a_help_cannot_be_its_own_assessor_and_the_report_keeps_the_threads_status() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![Scripted::finish("PENDING", "which meeting?")]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    let help = "description: Judges itself\ncommands: [files]\ntests:\n  - name: asks\n    input: Minute it.\n    \
                status: PENDING\n    assess:\n      criteria: It asks which meeting.\n      help: judge\n";
    crate::runs::commit(&sandbox, &repo, &[("helps/judge.yaml", help)]);
    let run = crate::runs::hal(&sandbox, &repo, &["help", "test", "judge", "--json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert!(report[0]["problems"].to_string().contains("cannot judge its own tests"), "{report:#}");
    let thread = report[0]["thread"].as_str().expect("thread");
    let threads = sandbox.hal(&repo, &["thread", "list", "--all", "--json"]).ok().json();
    let listed = threads.as_array().expect("threads").iter().find(|t| t["id"] == thread).expect("listed").clone();
    assert_eq!(listed["status"], "pending", "the report did not reopen the thread: {listed:#}");
}
