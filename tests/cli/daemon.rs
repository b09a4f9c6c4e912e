//! The daemon end to end: the real `hal daemon` process on a real repo (a clone, in the first test), the
//! scripted model server over HTTP, and the CLI and plain git as its clients.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::{Value, json};

use crate::runs::{WRITER, commit, hal, home_with_model};
use crate::support::{Run, Sandbox, assert_fsck_clean, rev, tree_paths};

pub(crate) use crate::daemon_process::{DaemonProcess, eventually, kinds, spawn, steps, threads};

/// Flows 1, 3 and 4: clone a home repo, run the daemon on the clone, talk to HAL in the backchat (list threads,
/// start a thread running a help), follow the thread to DONE, and accept it with `hal thread merge`.
#[test]
fn a_clone_runs_the_daemon_and_hal_in_the_backchat_starts_a_thread_that_is_merged() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let origin = home_with_model(&sandbox, &server, "openai");
    commit(&sandbox, &origin, &[("helps/writer.yaml", WRITER)]);
    sandbox.git(sandbox.path("").as_path(), &["clone", "-q", origin.to_str().expect("utf-8"), "clone"]).ok();
    let repo = sandbox.path("clone");
    hal(&sandbox, &repo, &["init"]).ok();

    let daemon = DaemonProcess::start(&sandbox, &repo);
    let second = hal(&sandbox, &repo, &["daemon"]);
    assert_eq!(second.code, 2, "{second:?}");
    let pid = daemon.child.id();
    assert!(
        second.stderr.contains(&format!("already running in this home repo (pid {pid}); stop it first (kill {pid})")),
        "the refusal names the running daemon's pid {pid}: {}",
        second.stderr
    );
    let token = repo.join(".git/hal/daemon.token");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token).expect("token").permissions());
    assert_eq!(mode & 0o777, 0o600);

    // (3) What threads are there? HAL calls threads.list and answers.
    server.push([Scripted::tool("threads.list", json!({})), Scripted::text("Only your backchat so far.")]);
    let run = hal(&sandbox, &repo, &["chat", "-m", "What threads are there?"]).ok();
    assert!(run.stdout.contains("Only your backchat so far."), "{run:?}");
    // The person sees HAL work: one line per tool call, on stderr, as its result is committed.
    assert!(run.stderr.lines().any(|l| l.starts_with("  · threads.list: ")), "{run:?}");
    let listed = server.requests().last().expect("a request").body.clone();
    assert!(listed.to_string().contains("backchat"), "threads.list's result reached the model: {listed}");

    // HAL starts a thread running `writer`, and finishes its own turn in the same reply.
    server.push([Scripted::tools(&[
        ("threads.start", json!({"help": "writer", "input": "Write notes/hello.md saying hello."})),
        ("finish", json!({"status": "DONE", "output": "Started a writer thread."})),
    ])]);
    // The started thread's turns.
    server.push([
        Scripted::tool("files.write", json!({"path": "notes/hello.md", "content": "hello\n"})),
        Scripted::finish("DONE", "Wrote notes/hello.md"),
    ]);
    let run = hal(&sandbox, &repo, &["chat", "-m", "Please have notes/hello.md written."]).ok();
    assert!(run.stdout.contains("Started a writer thread."), "{run:?}");
    let thread = eventually("the writer thread to finish", &daemon, || {
        threads(&sandbox, &repo)
            .into_iter()
            .find(|t| t["title"].as_str().is_some_and(|title| title.starts_with("writer:")) && t["status"] == "done")
    });
    let id = thread["id"].as_str().expect("id").to_owned();
    assert_eq!(kinds(&steps(&sandbox, &repo, &id)), ["start", "message", "reply", "tool", "reply", "finish"]);

    // (4) Accept it through the daemon.
    let merged = hal(&sandbox, &repo, &["thread", "merge", &id]).ok();
    assert!(merged.stdout.contains("merged"), "{merged:?}");
    assert!(tree_paths(&sandbox, &repo, "main").contains(&"notes/hello.md".to_owned()));
    let backchat = steps(&sandbox, &repo, "backchat");
    assert!(kinds(&backchat).iter().filter(|k| *k == "finish").count() == 2, "{backchat:#?}");

    let metrics = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
    assert_eq!(metrics["daemon"]["running"], true, "{metrics}");
    assert_eq!(daemon.stop(), 0);
    assert!(!repo.join(".git/hal/daemon.json").exists(), "a stopped daemon removes what it published");
    assert_fsck_clean(&sandbox, &repo);
}

pub(crate) const GREETER: &str = "description: Greets people\ninstructions:\n  - Greet whoever asks.\n";

/// Flow 2: a help committed with plain git is used within seconds; a broken one is reported (backchat, status,
/// log) while the daemon keeps serving, and a help that breaks keeps its previous version in force.
#[test]
fn helps_committed_to_main_are_loaded_and_broken_ones_reported_while_the_daemon_keeps_serving() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "anthropic");
    let daemon = DaemonProcess::start(&sandbox, &repo);

    commit(&sandbox, &repo, &[("helps/greeter.yaml", GREETER)]);
    eventually("greeter to be loaded", &daemon, || {
        let status = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
        status["daemon"]["helps"].as_array()?.iter().any(|h| h == "greeter").then_some(())
    });
    server.push([Scripted::text("Hello, Alice!")]);
    let run = hal(&sandbox, &repo, &["help", "run", "greeter", "Hi, I am Alice"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Hello, Alice!") && run.stdout.contains("run by the daemon"), "{run:?}");

    // A broken new help, and the greeter broken too.
    commit(
        &sandbox,
        &repo,
        &[
            ("helps/broken.yaml", "description: Broken\ncommands: files\n"),
            ("helps/greeter.yaml", "description: Greets people\ninstructions: 42\n"),
        ],
    );
    let report = eventually("the problems in the backchat", &daemon, || {
        let steps = hal(&sandbox, &repo, &["thread", "log", "backchat", "--json"]);
        if steps.code != 0 {
            return None;
        }
        let steps = steps.json();
        steps
            .as_array()?
            .iter()
            .rev()
            .find(|s| s["kind"] == "system")
            .map(|s| s["text"].as_str().unwrap_or("").to_owned())
    });
    assert!(report.contains("helps/broken.yaml") && report.contains("commands"), "{report}");
    assert!(report.contains("helps/greeter.yaml") && report.contains("previous valid version"), "{report}");
    assert!(report.contains(":2:"), "the line is named: {report}");
    let status = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
    let problems = status["daemon"]["problems"].as_array().expect("problems").clone();
    assert_eq!(problems.len(), 2, "{status}");
    assert!(daemon.log().contains("helps/broken.yaml"), "the log names the file");
    // What is in force is listed: the greeter's previous version, said to be in force, and not the broken help.
    let helps: Vec<&str> = status["helps"].as_array().expect("helps").iter().filter_map(|h| h.as_str()).collect();
    assert!(helps.contains(&"greeter") && !helps.contains(&"broken"), "{status}");
    let text = hal(&sandbox, &repo, &["status"]).ok().stdout;
    let helps_line = text.lines().find(|l| l.starts_with("helps:")).expect("helps line");
    assert!(helps_line.contains("greeter"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("helps/greeter.yaml") && l.ends_with("(the previous version is in force)")),
        "{text}"
    );

    // Still serving, with the greeter's previous version.
    server.push([Scripted::text("Hello again!")]);
    let run = hal(&sandbox, &repo, &["help", "run", "greeter", "Hi again"]);
    assert_eq!(run.code, 0, "{run:?}");
    let system = server.requests().last().expect("request").body["system"].to_string();
    assert!(system.contains("Greet whoever asks"), "the previous greeter ran: {system}");

    // A plugin version changed on main by plain git is reported (`hal thread merge` would have refused it).
    commit(&sandbox, &repo, &[("plugins/p/v1/plugin.yaml", "name: p\n")]);
    // The daemon must have seen the version as published before it changes (it compares with what it saw).
    let published = rev(&sandbox, &repo, "main");
    eventually("the published version to be loaded", &daemon, || {
        let status = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
        (status["daemon"]["main"] == published.as_str()).then_some(())
    });
    commit(&sandbox, &repo, &[("plugins/p/v1/plugin.yaml", "name: p # edited\n")]);
    eventually("the changed version in hal status", &daemon, || {
        let status = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
        let problems = status["daemon"]["problems"].as_array()?.clone();
        problems
            .iter()
            .any(|p| p["file"] == "plugins/p/v1/" && p["error"].as_str().is_some_and(|e| e.contains("never changes")))
            .then_some(())
    });
    // Removing the version whole retires it: the problem goes.
    sandbox.git(&repo, &["rm", "-rq", "plugins"]).ok();
    sandbox.git(&repo, &["commit", "-S", "-q", "-m", "remove the plugin"]).ok();
    eventually("the retired version's problem to go", &daemon, || {
        let status = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
        (!status["daemon"]["problems"].to_string().contains("plugins/p/v1")).then_some(())
    });

    // Fixing both is reported too.
    commit(&sandbox, &repo, &[("helps/greeter.yaml", GREETER)]);
    sandbox.git(&repo, &["rm", "-q", "helps/broken.yaml"]).ok();
    sandbox.git(&repo, &["commit", "-S", "-q", "-m", "remove the broken help"]).ok();
    eventually("the fixes in the backchat", &daemon, || {
        let log = hal(&sandbox, &repo, &["thread", "log", "backchat"]).ok().stdout;
        (log.contains("helps/greeter.yaml on main loads again")
            && log.contains("helps/broken.yaml on main loads again"))
        .then_some(())
    });
    assert_eq!(daemon.stop(), 0);
}

/// Plain git is a full client: a message pushed to a thread as a plain commit gets an answer, and `git merge`
/// accepts the work.
#[test]
fn a_plain_git_commit_on_a_thread_is_answered_and_plain_git_merge_accepts_the_work() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(&sandbox, &repo, &[("helps/writer.yaml", WRITER)]);
    let daemon = DaemonProcess::start(&sandbox, &repo);
    server.push([
        Scripted::tool("files.write", json!({"path": "a.txt", "content": "a\n"})),
        Scripted::finish("DONE", "wrote a.txt"),
    ]);
    let run = hal(&sandbox, &repo, &["help", "run", "writer", "write a.txt", "--json"]).ok();
    let id = run.json()["thread"].as_str().expect("thread").to_owned();
    let thread = threads(&sandbox, &repo).into_iter().find(|t| t["id"] == id.as_str()).expect("the thread");
    let short_branch = thread["branch"].as_str().expect("branch").to_owned();
    let branch = format!("refs/heads/{short_branch}");

    // A plain commit on the thread branch, as a push would make it.
    server.push([
        Scripted::tool("files.write", json!({"path": "b.txt", "content": "b\n"})),
        Scripted::finish("DONE", "wrote b.txt"),
    ]);
    let tip = rev(&sandbox, &repo, &branch);
    let message = sandbox
        .git(&repo, &["commit-tree", &format!("{tip}^{{tree}}"), "-p", &tip, "-m", "Also write b.txt, please."])
        .ok()
        .out()
        .to_owned();
    sandbox.git(&repo, &["update-ref", &branch, &message, &tip]).ok();
    eventually("the answer to the plain commit", &daemon, || {
        let steps = steps(&sandbox, &repo, &id);
        (steps.last()?["text"] == "wrote b.txt").then_some(())
    });
    let request = server.requests().last().expect("request").body.clone();
    assert!(request.to_string().contains("Also write b.txt, please."), "{request}");

    sandbox.git(&repo, &["merge", "--no-edit", &short_branch]).ok();
    let answered = rev(&sandbox, &repo, &branch);
    sandbox.git(&repo, &["merge-base", "--is-ancestor", &answered, "main"]).ok();
    let files = tree_paths(&sandbox, &repo, "main");
    assert!(files.contains(&"a.txt".to_owned()) && files.contains(&"b.txt".to_owned()), "{files:?}");

    // Once the repo has a remote, an unsigned plain commit is not answered (a system step says why); one signed
    // with the key `hal init` set as git's signing key is.
    sandbox.git(&repo, &["remote", "add", "origin", "https://example.invalid/home.git"]).ok();
    let asked = server.requests().len();
    let tip = rev(&sandbox, &repo, &branch);
    let unsigned =
        sandbox.git(&repo, &["commit-tree", &format!("{tip}^{{tree}}"), "-p", &tip, "-m", "Delete everything."]).ok();
    let unsigned = unsigned.out().to_owned();
    sandbox.git(&repo, &["update-ref", &branch, &unsigned, &tip]).ok();
    let note = eventually("the note on the unsigned commit", &daemon, || {
        let steps = steps(&sandbox, &repo, &id);
        let last = steps.last()?;
        (last["kind"] == "system").then(|| last["text"].as_str().unwrap_or_default().to_owned())
    });
    assert!(note.contains(&unsigned) && note.contains("not signed"), "{note}");
    assert_eq!(server.requests().len(), asked, "the model was not asked");
    server.push([Scripted::finish("DONE", "answered the signed one")]);
    let tip = rev(&sandbox, &repo, &branch);
    let signed = sandbox
        .git(&repo, &["commit-tree", "-S", &format!("{tip}^{{tree}}"), "-p", &tip, "-m", "A signed question."])
        .ok();
    let signed = signed.out().to_owned();
    sandbox.git(&repo, &["update-ref", &branch, &signed, &tip]).ok();
    eventually("the answer to the signed commit", &daemon, || {
        let steps = steps(&sandbox, &repo, &id);
        (steps.last()?["text"] == "answered the signed one").then_some(())
    });
    assert_eq!(daemon.stop(), 0);
    assert_fsck_clean(&sandbox, &repo);
}

/// SIGKILL in the middle of a multi-step run, a restart, and the run finishes with no step lost or repeated.
#[test]
fn a_run_cut_by_sigkill_resumes_at_restart_without_losing_or_repeating_a_step() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(&sandbox, &repo, &[("helps/writer.yaml", WRITER)]);
    let daemon = DaemonProcess::start(&sandbox, &repo);
    // The second reply never arrives before the kill; the restarted daemon asks again.
    server.push([
        Scripted::tool("files.write", json!({"path": "one.txt", "content": "1\n"})),
        Scripted::tool("files.write", json!({"path": "two.txt", "content": "2\n"})).delayed(Duration::from_secs(30)),
        Scripted::tool("files.write", json!({"path": "two.txt", "content": "2\n"})),
        Scripted::finish("DONE", "wrote both"),
    ]);
    let mut client = spawn(&sandbox, &repo, &["help", "run", "writer", "write one.txt and two.txt"]);
    let id = eventually("the first tool step", &daemon, || {
        let thread = threads(&sandbox, &repo)
            .into_iter()
            .find(|t| t["title"].as_str().is_some_and(|title| title.starts_with("writer:")))?;
        let id = thread["id"].as_str()?.to_owned();
        kinds(&steps(&sandbox, &repo, &id)).contains(&"tool".to_owned()).then_some(id)
    });
    eventually("the second model call", &daemon, || (server.requests().len() >= 2).then_some(()));
    daemon.kill();
    let _ = client.wait();
    let before = kinds(&steps(&sandbox, &repo, &id));
    assert_eq!(before, ["start", "message", "reply", "tool"], "the cut run stopped mid-way");

    let daemon = DaemonProcess::start(&sandbox, &repo);
    eventually("the resumed run to finish", &daemon, || {
        threads(&sandbox, &repo).into_iter().find(|t| t["id"] == id.as_str() && t["status"] == "done")
    });
    let after = steps(&sandbox, &repo, &id);
    assert_eq!(kinds(&after), ["start", "message", "reply", "tool", "reply", "tool", "reply", "finish"]);
    let numbers: Vec<u64> = after.iter().filter_map(|s| s["step"].as_u64()).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<u64>>());
    let tip = after.last().expect("tip")["commit"].as_str().expect("commit").to_owned();
    let files = tree_paths(&sandbox, &repo, &tip);
    assert!(files.contains(&"one.txt".to_owned()) && files.contains(&"two.txt".to_owned()), "{files:?}");
    assert_eq!(daemon.stop(), 0);
    assert_fsck_clean(&sandbox, &repo);
}

/// One HTTP/1.1 request to the daemon, by hand: (status code, body).
fn http(repo: &Path, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    http_with(repo, method, path, token, "")
}

/// One HTTP/1.1 request with a JSON `body`: (status code, body).
pub(crate) fn http_with(repo: &Path, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    http_request(repo, method, path, token, &[], body)
}

/// [`http_with`], sending `headers` too.
pub(crate) fn http_request(
    repo: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join(".git/hal/daemon.json")).expect("daemon.json"))
            .expect("json");
    let address = info["address"].as_str().expect("address");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let auth: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).fold(auth, |a, h| a + &h);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let code = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

/// The API wants the token; `/metrics` counts what ran; `hal chat` without a model says how to configure one,
/// with and without a daemon, and writes nothing when it cannot run.
#[test]
fn the_api_needs_the_token_metrics_count_the_work_and_chat_without_a_model_says_what_to_do() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let refs_before = crate::support::all_refs(&sandbox, &repo);
    let local = hal(&sandbox, &repo, &["chat", "-m", "hello"]);
    assert_eq!(local.code, 2, "{local:?}");
    assert!(local.stderr.contains("no model is configured") && local.stderr.contains("hal.yaml"), "{local:?}");
    assert_eq!(crate::support::all_refs(&sandbox, &repo), refs_before, "nothing was written");

    let daemon = DaemonProcess::start(&sandbox, &repo);
    let remote = hal(&sandbox, &repo, &["chat", "-m", "hello"]);
    assert_eq!(remote.code, 2, "the daemon refuses a message it cannot answer, as the CLI does: {remote:?}");
    assert!(remote.stderr.contains("no model is configured"), "{remote:?}");
    assert_eq!(crate::support::all_refs(&sandbox, &repo), refs_before, "nothing was written");
    // A message pushed with plain git cannot be refused: its turn fails, and the thread says why.
    let id = hal(&sandbox, &repo, &["thread", "new"]).ok().stdout.trim().to_owned();
    let branch = format!("refs/heads/{}", threads(&sandbox, &repo)[0]["branch"].as_str().expect("branch"));
    let tip = rev(&sandbox, &repo, &branch);
    let pushed = sandbox.git(&repo, &["commit-tree", &format!("{tip}^{{tree}}"), "-p", &tip, "-m", "hello"]);
    sandbox.git(&repo, &["update-ref", &branch, pushed.ok().out(), &tip]).ok();
    let said = eventually("the reason in the thread", &daemon, || {
        let steps = steps(&sandbox, &repo, &id);
        (steps.last()?["kind"] == "system").then_some(steps)
    });
    assert!(said.last().expect("step")["text"].as_str().expect("text").contains("no model is configured"), "{said:#?}");

    let (code, _) = http(&repo, "GET", "/v1/threads", None);
    assert_eq!(code, 401);
    let (code, _) = http(&repo, "GET", "/metrics", Some("wrong"));
    assert_eq!(code, 401);
    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let (code, metrics) = http(&repo, "GET", "/metrics", Some(token.trim()));
    assert_eq!(code, 200, "{metrics}");
    // The turn that could not start was counted and timed; no model was called and no tool ran.
    for expected in [
        "hal_turns_total{status=\"ERROR\"} 1",
        "hal_turn_seconds_count 1",
        "hal_threads{status=\"error\"} 1",
        "hal_model_latency_seconds_count 0",
    ] {
        assert!(metrics.lines().any(|line| line == expected), "missing {expected:?} in:\n{metrics}");
    }
    for absent in ["hal_model_calls_total{", "hal_tool_calls_total{", "hal_steps_total{"] {
        assert!(!metrics.contains(absent), "nothing ran, yet {absent:?} in:\n{metrics}");
    }
    let (code, body) = http(&repo, "POST", "/v1/threads/nosuchthread/merge", Some(token.trim()));
    assert_eq!(code, 404, "{body}");
    // The REST routes take the fields of their command.
    let (code, body) = http_with(&repo, "POST", "/v1/threads", Some(token.trim()), r#"{"title": "from the API"}"#);
    assert_eq!(code, 200, "{body}");
    let started: Value = serde_json::from_str(&body).expect("json");
    let id = started["thread"]["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/threads/{id}/messages");
    // No model can answer a message here: it is refused with the reason, and nothing is written.
    let before = crate::support::all_refs(&sandbox, &repo);
    let (code, body) = http_with(&repo, "POST", &path, Some(token.trim()), r#"{"text": "hello from the API"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no model is configured"), "{body}");
    assert_eq!(crate::support::all_refs(&sandbox, &repo), before, "nothing was written");
    let (code, body) = http_with(&repo, "POST", &path, Some(token.trim()), r#"{"words": "no text"}"#);
    assert_eq!(code, 422, "{body}");
    assert_eq!(daemon.stop(), 0);
}

/// A home repo with the `greeter` help, a daemon on it, and a thread that ran the greeter once: the repo, the
/// daemon, the thread's id and its branch.
fn greeter_thread(sandbox: &Sandbox, server: &ScriptedServer) -> (PathBuf, DaemonProcess, String, String) {
    let repo = home_with_model(sandbox, server, "openai");
    commit(sandbox, &repo, &[("helps/greeter.yaml", GREETER)]);
    let daemon = DaemonProcess::start(sandbox, &repo);
    server.push([Scripted::text("first answer")]);
    let run = hal(sandbox, &repo, &["help", "run", "greeter", "hello", "--json"]).ok();
    let id = run.json()["thread"].as_str().expect("thread").to_owned();
    let branch = threads(sandbox, &repo).into_iter().find(|t| t["id"] == id.as_str()).expect("thread")["branch"]
        .as_str()
        .expect("branch")
        .to_owned();
    (repo, daemon, id, branch)
}

/// `hal chat` without `-m` reads one message per line (here from a pipe; on a terminal with line editing and
/// history) and prints each answer as it streams.
#[test]
fn interactive_chat_answers_each_line_through_the_daemon() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![Scripted::text("Hello Alice."), Scripted::text("Nothing waits for you.")]);
    let repo = home_with_model(&sandbox, &server, "anthropic");
    let daemon = DaemonProcess::start(&sandbox, &repo);
    let run = sandbox.hal_with_input(&repo, &["chat"], b"hello\n\nWhat waits for me?\n/exit\nnot sent\n");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("through the daemon"), "{run:?}");
    let hello = run.stdout.find("Hello Alice.").expect("first answer");
    let second = run.stdout.find("Nothing waits for you.").expect("second answer");
    assert!(hello < second, "{}", run.stdout);
    // The answer follows the prompt on its line (the person's own message step shows nothing, so ends no line).
    assert!(run.stdout.contains("hal> Hello Alice.\n"), "{:?}", run.stdout);
    let messages: Vec<Value> =
        steps(&sandbox, &repo, "backchat").into_iter().filter(|s| s["kind"] == "message").collect();
    assert_eq!(messages.len(), 2, "the empty line and what follows /exit are not sent: {messages:#?}");
    assert_eq!(daemon.stop(), 0);
}

/// SIGTERM with a client still following a turn stops the daemon within its grace time, the client is told the
/// daemon stopped, and the cut turn resumes at the next start. (A busy thread's merges, pushes and queued
/// messages are in `daemon_turns.rs`, where the turn is held at a gate.)
#[test]
fn a_stop_does_not_wait_for_a_client_following_a_turn_and_the_cut_turn_resumes() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let (repo, daemon, id, _) = greeter_thread(&sandbox, &server);

    // A turn that outlives the stop's grace is cut off, with a client still following it.
    server.push([Scripted::text("never heard").delayed(Duration::from_secs(60)), Scripted::text("resumed")]);
    let asked = server.requests().len();
    let waiting = spawn(&sandbox, &repo, &["thread", "say", &id, "one more"]);
    eventually("the long turn to start", &daemon, || (server.requests().len() > asked).then_some(()));
    let stopping = Instant::now();
    assert_eq!(daemon.stop(), 0);
    assert!(stopping.elapsed() < Duration::from_secs(15), "the stop took {:?}", stopping.elapsed());
    let waiting = Run::from(waiting.wait_with_output().expect("wait"));
    assert_ne!(waiting.code, 0, "the client learns the daemon stopped: {waiting:?}");
    assert!(waiting.stderr.contains("the daemon stopped before the turn ended"), "and why: {waiting:?}");
    let daemon = DaemonProcess::start(&sandbox, &repo);
    eventually("the cut turn to resume", &daemon, || {
        (steps(&sandbox, &repo, &id).last()?["text"] == "resumed").then_some(())
    });
    assert_eq!(daemon.stop(), 0);
}
