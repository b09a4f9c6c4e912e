//! `hal help run`, `hal help test` and `hal thread replay` against the scripted model server: real HTTP on
//! loopback, both wire formats, replies streamed in small pieces.

use std::path::Path;

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

use crate::support::{Run, Sandbox, assert_fsck_clean};

/// The environment variable the tests' `hal.yaml` names as the key's secret.
pub(crate) const KEY_VAR: &str = "HAL_TEST_MODEL_KEY";
pub(crate) const KEY: &str = "sk-hal-test-0123456789-secret";

/// Commit `files` to main with plain git.
pub(crate) fn commit(sandbox: &Sandbox, repo: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = repo.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(&path, content).expect("write");
    }
    sandbox.git(repo, &["add", "-A"]).ok();
    sandbox.git(repo, &["commit", "-S", "-q", "-m", "configure"]).ok();
}

/// A home repo whose default model is the scripted server, speaking `provider`.
pub(crate) fn home_with_model(sandbox: &Sandbox, server: &ScriptedServer, provider: &str) -> std::path::PathBuf {
    let repo = sandbox.home("home");
    let settings = format!(
        "version: 1\nmodels:\n  scripted:\n    provider: {provider}\n    base_url: {}\n    model: scripted-1\n    \
         key: {KEY_VAR}\ntasks:\n  default: scripted\n",
        server.base_url()
    );
    commit(sandbox, &repo, &[("hal.yaml", &settings)]);
    repo
}

/// A `hal` command in `repo` that has the test model's key, not yet started.
pub(crate) fn hal_command(sandbox: &Sandbox, repo: &Path, args: &[&str]) -> std::process::Command {
    let mut command = sandbox.hal_command(repo, args);
    command.env(KEY_VAR, KEY);
    command
}

/// Run `hal` in `repo` with the test model's key.
pub(crate) fn hal(sandbox: &Sandbox, repo: &Path, args: &[&str]) -> Run {
    Run::from(hal_command(sandbox, repo, args).output().expect("run hal"))
}

/// The thread id from `hal help run --json`.
pub(crate) fn thread_of(run: &Run) -> String {
    run.json()["thread"].as_str().expect("thread id").to_owned()
}

pub(crate) fn log(sandbox: &Sandbox, repo: &Path, thread: &str) -> Vec<serde_json::Value> {
    sandbox.hal(repo, &["thread", "log", thread, "--json"]).ok().json().as_array().expect("steps").clone()
}

pub(crate) fn fact<'a>(step: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    step["facts"].as_array()?.iter().rev().find(|f| f[0] == key).and_then(|f| f[1].as_str())
}

/// The smallest chat completions request the scripted server accepts, for tests that post to it as a plain
/// HTTP client (it answers 400 to a request that is not one).
pub(crate) const CHAT_BODY: &str = r#"{"model": "m", "messages": [{"role": "user", "content": "hello"}]}"#;

pub(crate) const WRITER: &str =
    "description: Writes notes\ncommands:\n  - files\ninstructions:\n  - Write what you are asked.\n";

#[test]
fn a_tool_loop_in_both_wire_formats_records_every_step() {
    for provider in ["openai", "anthropic"] {
        let sandbox = Sandbox::new();
        let server = ScriptedServer::start(vec![
            Scripted::tool(
                "files.write",
                json!({"path": "notes/plan.md", "content": "# Plan\n\nStep one: ünïcode ✓\n"}),
            )
            .with_text("I will write the plan.")
            .usage(100, 20),
            Scripted::tools(&[("files.read", json!({"path": "notes/plan.md"})), ("files.list", json!({}))])
                .usage(150, 10),
            Scripted::finish("DONE", "Wrote notes/plan.md").usage(200, 5),
        ]);
        server.set_piece(1);
        let repo = home_with_model(&sandbox, &server, provider);
        commit(&sandbox, &repo, &[("helps/writer.yaml", WRITER)]);

        let run = hal(&sandbox, &repo, &["help", "run", "writer", "Write", "a", "plan", "--json"]);
        assert_eq!(run.code, 0, "{provider}: {}{}", run.stdout, run.stderr);
        let outcome = run.json();
        assert_eq!(outcome["status"], "DONE");
        assert_eq!(outcome["output"], "Wrote notes/plan.md");
        assert_eq!(outcome["turns"], 3);
        assert_eq!(outcome["usage"]["input"], 450);
        let thread = thread_of(&run);

        let steps = log(&sandbox, &repo, &thread);
        let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().expect("kind")).collect();
        assert_eq!(
            kinds,
            ["start", "message", "reply", "tool", "reply", "tool", "tool", "reply", "finish"],
            "{provider}"
        );
        let blob = sandbox.git(&repo, &["rev-parse", "main:helps/writer.yaml"]).ok().stdout.trim().to_owned();
        let request = &steps[1];
        assert_eq!(request["text"], "Write a plan");
        assert_eq!(fact(request, "Hal-Help"), Some("writer"));
        assert_eq!(fact(request, "Hal-Help-Blob"), Some(blob.as_str()), "the exact help version");
        let reply = &steps[2];
        assert_eq!(fact(reply, "Hal-Model"), Some("scripted"));
        assert_eq!(fact(reply, "Hal-Tokens-In"), Some("100"));
        assert_eq!(fact(reply, "Hal-Tokens-Out"), Some("20"));
        assert!(fact(reply, "Hal-Latency-Ms").is_some());
        let data: serde_json::Value = serde_json::from_str(reply["data"].as_str().expect("data")).expect("json");
        assert_eq!(data["reply"]["text"], "I will write the plan.");
        let raw = data["response"].as_str().expect("the raw response is kept");
        let marker = if provider == "openai" { "data: [DONE]" } else { "event: message_stop" };
        assert!(raw.contains(marker), "{raw}");
        let read = &steps[5];
        assert_eq!(fact(read, "Hal-Tool"), Some("files.read"));
        assert_eq!(read["text"], "# Plan\n\nStep one: ünïcode ✓\n", "tool results are recorded exactly");
        let listing = steps[6]["text"].as_str().expect("text");
        let size = "# Plan\n\nStep one: ünïcode ✓\n".len();
        assert!(listing.contains(&format!("notes/plan.md ({size} bytes)")), "{listing}");
        assert_eq!(fact(&steps[8], "Hal-Result"), Some("DONE"));
        assert_eq!(steps[8]["status"], "done");

        let tip = outcome["commit"].as_str().expect("finish commit");
        let written = sandbox.git(&repo, &["show", &format!("{tip}:notes/plan.md")]).ok().stdout;
        assert_eq!(written, "# Plan\n\nStep one: ünïcode ✓\n");
        let changed = sandbox.git(&repo, &["log", "--format=%s", tip, "--", "notes/plan.md"]).ok().stdout;
        assert_eq!(changed.lines().count(), 1, "only the tool step wrote the file: {changed}");

        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        let last = &requests[2].body.to_string();
        assert!(last.contains("Step one"), "the model saw the tool results: {last}");
        assert!(last.contains("Write what you are asked."), "the help's instructions are the system prompt");
        assert_fsck_clean(&sandbox, &repo);
    }
}

#[test]
fn a_help_calls_a_sub_help_on_a_sub_thread() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::tool("worker", json!({"input": "What is six times seven?"})),
        Scripted::text("42"),
        Scripted::finish("DONE", "The worker says 42").usage(10, 3),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(
        &sandbox,
        &repo,
        &[
            ("helps/boss.yaml", "description: Delegates\ncommands: [worker]\n"),
            ("helps/worker.yaml", "description: Does arithmetic\ninstructions: [Answer with a number.]\n"),
        ],
    );
    let run = hal(&sandbox, &repo, &["help", "run", "boss", "Ask the worker", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let thread = thread_of(&run);
    let steps = log(&sandbox, &repo, &thread);
    let tool = steps.iter().find(|s| s["kind"] == "tool").expect("a tool step");
    let sub = fact(tool, "Hal-Subthread").expect("sub-thread recorded").to_owned();
    let result: serde_json::Value = serde_json::from_str(tool["text"].as_str().expect("text")).expect("json result");
    assert_eq!(result, json!({"status": "DONE", "output": "42", "thread": sub}));

    let sub_steps = log(&sandbox, &repo, &sub);
    let kinds: Vec<&str> = sub_steps.iter().map(|s| s["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["start", "message", "reply", "finish"]);
    assert_eq!(fact(&sub_steps[1], "Hal-Depth"), Some("1"));
    // The sub-thread branches off the caller's step that made the call.
    let base =
        sandbox.git(&repo, &["rev-parse", &format!("{}^", sub_steps[0]["commit"].as_str().expect("commit"))]).ok();
    let reply_before_call = &steps[2];
    assert_eq!(base.stdout.trim(), reply_before_call["commit"].as_str().expect("commit"));
    let worker_request = &server.requests()[1].body;
    // The request is the calling model's text: HAL's, relayed for the person, and shown as such.
    assert_eq!((sub_steps[1]["actor"].as_str(), fact(&sub_steps[1], "Hal-For")), (Some("hal"), Some("alice-example")));
    assert_eq!(
        worker_request["messages"][1]["content"],
        "[relayed by HAL for alice-example, not written by them] What is six times seven?"
    );
    assert!(worker_request["messages"][0]["content"].as_str().expect("system").contains("Answer with a number."));
}

#[test]
fn pending_pauses_and_the_next_message_resumes_with_the_whole_history() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::finish("PENDING", "Which city?"),
        Scripted::text("Paris it is: sunny."),
        Scripted::finish("PENDING", "Celsius or Fahrenheit?"),
        Scripted::text("21 °C"),
    ]);
    let repo = home_with_model(&sandbox, &server, "anthropic");
    commit(&sandbox, &repo, &[("helps/weather.yaml", "description: Weather\n")]);
    let run = hal(&sandbox, &repo, &["help", "run", "weather", "What is the weather?"]);
    assert_eq!(run.code, 3, "PENDING exits 3: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("PENDING"), "{}", run.stdout);
    assert!(run.stdout.contains("Which city?"));
    assert!(run.stderr.contains("answer with: hal thread say "), "the exact command to answer: {}", run.stderr);
    let thread = run.stdout.split("thread ").nth(1).and_then(|s| s.split(',').next()).expect("thread id").to_owned();
    let listed = sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["status"], "pending");

    let resumed = hal(&sandbox, &repo, &["help", "run", "weather", "Paris", "--thread", &thread, "--json"]);
    assert_eq!(resumed.code, 0, "{}{}", resumed.stdout, resumed.stderr);
    assert_eq!(resumed.json()["output"], "Paris it is: sunny.");
    let body = &server.requests()[1].body;
    let messages = body["messages"].as_array().expect("messages");
    let text = serde_json::to_string(messages).expect("json");
    assert!(text.contains("What is the weather?") && text.contains("Which city?") && text.contains("Paris"), "{text}");
    assert_eq!(messages.last().expect("last")["role"], "user");

    // A plain `hal thread say` on a waiting thread is the answer too: the run resumes.
    let asked = hal(&sandbox, &repo, &["help", "run", "weather", "And tomorrow?", "--thread", &thread]);
    assert_eq!(asked.code, 3, "{}{}", asked.stdout, asked.stderr);
    let answered = hal(&sandbox, &repo, &["thread", "say", &thread, "Celsius"]);
    assert_eq!(answered.code, 0, "{}{}", answered.stdout, answered.stderr);
    assert!(answered.stdout.starts_with("DONE") && answered.stdout.contains("21 °C"), "{}", answered.stdout);
    let steps = log(&sandbox, &repo, &thread);
    let answer = steps.iter().rev().find(|s| s["text"] == "Celsius").expect("the answer is a step");
    assert_eq!(fact(answer, "Hal-Help"), Some("weather"));
    // On a thread that waits for nothing, `say` only records the message.
    let plain = hal(&sandbox, &repo, &["thread", "say", &thread, "thanks", "--json"]);
    assert_eq!(plain.code, 0);
    assert_eq!(server.requests().len(), 4, "no model call for an ordinary message");
}

#[test]
fn an_empty_help_is_a_plain_call_and_the_agent_persona_opens_the_prompt() {
    let sandbox = Sandbox::new();
    let server =
        ScriptedServer::start(vec![Scripted::text("plain answer"), Scripted::text("as Zed"), Scripted::text("read")]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(&sandbox, &repo, &[("helps/empty.yaml", "{}\n")]);
    let run = hal(&sandbox, &repo, &["help", "run", "empty", "hi", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "plain answer");
    let body = &server.requests()[0].body;
    assert_eq!(body["model"], "scripted-1");
    assert_eq!(body["tools"][0]["function"]["name"], "finish", "only finish is offered");
    assert!(body["messages"][0]["content"].as_str().expect("system").starts_with("You are HAL"));

    commit(&sandbox, &repo, &[("agents/zed.yaml", "description: Zed\npersona: ['You are Zed, terse.']\n")]);
    let run = hal(&sandbox, &repo, &["help", "run", "empty", "hi", "--agent", "zed"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let system = server.requests()[1].body["messages"][0]["content"].as_str().expect("system").to_owned();
    assert!(system.starts_with("You are Zed, terse."), "{system}");
    let missing = hal(&sandbox, &repo, &["help", "run", "empty", "hi", "--agent", "nobody"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no agent named `nobody`"), "{}", missing.stderr);

    // An agent with lists runs only the helps they name, offered only the functions they name.
    let narrow = "description: Narrow\nhelps: [reader]\nisolates: [files.read]\n";
    commit(
        &sandbox,
        &repo,
        &[("agents/narrow.yaml", narrow), ("helps/reader.yaml", "description: R\ncommands: [files]\n")],
    );
    let refused = hal(&sandbox, &repo, &["help", "run", "empty", "hi", "--agent", "narrow"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("agent `narrow` may not run help `empty`"), "{}", refused.stderr);
    let run = hal(&sandbox, &repo, &["help", "run", "reader", "hi", "--agent", "narrow"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let requests = server.requests();
    let offered: Vec<&str> = requests[2].body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| tool["function"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(offered, ["files_read", "finish"], "only what the agent may call is offered");
}

#[test]
fn goalie_says_nocando_when_no_help_fits() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::finish("NOCANDO", "No help launches satellites."),
        // The stuck-finder, asked what is missing.
        Scripted::finish("DONE", r#"{"missing": "a satellite launcher", "action": "give-up"}"#),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(
        &sandbox,
        &repo,
        &[("helps/summary.yaml", "description: Summarise a text\nexamples:\n  - request: Summarise these notes\n")],
    );
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "Launch a satellite into orbit."]);
    assert_eq!(run.code, 4, "NOCANDO exits 4: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("NOCANDO"));
    let system = server.requests()[0].body["messages"][0]["content"].as_str().expect("system").to_owned();
    assert!(system.contains("- summary: Summarise a text"), "the goalie sees the catalogue: {system}");
    assert!(system.contains("example request: Summarise these notes"), "{system}");
}

#[test]
fn each_limit_ends_the_run_with_error_and_a_committed_reason() {
    let cases: [(&str, Vec<Scripted>, &str); 3] = [
        (
            "runner:\n  max_steps: 2\ncommands: [files]\n",
            vec![
                Scripted::tool("files.list", json!({})),
                Scripted::tool("files.list", json!({})),
                Scripted::text("never"),
            ],
            "stopped after 2 model turns",
        ),
        (
            "runner:\n  max_tokens: 300\ncommands: [files]\n",
            vec![Scripted::tool("files.list", json!({})).usage(200, 150), Scripted::text("never")],
            "stopped after using 350 tokens, over the limit of 300",
        ),
        (
            "runner:\n  max_seconds: 0.5\n",
            vec![Scripted::text("too late").delayed(std::time::Duration::from_secs(3))],
            "longer than its limit of 0.5 s",
        ),
    ];
    for (help, script, reason) in cases {
        let sandbox = Sandbox::new();
        let server = ScriptedServer::start(script);
        let repo = home_with_model(&sandbox, &server, "openai");
        commit(&sandbox, &repo, &[("helps/limited.yaml", help)]);
        let run = hal(&sandbox, &repo, &["help", "run", "limited", "go", "--json"]);
        assert_eq!(run.code, 1, "ERROR exits 1: {}{}", run.stdout, run.stderr);
        let outcome = run.json();
        assert_eq!(outcome["status"], "ERROR");
        assert!(outcome["output"].as_str().expect("output").contains(reason), "{outcome}");
        let steps = log(&sandbox, &repo, &thread_of(&run));
        let last = steps.last().expect("a step");
        assert_eq!(last["kind"], "finish");
        assert_eq!(fact(last, "Hal-Result"), Some("ERROR"));
        assert!(last["text"].as_str().expect("text").contains(reason));
    }
}

#[test]
fn a_429_is_retried_and_a_401_names_the_model_but_never_the_key() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::status(429, "rate limited").retry_after("1"),
        Scripted::text("after the wait"),
        Scripted::status(401, &format!("Incorrect API key provided: {KEY}")),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let run = hal(&sandbox, &repo, &["help", "run", "hal", "hello", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "after the wait");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(server.requests()[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));

    let refused = hal(&sandbox, &repo, &["help", "run", "hal", "hello again"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stdout.contains("model `scripted`"), "{}", refused.stdout);
    assert!(refused.stdout.contains(&server.base_url()), "{}", refused.stdout);
    assert!(refused.stdout.contains(KEY_VAR), "names the secret: {}", refused.stdout);
    assert!(!refused.stdout.contains("0123456789") && !refused.stderr.contains("0123456789"));
    let objects = sandbox.git(&repo, &["cat-file", "--batch-all-objects", "--batch"]).ok().stdout;
    assert!(!objects.contains("0123456789"), "the key is in no object of the repo");
}

#[test]
fn a_missing_model_or_key_says_exactly_what_to_configure() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let run = sandbox.hal(&repo, &["help", "run", "hal", "hello"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no model is configured") && run.stderr.contains("provider: anthropic"),
        "{}",
        run.stderr
    );
    assert_eq!(sandbox.hal(&repo, &["thread", "list", "--json"]).ok().json(), json!([]), "nothing was written");

    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let run = sandbox.hal(&repo, &["help", "run", "hal", "hello"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&format!("`hal secret set {KEY_VAR}`")), "{}", run.stderr);
}

#[test]
fn a_model_fetches_through_the_http_isolate_from_a_granted_host() {
    let sandbox = Sandbox::new();
    let site = ScriptedServer::start(vec![Scripted::text("the page")]);
    let url = format!("{}/chat/completions", site.base_url());
    let server = ScriptedServer::start(vec![
        // The body of a chat request: the scripted server answers 400 to a malformed one.
        Scripted::tool("http.fetch", json!({"url": url, "method": "POST", "body": CHAT_BODY})),
        Scripted::text("fetched it"),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    http:\n      http: [127.0.0.1]\n";
    commit(
        &sandbox,
        &repo,
        &[("hal.yaml", &format!("{settings}{grant}")), ("helps/web.yaml", "description: Web\ncommands: [http]\n")],
    );
    let run = hal(&sandbox, &repo, &["help", "run", "web", "fetch the page", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(site.requests().len(), 1, "the isolate reached the granted host");
    let tool = log(&sandbox, &repo, &thread_of(&run)).into_iter().find(|s| s["kind"] == "tool").expect("tool step");
    assert_eq!(fact(&tool, "Hal-Outcome"), Some("ok"));
    assert!(tool["text"].as_str().expect("text").contains("\"status\":200"), "{tool}");
    // Reaching the network is AL2 by default (act and tell): the owner's backchat says what ran.
    let backchat = log(&sandbox, &repo, "backchat");
    let told = backchat.iter().filter_map(|s| s["text"].as_str()).find(|t| t.starts_with("ran http.fetch on thread"));
    assert!(told.is_some_and(|t| t.contains("AL2")), "{backchat:#?}");
}

#[test]
fn nul_bytes_and_extra_finishes_from_a_model_do_not_break_the_thread() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::tool("files.write", json!({"path": "bin.dat", "content": "a\u{0}b"})),
        Scripted::tools(&[
            ("files.read", json!({"path": "bin.dat"})),
            ("finish", json!({"status": "PENDING", "output": "one?"})),
            ("finish", json!({"status": "DONE", "output": "two"})),
        ]),
        Scripted::text("resumed fine"),
    ]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(&sandbox, &repo, &[("helps/bin.yaml", WRITER)]);
    let run = hal(&sandbox, &repo, &["help", "run", "bin", "go", "--json"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let thread = thread_of(&run);
    let steps = log(&sandbox, &repo, &thread);
    let read = steps.iter().find(|s| fact(s, "Hal-Tool") == Some("files.read")).expect("the read");
    assert_eq!(read["text"], "a\u{fffd}b", "NUL is replaced in what is committed");
    let ignored = steps.iter().filter(|s| fact(s, "Hal-Tool") == Some("finish")).count();
    assert_eq!(ignored, 1, "the second finish got its own refusal");
    let resumed = hal(&sandbox, &repo, &["thread", "say", &thread, "yes"]);
    assert_eq!(resumed.code, 0, "{}{}", resumed.stdout, resumed.stderr);
    let body = &server.requests()[2].body;
    let ids: Vec<&str> =
        body["messages"].as_array().expect("messages").iter().filter_map(|m| m["tool_call_id"].as_str()).collect();
    assert_eq!(ids, ["call_0", "call_1", "call_3", "call_2"], "every call has its answer: {body}");
}

#[test]
fn status_shows_models_invalid_files_and_threads_waiting_for_a_person() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let bare = sandbox.hal(&repo, &["status"]).ok().stdout;
    assert!(bare.contains("models:   none configured"), "{bare}");
    assert!(bare.contains("isolate:  files (built-in)"), "{bare}");

    let server = ScriptedServer::start(vec![Scripted::finish("PENDING", "Which colour?")]);
    let repo = home_with_model(&sandbox, &server, "openai");
    commit(
        &sandbox,
        &repo,
        &[("helps/paint.yaml", "description: Paints\n"), ("helps/broken.yaml", "runner: {steps: 3}\n")],
    );
    let run = hal(&sandbox, &repo, &["help", "run", "paint", "paint the shed", "--json"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let thread = thread_of(&run);

    let text = sandbox.hal(&repo, &["status"]).ok().stdout;
    assert!(text.contains(&format!("key {KEY_VAR} is NOT set")), "the key is not in this environment: {text}");
    assert!(text.contains("invalid help: main:helps/broken.yaml:1:10: runner.steps: unknown field"), "{text}");
    assert!(text.contains(&format!("waiting:  {thread}")) && text.contains("Which colour?"), "{text}");
    let report = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
    assert_eq!(report["models"][0]["key"]["set"], true);
    assert_eq!(report["waiting_for_you"][0]["id"], thread.as_str());
    assert!(report["helps"].as_array().expect("helps").iter().any(|h| h == "paint"));
    let broken = &report["invalid_files"][0];
    assert_eq!(
        (&broken["kind"], &broken["name"], &broken["file"]),
        (&json!("help"), &json!("broken"), &json!("helps/broken.yaml"))
    );

    // A grant for an isolate that does not exist (a typo gives the intended one nothing) is a warning.
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    weathr:\n      http: [api.weather.gov]\n";
    commit(&sandbox, &repo, &[("hal.yaml", &format!("{settings}{grant}"))]);
    let text = sandbox.hal(&repo, &["status"]).ok().stdout;
    assert!(text.contains("warning:  hal.yaml: sandbox.isolates grants `weathr`, and no isolate"), "{text}");

    // A `hal.yaml` that does not validate, with no earlier version in force: the status still answers and names
    // it, but nothing runs on settings the owner did not write.
    commit(&sandbox, &repo, &[("hal.yaml", "models: [not, a, map]\n")]);
    let report = hal(&sandbox, &repo, &["status", "--json"]).ok().json();
    let settings = report["invalid_files"].as_array().expect("invalid files").iter().find(|f| f["kind"] == "settings");
    assert_eq!(settings.expect("the settings problem")["name"], "hal.yaml", "{report}");
    let call = hal(&sandbox, &repo, &["isolate", "call", "files", "list", "{}", "--thread", &thread]);
    assert_ne!(call.code, 0, "{call:?}");
    assert!(call.stderr.contains("hal.yaml"), "{call:?}");
}
