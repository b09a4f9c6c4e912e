//! The daemon's turns with the order of events made explicit: a turn is held at a [`Gate`] the test opens, so
//! "while the turn runs" is a state the test holds, not a time window it hopes to hit; and `/metrics` counts what
//! the turns did.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::{Value, json};

use crate::daemon::{DaemonProcess, eventually, http_with, kinds, steps};
use crate::runs::{WRITER, commit, hal, hal_command, home_with_model};
use crate::support::{Run, Sandbox, rev};

/// A point a turn stops at until the test lets it go: a server on loopback that the turn's `http.fetch` call
/// reaches and that answers only when the test opens it.
struct Gate {
    listener: TcpListener,
}

/// A turn's call, held at the gate.
struct Held {
    stream: TcpStream,
}

impl Gate {
    fn new() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        Gate { listener }
    }

    /// What the model asks `http.fetch` to fetch.
    fn url(&self) -> String {
        format!("http://{}/gate", self.listener.local_addr().expect("address"))
    }

    /// Wait until a turn's call arrives and its request is read; it waits there for [`Held::open`].
    #[track_caller]
    fn reached(&self, daemon: &DaemonProcess) -> Held {
        let (mut stream, _) = eventually("a turn to reach the gate", daemon, || self.listener.accept().ok());
        stream.set_nonblocking(false).expect("blocking");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
        let mut request = Vec::new();
        let mut byte = [0_u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).expect("read the call"), 1, "the call hung up at the gate");
            request.push(byte[0]);
        }
        Held { stream }
    }
}

impl Held {
    /// Answer the call: the turn goes on.
    fn open(mut self) {
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nopen";
        self.stream.write_all(answer).expect("answer the call");
    }
}

/// Start `hal` in `repo` in the background, its output kept for `wait_with_output`.
fn spawn(sandbox: &Sandbox, repo: &Path, args: &[&str]) -> Child {
    let mut command = hal_command(sandbox, repo, args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hal")
}

/// The reply that makes a turn wait at `gate`.
fn wait_at(gate: &Gate) -> Scripted {
    Scripted::tool("http.fetch", json!({"url": gate.url(), "method": "GET"}))
}

/// A home repo whose `waiter` help may fetch from loopback (where the gate is) with time to wait there, a daemon
/// on it, and a thread that ran `waiter` once: the repo, the daemon, the thread's id and its branch.
fn waiter_thread(sandbox: &Sandbox, server: &ScriptedServer) -> (PathBuf, DaemonProcess, String, String) {
    let repo = home_with_model(sandbox, server, "openai");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    http:\n      http: [127.0.0.1]\n      limits: {wall_ms: 120000}\n";
    commit(
        sandbox,
        &repo,
        &[("hal.yaml", &format!("{settings}{grant}")), ("helps/waiter.yaml", "description: Waits\ncommands: [http]\n")],
    );
    let daemon = DaemonProcess::start(sandbox, &repo);
    server.push([Scripted::text("first answer")]);
    let run = hal(sandbox, &repo, &["help", "run", "waiter", "hello", "--json"]).ok();
    let id = run.json()["thread"].as_str().expect("thread").to_owned();
    let listed = hal(sandbox, &repo, &["thread", "list", "--json"]).ok().json();
    let thread = listed.as_array().expect("threads").iter().find(|t| t["id"] == id.as_str()).expect("listed").clone();
    let branch = thread["branch"].as_str().expect("branch").to_owned();
    (repo, daemon, id, branch)
}

/// The branches the daemon runs a turn on, from `hal status`.
fn running(sandbox: &Sandbox, repo: &Path) -> Vec<String> {
    let status = hal(sandbox, repo, &["status", "--json"]).ok().json();
    let running = status["daemon"]["turns_running"].as_array().expect("running turns").iter();
    running.map(|b| b.as_str().expect("branch").to_owned()).collect()
}

fn texts(steps: &[Value]) -> Vec<String> {
    steps.iter().map(|s| s["text"].as_str().unwrap_or_default().to_owned()).collect()
}

/// A message sent while a turn runs is queued: the API says so and it is on no branch yet. The running turn never
/// sees it; it is committed after that turn's finish and answered by the next turn, and `hal thread say` of the
/// first message gets the first turn's answer, not the queued one's.
#[test]
fn a_message_to_a_busy_thread_is_queued_until_its_turn_ends_and_answered_by_the_next_turn() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let gate = Gate::new();
    let (repo, daemon, id, branch) = waiter_thread(&sandbox, &server);
    server.push([wait_at(&gate), Scripted::text("slow answer"), Scripted::text("queued answer")]);
    let first = spawn(&sandbox, &repo, &["thread", "say", &id, "take your time"]);
    let held = gate.reached(&daemon);
    assert_eq!(running(&sandbox, &repo), std::slice::from_ref(&branch), "the turn is running");

    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let path = format!("/v1/threads/{id}/messages");
    let (code, body) = http_with(&repo, "POST", &path, Some(token.trim()), r#"{"text": "and this too"}"#);
    assert_eq!(code, 200, "{body}");
    let said: Value = serde_json::from_str(&body).expect("json");
    assert_eq!((&said["result"], &said["queued"]), (&json!("said"), &json!(true)), "{body}");
    assert_eq!(said["message"], Value::Null, "a queued message is not committed yet: {body}");
    let during = texts(&steps(&sandbox, &repo, &id));
    assert!(!during.iter().any(|t| t == "and this too"), "it waits for the turn's end: {during:?}");

    held.open();
    let first = Run::from(first.wait_with_output().expect("wait"));
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("slow answer") && !first.stdout.contains("queued answer"), "{first:?}");
    let after = eventually("the queued message's answer", &daemon, || {
        let steps = steps(&sandbox, &repo, &id);
        (steps.last()?["kind"] == "finish" && steps.last()?["text"] == "queued answer").then_some(steps)
    });
    let order: Vec<String> = texts(&after)
        .into_iter()
        .filter(|t| ["take your time", "slow answer", "and this too", "queued answer"].contains(&t.as_str()))
        .collect();
    assert_eq!(
        order,
        ["take your time", "slow answer", "slow answer", "and this too", "queued answer", "queued answer"],
        "{:?}",
        kinds(&after)
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "the first run, the held turn's two model calls, the queued message's turn");
    let held_turn = requests[2].body.to_string();
    assert!(held_turn.contains("open") && !held_turn.contains("and this too"), "the running turn never saw it");
    assert!(requests[3].body.to_string().contains("and this too"), "the next turn answers it");
    assert_eq!(daemon.stop(), 0);
}

/// While a turn runs, a merge of its thread, and an isolate called by hand on it, are refused with the reason
/// and change nothing. A plain git commit
/// pushed to the thread then lands in the middle of the turn (after its request, before its finish), and a
/// follow-up turn reads the thread again and answers it. Once the turns are over the merge goes through.
#[test]
fn a_busy_thread_refuses_a_merge_and_a_commit_pushed_mid_turn_is_answered_by_a_follow_up_turn() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let gate = Gate::new();
    let (repo, daemon, id, branch) = waiter_thread(&sandbox, &server);
    server.push([wait_at(&gate), Scripted::text("slow"), Scripted::text("saw the push")]);
    let client = spawn(&sandbox, &repo, &["thread", "say", &id, "slowly"]);
    let held = gate.reached(&daemon);

    let main = rev(&sandbox, &repo, "main");
    let merge = hal(&sandbox, &repo, &["thread", "merge", &id]);
    assert_eq!(merge.code, 2, "{merge:?}");
    assert!(merge.stderr.contains(&format!("{branch} is running a turn; try again when it ends")), "{merge:?}");
    assert_eq!(rev(&sandbox, &repo, "main"), main, "the refused merge changed nothing");
    // An isolate called by hand on the thread is refused too, before it runs: its step would land mid-turn.
    let before = rev(&sandbox, &repo, &format!("refs/heads/{branch}"));
    let write = r#"{"path": "by-hand.txt", "content": "mid-turn"}"#;
    let call = hal(&sandbox, &repo, &["isolate", "call", "files", "write", write, "--thread", &id]);
    assert_eq!(call.code, 2, "{call:?}");
    assert!(call.stderr.contains(&format!("{branch} is running a turn; try again when it ends")), "{call:?}");
    assert_eq!(rev(&sandbox, &repo, &format!("refs/heads/{branch}")), before, "the refused call wrote nothing");

    let full = format!("refs/heads/{branch}");
    let tip = rev(&sandbox, &repo, &full);
    let pushed = sandbox
        .git(&repo, &["commit-tree", &format!("{tip}^{{tree}}"), "-p", &tip, "-m", "pushed mid-turn"])
        .ok()
        .out()
        .to_owned();
    sandbox.git(&repo, &["update-ref", &full, &pushed, &tip]).ok();
    held.open();
    let client = Run::from(client.wait_with_output().expect("wait"));
    assert_eq!(client.code, 0, "{client:?}");
    assert!(client.stdout.contains("slow"), "{client:?}");
    let after = eventually("the follow-up turn", &daemon, || {
        let steps = steps(&sandbox, &repo, &id);
        (steps.last()?["kind"] == "finish" && steps.last()?["text"] == "saw the push").then_some(steps)
    });
    let at = |what: &str, found: &dyn Fn(&Value) -> bool| after.iter().position(found).expect(what);
    let asked = at("the request", &|s| s["text"] == "slowly");
    let landed = at("the pushed commit", &|s| s["commit"] == pushed.as_str());
    let finished = at("the turn's finish", &|s| s["kind"] == "finish" && s["text"] == "slow");
    assert!(asked < landed && landed < finished, "the push landed in the middle of the turn: {:?}", kinds(&after));
    assert_eq!(after[landed]["kind"], "commit");
    let follow_up = server.requests().last().expect("request").body.to_string();
    assert!(follow_up.contains("pushed mid-turn"), "the follow-up read the thread again: {follow_up}");

    eventually("the turns to be over", &daemon, || running(&sandbox, &repo).is_empty().then_some(()));
    let merged = hal(&sandbox, &repo, &["thread", "merge", &id]).ok();
    assert!(merged.stdout.contains(&format!("merged {branch} into main")), "an idle thread merges: {merged:?}");
    assert_ne!(rev(&sandbox, &repo, "main"), main, "{merged:?}");
    assert_eq!(daemon.stop(), 0);
}

/// `/metrics` counts what the daemon's turns did: each value below is one the turn moved from zero.
#[test]
fn metrics_count_the_replies_tool_calls_tokens_and_turns_the_daemon_ran() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::tool("files.write", json!({"path": "a.txt", "content": "a\n"})).usage(100, 20),
        Scripted::text("wrote a.txt").usage(50, 5),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(&sandbox, &repo, &[("helps/writer.yaml", WRITER)]);
    let daemon = DaemonProcess::start(&sandbox, &repo);
    let run = hal(&sandbox, &repo, &["help", "run", "writer", "write a.txt"]).ok();
    assert!(run.stdout.contains("run by the daemon"), "{run:?}");
    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let metrics = eventually("the turn to be counted", &daemon, || {
        let (code, metrics) = http_with(&repo, "GET", "/metrics", Some(token.trim()), "");
        assert_eq!(code, 200, "{metrics}");
        metrics.contains("hal_turns_total{status=\"DONE\"} 1").then_some(metrics)
    });
    for expected in [
        "hal_steps_total{kind=\"reply\"} 2",
        "hal_steps_total{kind=\"tool\"} 1",
        "hal_model_calls_total{model=\"scripted\"} 2",
        "hal_model_latency_seconds_count 2",
        "hal_tokens_total{direction=\"input\"} 150",
        "hal_tokens_total{direction=\"output\"} 25",
        "hal_tool_calls_total{isolate=\"files\",outcome=\"ok\"} 1",
        "hal_turn_seconds_count 1",
        "hal_threads{status=\"done\"} 1",
        "hal_turns_running 0",
    ] {
        assert!(metrics.lines().any(|line| line == expected), "missing {expected:?} in:\n{metrics}");
    }
    assert_eq!(daemon.stop(), 0);
}
