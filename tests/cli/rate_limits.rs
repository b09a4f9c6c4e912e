//! Rate limits: a call over its tool's limit waits when its turn is near, else the run ends PENDING saying when it
//! can go on; the count is HAL's record of the calls it started, so a restarted daemon keeps it.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

use crate::support::Sandbox;

fn write(path: &str) -> Scripted {
    Scripted::tool("files.write", json!({"path": path, "content": "x"}))
}

#[test]
fn a_rate_limit_holds_across_processes_and_ends_the_run_pending_until_its_turn() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![write("a"), write("b"), Scripted::text("done"), write("c")]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let limits = "rate_limits:\n  tools: {files.write: 2}\n  wait_seconds: 5\n";
    crate::runs::commit(
        &sandbox,
        &repo,
        &[
            ("hal.yaml", &format!("{settings}{limits}")),
            ("helps/writer.yaml", "description: Writes files\ncommands: [files]\n"),
        ],
    );
    let daemon = crate::daemon::DaemonProcess::start(&sandbox, &repo);
    let first = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "write a and b", "--json"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert_eq!(daemon.stop(), 0);
    // The daemon restarted: the two calls of the last hour are read back from HAL's record; the bucket of 2 an hour
    // refills one call in half an hour, far more than the 5 s a call may wait.
    let daemon = crate::daemon::DaemonProcess::start(&sandbox, &repo);
    let second = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "write c", "--json"]);
    assert_eq!(second.code, 3, "PENDING: {}{}", second.stdout, second.stderr);
    let end = second.json();
    assert_eq!(end["waiting"]["for"], "rate-limit", "{end:#}");
    assert_eq!(end["waiting"]["tool"], "files.write", "{end:#}");
    assert!(end["waiting"]["until"].as_i64().is_some(), "{end:#}");
    let output = end["output"].as_str().expect("output");
    assert!(output.contains("rate_limits.tools.files.write allows 2 calls an hour"), "{output}");
    let id = end["thread"].as_str().expect("thread");
    let log = sandbox.hal(&repo, &["thread", "log", id, "--json"]).ok().json();
    let tools = log.as_array().expect("steps").iter().filter(|s| s["kind"] == "tool").count();
    assert_eq!(tools, 0, "the call did not run: {log:#}");
    assert_eq!(server.requests().len(), 4);
    let backchat = crate::daemon::eventually("the owner to be told", &daemon, || {
        let backchat = sandbox.hal(&repo, &["thread", "log", "backchat", "--json"]).ok().json();
        backchat.to_string().contains("waits until").then_some(backchat)
    });
    assert!(backchat.to_string().contains("rate_limits.tools.files.write"), "{backchat:#}");
    assert_eq!(daemon.stop(), 0);
}
