//! A sub-help's question crosses over to its caller: the calling model gets the question with the sub-thread, and
//! answers it by calling the help again with `{thread, answer}`; the sub-run goes on there and its ending is that
//! call's result. Only a question a run of the same thread started can be answered so.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::{Value, json};

use crate::support::Sandbox;

/// The result of the newest tool call in a request's messages (chat completions), as JSON.
fn last_result(request: &Value) -> Value {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let result = messages.iter().rev().find(|m| m["role"] == "tool").map(|m| m["content"].clone());
    result.and_then(|content| serde_json::from_str(content.as_str()?).ok()).unwrap_or(Value::Null)
}

/// A home repo with the scripted model, a help `outer` that calls the help `asker`, and `asker`.
fn home_with_outer_and_asker(sandbox: &Sandbox, server: &ScriptedServer) -> std::path::PathBuf {
    let repo = crate::runs::home_with_model(sandbox, server, "openai");
    crate::runs::commit(
        sandbox,
        &repo,
        &[
            ("helps/outer.yaml", "description: Delegates\ncommands: [asker]\n"),
            ("helps/asker.yaml", "description: Asks when unsure\ncommands: [files]\n"),
        ],
    );
    repo
}

#[test]
fn the_caller_answers_a_sub_helps_question_and_gets_its_result() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        // The caller asks the sub-help.
        Scripted::tool("asker", json!({"input": "summarise the report"})),
        // The sub-help asks back.
        Scripted::finish("PENDING", "which report?"),
        // The caller answers on the sub-help's thread, named in the result it got.
        Scripted::from_request(|request| {
            let result = last_result(request);
            assert_eq!(result["status"], "PENDING", "{result}");
            assert_eq!(result["output"], "which report?", "{result}");
            let thread = result["thread"].as_str().unwrap_or_default().to_owned();
            Scripted::tool("asker", json!({"thread": thread, "answer": "the Q1 report"}))
        }),
        // The sub-help goes on with the answer, and is done.
        Scripted::from_request(|request| {
            let messages = request["messages"].to_string();
            let answered = messages.contains("the Q1 report") && messages.contains("which report?");
            Scripted::text(if answered { "Q1: all good" } else { "the answer did not arrive" })
        }),
        // The caller gets the sub-help's result as the answer to its second call.
        Scripted::from_request(|request| {
            let result = last_result(request);
            Scripted::text(&format!("summary: {}", result["output"].as_str().unwrap_or("none")))
        }),
    ]);
    let repo = home_with_outer_and_asker(&sandbox, &server);
    let run = crate::runs::hal(&sandbox, &repo, &["help", "run", "outer", "summarise", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "summary: Q1: all good");
    assert_eq!(server.requests().len(), 5);
    let id = run.json()["thread"].as_str().expect("thread").to_owned();
    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let subs: Vec<&Value> = log
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["facts"].as_array()?.iter().find(|f| f[0] == "Hal-Subthread").map(|f| &f[1]))
        .collect();
    assert_eq!(subs.len(), 2, "both calls name the one sub-thread: {log:#}");
    assert_eq!(subs[0], subs[1]);
    // Replayed, the answer goes to the replay's own sub-thread (the recorded call named the original's).
    let replay = sandbox.hal(&repo, &["thread", "replay", &id, "--json"]).ok().json();
    assert_eq!(replay["divergence"], Value::Null, "{replay:#}");
    assert!(replay["notes"].as_array().is_some_and(Vec::is_empty), "every recorded reply was played: {replay:#}");
    assert_eq!(server.requests().len(), 5, "a replay asks no model");
}

#[test]
fn only_a_question_of_this_threads_own_sub_help_can_be_answered() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::from_request(|request| {
            // The thread id of the caller's own thread is in no result yet: answer "a question" on a made-up one.
            let _ = request;
            Scripted::tool("asker", json!({"thread": "0000000000x", "answer": "anything"}))
        }),
        Scripted::from_request(|request| {
            let result = request["messages"].to_string();
            let refused = result.contains("is no thread a call of `asker` on this thread started");
            Scripted::text(if refused { "refused" } else { "answered" })
        }),
    ]);
    let repo = home_with_outer_and_asker(&sandbox, &server);
    let run = crate::runs::hal(&sandbox, &repo, &["help", "run", "outer", "go", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "refused");
}

/// A home repo with the agent `zed` and the help `asker`, and a thread where `asker` ended PENDING (the script's
/// first reply): the repo and the thread.
fn home_with_zed_and_a_question(sandbox: &Sandbox, server: &ScriptedServer) -> (std::path::PathBuf, String) {
    let repo = crate::runs::home_with_model(sandbox, server, "openai");
    crate::runs::commit(
        sandbox,
        &repo,
        &[
            ("agents/zed.yaml", "description: Zed\npersona: ['You are Zed, terse.']\n"),
            ("helps/asker.yaml", "description: Asks\ncommands: [files]\n"),
        ],
    );
    let run = crate::runs::hal(sandbox, &repo, &["help", "run", "asker", "do it", "--json"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let id = run.json()["thread"].as_str().expect("thread").to_owned();
    (repo, id)
}

/// `hal thread say --agent` switches the agent that answers a thread: this message and the next ones are answered
/// with its persona; the message records the switch.
#[test]
fn a_thread_switches_to_another_agent_and_stays_with_it() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::finish("PENDING", "which file?"),
        Scripted::finish("PENDING", "and the format?"),
        Scripted::text("done"),
    ]);
    let (repo, id) = home_with_zed_and_a_question(&sandbox, &server);
    let switched = crate::runs::hal(&sandbox, &repo, &["thread", "say", &id, "--agent", "zed", "a.txt"]);
    assert_eq!(switched.code, 3, "{}{}", switched.stdout, switched.stderr);
    let again = crate::runs::hal(&sandbox, &repo, &["thread", "say", &id, "markdown"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let system = |n: usize| server.requests()[n].body["messages"][0]["content"].to_string();
    assert!(!system(0).contains("You are Zed"), "{}", system(0));
    assert!(system(1).contains("You are Zed"), "the switch: {}", system(1));
    assert!(system(2).contains("You are Zed"), "and after it: {}", system(2));
    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let message = log.as_array().expect("steps").iter().find(|s| s["text"] == "a.txt").expect("the message").clone();
    assert!(message["facts"].to_string().contains(r#"["Hal-Agent","zed"]"#), "{message:#}");
}

/// Two answers to one question in one reply: the first resumes the sub-run, which asks again; the second is not
/// taken for an answer to the new question, which the calling model has not seen.
#[test]
fn a_second_answer_in_the_same_reply_does_not_answer_the_next_question() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::tool("asker", json!({"input": "summarise"})),
        Scripted::finish("PENDING", "which report?"),
        Scripted::from_request(|request| {
            let thread = last_result(request)["thread"].as_str().unwrap_or_default().to_owned();
            Scripted::tools(&[
                ("asker", json!({"thread": thread, "answer": "Q1"})),
                ("asker", json!({"thread": thread, "answer": "markdown"})),
            ])
        }),
        Scripted::finish("PENDING", "and the format?"),
        Scripted::from_request(|request| {
            let messages = request["messages"].to_string();
            let refused = messages.contains("no longer waits on the question you were given");
            Scripted::text(if refused { "second refused" } else { "second taken" })
        }),
    ]);
    let repo = home_with_outer_and_asker(&sandbox, &server);
    let run = crate::runs::hal(&sandbox, &repo, &["help", "run", "outer", "go", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "second refused");
    assert_eq!(server.requests().len(), 5, "the sub-help was resumed once");
}

/// What a sub-help does on its own thread is shown as the calling turn's progress while it waits.
#[test]
fn a_sub_helps_steps_show_as_progress_of_the_calling_turn() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::tool("asker", json!({"input": "write a"})),
        Scripted::tool("files.write", json!({"path": "a.txt", "content": "1"})),
        Scripted::text("wrote a.txt"),
        Scripted::text("done"),
    ]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    crate::runs::commit(
        &sandbox,
        &repo,
        &[
            ("helps/outer.yaml", "description: Delegates\ncommands: [asker]\n"),
            ("helps/asker.yaml", "description: Writes\ncommands: [files]\n"),
        ],
    );
    let run = crate::runs::hal(&sandbox, &repo, &["help", "run", "outer", "go"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let progress: Vec<&str> = run.stderr.lines().filter(|line| line.contains('↳')).collect();
    assert!(progress.iter().any(|line| line.contains("tool: files.write → wrote a.txt")), "{}", run.stderr);
    assert!(progress.iter().any(|line| line.contains("finish: DONE wrote a.txt")), "{}", run.stderr);
}

/// HAL hands a thread to another agent with `threads.switch` (the request rewritten for it): the switch is a step
/// on the thread naming the agent, and the daemon's next turn there is that agent's. An agent there is not is
/// refused, and nothing is written.
#[test]
fn hal_switches_a_thread_to_another_agent_whose_turn_comes_next() {
    let sandbox = Sandbox::new();
    let answer = || {
        Scripted::from_request(|request| {
            let system = request["messages"][0]["content"].as_str().unwrap_or_default();
            let told = request["messages"].to_string();
            match system.contains("You are Zed") {
                true if told.contains("a.txt, in Zed's words") => Scripted::text("done as Zed"),
                true => Scripted::text("Zed did not get the rewritten request"),
                false => Scripted::text("Handed to Zed."),
            }
        })
    };
    let server = ScriptedServer::start(vec![
        Scripted::finish("PENDING", "which file?"),
        Scripted::from_request(|request| {
            let thread = request["messages"].to_string();
            let id =
                thread.split("Give thread ").nth(1).unwrap_or_default().chars().take_while(char::is_ascii_alphanumeric);
            Scripted::tool("threads.switch", json!({"thread": id.collect::<String>(), "agent": "nobody", "text": "x"}))
        }),
        // A backchat stays with HAL.
        Scripted::from_request(|request| {
            let refused = request["messages"].to_string().contains("there is no agent `nobody`");
            let text = if refused { "x" } else { "the refusal did not arrive" };
            Scripted::tool("threads.switch", json!({"thread": "backchat", "agent": "zed", "text": text}))
        }),
        Scripted::from_request(|request| {
            let refused = request["messages"].to_string().contains("is a backchat; a switch is for your own threads");
            let thread = request["messages"].to_string();
            let id: String = thread
                .split("Give thread ")
                .nth(1)
                .unwrap_or_default()
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            let text = if refused { "a.txt, in Zed's words" } else { "the refusal did not arrive" };
            Scripted::tool("threads.switch", json!({"thread": id, "agent": "zed", "text": text}))
        }),
        answer(),
        answer(),
    ]);
    let (repo, id) = home_with_zed_and_a_question(&sandbox, &server);
    let daemon = crate::daemon::DaemonProcess::start(&sandbox, &repo);
    let chat = crate::runs::hal(&sandbox, &repo, &["chat", "-m", &format!("Give thread {id} to Zed")]);
    assert_eq!(chat.code, 0, "{}{}", chat.stdout, chat.stderr);
    let finish = crate::daemon::eventually("Zed's turn", &daemon, || {
        let steps = crate::daemon::steps(&sandbox, &repo, &id);
        steps.last().filter(|s| s["kind"] == "finish" && s["text"] != "which file?").cloned()
    });
    assert_eq!(finish["text"], "done as Zed", "{finish:#}");
    let steps = crate::daemon::steps(&sandbox, &repo, &id);
    let switch: Vec<&Value> = steps.iter().filter(|s| s["kind"] == "message" && s["actor"] == "hal").collect();
    assert_eq!(switch.len(), 1, "one switch written, the refused one nothing: {steps:?}");
    assert!(switch[0]["facts"].to_string().contains(r#"["Hal-Agent","zed"]"#), "{:#}", switch[0]);
    assert_eq!(switch[0]["text"], "a.txt, in Zed's words");
    daemon.stop();
}
