//! The halt switch: an owner's signed `hal halt` stops everything from starting, in this process and in a daemon,
//! until `hal resume`; a halt commit nobody trusted signed, or the switch moved back, changes nothing.

use crate::support::{Sandbox, new_thread};

/// The commit message of a halt or resume written by hand (no owner's signature).
fn forged(on: bool) -> String {
    let word = if on { "on" } else { "off" };
    format!("resume: trust me\n\nHal-Halt: {word}\nHal-Actor: alice-example\nHal-After: none\nHal-Signature: AAAA\n")
}

#[test]
fn an_owner_halts_and_nothing_starts_until_they_resume_and_a_forged_or_rewound_resume_changes_nothing() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "work");
    let halted = sandbox.hal(&repo, &["halt", "--reason", "deploy freeze"]).ok();
    assert!(halted.stdout.contains("halted by alice-example: deploy freeze"), "{}", halted.stdout);
    let status = sandbox.hal(&repo, &["status"]).ok().stdout;
    assert!(status.contains("HALTED:   halted by alice-example: deploy freeze"), "{status}");
    let refused = sandbox.hal(&repo, &["thread", "say", &id, "go"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("halted by alice-example: deploy freeze") && refused.stderr.contains("hal resume"));
    let halt = sandbox.git(&repo, &["rev-parse", "refs/hal/halt"]).ok().out().to_owned();
    assert_eq!(sandbox.git(&repo, &["verify-commit", &halt]).code, 0, "HAL signed the halt commit");

    // A resume written by hand on top: not an owner's, so the halt stays.
    let tree = sandbox.git(&repo, &["hash-object", "-w", "-t", "tree", "/dev/null"]).ok().out().to_owned();
    let fake = sandbox.git(&repo, &["commit-tree", &tree, "-p", &halt, "-m", &forged(false)]).ok().out().to_owned();
    sandbox.git(&repo, &["update-ref", "refs/hal/halt", &fake]).ok();
    let status = sandbox.hal(&repo, &["--json", "status"]).ok().json();
    assert_eq!(status["halted"], "halted by alice-example: deploy freeze", "{status:#}");
    assert!(status["warnings"].to_string().contains("is not believed"), "{status:#}");
    sandbox.git(&repo, &["update-ref", "refs/hal/halt", &halt]).ok();

    // The owner resumes: work starts again. Then halts again; the switch put back to the resume does not lift it.
    sandbox.hal(&repo, &["resume"]).ok();
    sandbox.hal(&repo, &["thread", "say", &id, "go"]).ok();
    let resume = sandbox.git(&repo, &["rev-parse", "refs/hal/halt"]).ok().out().to_owned();
    sandbox.hal(&repo, &["halt", "--reason", "again"]).ok();
    sandbox.git(&repo, &["update-ref", "refs/hal/halt", &resume]).ok();
    let status = sandbox.hal(&repo, &["--json", "status"]).ok().json();
    assert_eq!(status["halted"], "halted by alice-example: again", "{status:#}");
    assert!(status["warnings"].to_string().contains("does not follow the halt commit believed last"), "{status:#}");
    let refused = sandbox.hal(&repo, &["thread", "say", &id, "go on"]);
    assert!(refused.stderr.contains("halted by alice-example: again"), "{}", refused.stderr);
}

/// Twenty turns, each held in its first tool call at a loopback server the test answers: the owner halts while all
/// are held, then lets the calls finish. Each turn ends ERROR with the halt's reason before its second call, the
/// model is never asked again, and nothing starts until `hal resume`.
#[test]
fn a_halt_stops_twenty_running_turns_at_their_next_step_and_nothing_starts_until_resume() {
    use std::io::{Read, Write};
    const TURNS: usize = 20;
    let sandbox = Sandbox::new();
    let server = hal_testmodel::ScriptedServer::start(vec![]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    let gate = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    gate.set_nonblocking(true).expect("non-blocking");
    let url = format!("http://{}/gate", gate.local_addr().expect("address"));
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    http:\n      http: [127.0.0.1]\n      limits: {wall_ms: 120000}\n";
    crate::runs::commit(
        &sandbox,
        &repo,
        &[
            ("hal.yaml", &format!("{settings}{grant}")),
            ("helps/worker.yaml", "description: Works\ncommands: [http, files]\n"),
        ],
    );
    let calls = [
        ("http.fetch", serde_json::json!({"url": url, "method": "GET"})),
        ("files.write", serde_json::json!({"path": "after-the-halt.txt", "content": "x"})),
    ];
    server.push((0..TURNS).map(|_| hal_testmodel::Scripted::tools(&calls)));
    let daemon = crate::daemon::DaemonProcess::start(&sandbox, &repo);
    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let mut ids = Vec::new();
    for n in 0..TURNS {
        let body = format!(r#"{{"title": "turn {n}", "help": "worker", "input": "work"}}"#);
        let (code, answer) = crate::daemon::http_with(&repo, "POST", "/v1/threads", Some(token.trim()), &body);
        assert_eq!(code, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
        ids.push(answer["thread"]["id"].as_str().expect("id").to_owned());
    }
    // Every turn is in its first call, held at the gate.
    let mut held = Vec::new();
    while held.len() < TURNS {
        let (mut stream, _) = crate::daemon::eventually("a call at the gate", &daemon, || gate.accept().ok());
        stream.set_nonblocking(false).expect("blocking");
        let mut request = Vec::new();
        let mut byte = [0_u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).expect("read"), 1, "the call hung up");
            request.push(byte[0]);
        }
        held.push(stream);
    }
    assert_eq!(server.requests().len(), TURNS, "each turn asked the model once");

    let halting = std::time::Instant::now();
    sandbox.hal(&repo, &["halt", "--reason", "incident"]).ok();
    let halted = halting.elapsed();
    for mut stream in held {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nopen";
        stream.write_all(answer).expect("answer");
    }
    for id in &ids {
        let steps = crate::daemon::eventually("the turn to end", &daemon, || {
            let steps = crate::daemon::steps(&sandbox, &repo, id);
            (steps.last()?["kind"] == "finish").then_some(steps)
        });
        let last = steps.last().expect("finish");
        assert_eq!((&last["status"], &last["text"]), (&"error".into(), &"halted by alice-example: incident".into()));
        let tools: Vec<&serde_json::Value> = steps.iter().filter(|s| s["kind"] == "tool").collect();
        assert_eq!(tools.len(), 1, "only the call in flight at the halt ran: {steps:#?}");
        let tool = tools[0]["facts"].as_array().into_iter().flatten().find(|f| f[0] == "Hal-Tool");
        assert_eq!(tool.map(|f| &f[1]), Some(&"http.fetch".into()), "{steps:#?}");
    }
    // A measurement for BENCHMARKS.md, not a check: from `hal halt` to the last of the finish steps seen (the
    // calls in flight were let go right after the halt).
    eprintln!(
        "halt: `hal halt` took {} ms; from it to the last of {TURNS} finish steps: {} ms",
        halted.as_millis(),
        halting.elapsed().as_millis()
    );
    assert_eq!(server.requests().len(), TURNS, "no model call started after the halt");
    let refused = sandbox.hal(&repo, &["thread", "say", &ids[0], "go on"]);
    assert!(refused.code != 0 && refused.stderr.contains("halted by alice-example: incident"), "{}", refused.stderr);

    // Resumed, a message is answered again.
    sandbox.hal(&repo, &["resume"]).ok();
    server.push([hal_testmodel::Scripted::text("back at work")]);
    let run = crate::runs::hal(&sandbox, &repo, &["thread", "say", &ids[0], "go on"]).ok();
    assert!(run.stdout.contains("back at work"), "{}", run.stdout);
    assert_eq!(daemon.stop(), 0);
}
