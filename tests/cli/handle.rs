//! The CLI builds no runner or sandbox of its own: what `main` offers (status, isolates, secrets needed), an
//! isolate called by hand, a help's tests and a replay are all asked of the repo's handle, which is the daemon
//! when one runs. The daemon here has the model's key in its environment and the CLI does not, so an answer that
//! needs the key can only have come from the daemon.

use hal_testmodel::{Scripted, ScriptedServer};

use crate::daemon::DaemonProcess;
use crate::runs::{KEY_VAR, commit, home_with_model};
use crate::support::{Sandbox, new_thread};

const FRENCH: &str = "description: Translates to French\ntests:\n  - name: greeting\n    input: Hello\n    output:\n      \
                      equals: Bonjour\n";

#[test]
fn status_isolates_calls_help_tests_and_replays_go_through_the_daemon_when_one_runs() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![Scripted::text("Bonjour")]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(&sandbox, &repo, &[("helps/french.yaml", FRENCH)]);

    // Without a daemon the command answers itself, and this process has no key.
    let alone = sandbox.hal(&repo, &["status", "--json"]).ok().json();
    assert_eq!(alone["daemon"]["running"], false, "{alone}");
    assert_eq!(alone["models"][0]["key"]["set"], false, "{alone}");
    let refused = sandbox.hal(&repo, &["help", "test", "french"]);
    assert_ne!(refused.code, 0, "no key here: {refused:?}");
    assert!(server.requests().is_empty(), "nothing reached the model");

    let daemon = DaemonProcess::start(&sandbox, &repo);
    let status = sandbox.hal(&repo, &["status", "--json"]).ok().json();
    assert_eq!(status["daemon"]["running"], true, "{status}");
    assert_eq!(status["models"][0]["key"]["set"], true, "the daemon's environment has the key: {status}");
    assert!(status["helps"].as_array().expect("helps").iter().any(|h| h == "french"), "{status}");
    let text = sandbox.hal(&repo, &["status"]).ok().stdout;
    assert!(text.contains(&format!("key {KEY_VAR} is set")), "{text}");

    let list = sandbox.hal(&repo, &["isolate", "list", "--json"]).ok().json();
    let names: Vec<&str> = list.as_array().expect("list").iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["files", "http"]);
    let needs = sandbox.hal(&repo, &["secret", "list", "--json"]).ok().json();
    assert_eq!(needs[0]["name"], KEY_VAR, "{needs}");
    assert_eq!(needs[0]["needed_by"][0], "model scripted", "{needs}");

    let thread = new_thread(&sandbox, &repo, "scratch");
    let write = r#"{"path": "note.txt", "content": "by hand"}"#;
    sandbox.hal(&repo, &["isolate", "call", "files", "write", write, "--thread", &thread]).ok();
    let read =
        sandbox.hal(&repo, &["isolate", "call", "files", "read", r#"{"path": "note.txt"}"#, "--thread", &thread]);
    assert_eq!(read.ok().out(), "by hand");
    let unknown = sandbox.hal(&repo, &["isolate", "call", "nosuch", "read"]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("no isolate named \"nosuch\" (known: files, http)"), "{}", unknown.stderr);
    let not_json = sandbox.hal(&repo, &["isolate", "call", "files", "read", "[1]"]);
    assert!(not_json.stderr.contains("the arguments must be a JSON object"), "{}", not_json.stderr);

    // The daemon takes the test's turn with its key; the replay plays the recorded reply back without the model.
    let tested = sandbox.hal(&repo, &["help", "test", "french", "--json"]);
    assert_eq!(tested.code, 0, "{tested:?}");
    let reports = tested.json();
    assert_eq!(reports[0]["passed"], true, "{reports}");
    let test_thread = reports[0]["thread"].as_str().expect("thread").to_owned();
    assert_eq!(server.requests().len(), 1);
    let replay = sandbox.hal(&repo, &["thread", "replay", &test_thread, "--json"]).ok().json();
    assert_eq!(replay["divergence"], serde_json::Value::Null, "{replay}");
    assert_eq!(server.requests().len(), 1, "a replay never calls the model");
    assert_eq!(daemon.stop(), 0);
}

/// Regression: a daemon that kept the previous `hal.yaml` in force forgot it had, at the next reload with the
/// file still invalid, and then refused what runs (an isolate call) while turns still ran on those settings. And
/// a help asked about by name that does not exist is 404, a message whose turn names one is 400.
#[test]
fn regression_settings_kept_in_force_stay_in_force_across_reloads_and_unknown_helps_are_told_apart() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let daemon = DaemonProcess::start(&sandbox, &repo);
    let settings_problem = |status: &serde_json::Value| {
        status["daemon"]["problems"].as_array()?.iter().find(|p| p["kind"] == "settings").cloned()
    };
    commit(&sandbox, &repo, &[("hal.yaml", "models: [not, a, map]\n")]);
    crate::daemon::eventually("the invalid hal.yaml", &daemon, || {
        settings_problem(&sandbox.hal(&repo, &["status", "--json"]).ok().json())
    });
    commit(&sandbox, &repo, &[("helps/other.yaml", "description: Another\n")]);
    let main = crate::support::rev(&sandbox, &repo, "main");
    let status = crate::daemon::eventually("the next reload", &daemon, || {
        let status = sandbox.hal(&repo, &["status", "--json"]).ok().json();
        (status["daemon"]["main"] == main.as_str()).then_some(status)
    });
    assert_eq!(settings_problem(&status).expect("still invalid")["previous_in_force"], true, "{status}");
    // Not refused for the settings: the call is made (and fails in the isolate: there is no thread's tree).
    let called = sandbox.hal(&repo, &["isolate", "call", "files", "list", "{}"]);
    assert!(called.code == 1 && called.stderr.contains("not made on a thread"), "{called:?}");

    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let command = |body: &str| crate::daemon::http_with(&repo, "POST", "/v1/command", Some(token.trim()), body);
    let (code, body) = command(r#"{"command": "help-tests", "help": "nosuch"}"#);
    assert_eq!(code, 404, "{body}");
    let (code, body) = command(r#"{"command": "new-thread", "help": "nosuch", "input": "hello"}"#);
    assert_eq!(code, 400, "{body}");
    assert_eq!(daemon.stop(), 0);
}
