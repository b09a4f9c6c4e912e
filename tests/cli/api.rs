//! The HTTP API as a program meets it: a description generated from the handlers (`GET /v1/openapi.json`, no
//! token needed), one JSON error shape for every refusal, and server-sent events named by their `event:` line,
//! following from any unambiguous commit prefix.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::DaemonProcess;
use crate::support::Sandbox;

/// Send `request` (everything after the request line's target: the HTTP version, headers and body, with `{host}`
/// filled in) to the daemon of `repo`; the whole answer as text, up to `until` in it or the end.
fn raw(repo: &Path, request: &str, until: Option<&str>) -> String {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join(".git/hal/daemon.json")).expect("daemon.json"))
            .expect("json");
    let address = info["address"].as_str().expect("address");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    stream.write_all(request.replace("{host}", address).as_bytes()).expect("send");
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the answer: {e}"),
        }
        if until.is_some_and(|until| String::from_utf8_lossy(&answer).contains(until)) {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code and the JSON body of an answer.
fn parse(answer: &str) -> (u16, Value) {
    let code = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (code, serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}")))
}

#[test]
fn the_api_describes_itself_answers_every_error_in_one_shape_and_names_its_events() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let daemon = DaemonProcess::start(&sandbox, &repo);
    let token = std::fs::read_to_string(repo.join(".git/hal/daemon.token")).expect("token");
    let token = token.trim();

    // The description: no token needed, generated from the handlers, with the body of `POST /v1/command`.
    let (code, description) =
        parse(&raw(&repo, "GET /v1/openapi.json HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", None));
    assert_eq!(code, 200, "{description}");
    assert!(description["openapi"].as_str().expect("version").starts_with("3."), "{description}");
    for path in [
        "/v1/status",
        "/v1/command",
        "/v1/threads",
        "/v1/threads/{thread}/messages",
        "/v1/threads/{thread}/events",
        "/metrics",
    ] {
        assert!(description["paths"].get(path).is_some(), "{path} is described: {}", description["paths"]);
    }
    let body = &description["paths"]["/v1/command"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/Command", "{body}");
    let command = description["components"]["schemas"]["Command"].to_string();
    for name in ["list-threads", "new-thread", "say", "call-isolate", "build-isolates", "replay"] {
        assert!(command.contains(&format!("\"{name}\"")), "the command {name} is described: {command}");
    }
    assert!(description["components"]["securitySchemes"]["token"].is_object(), "{description}");

    // Every refusal is `{"error", "code"}`: no token, no route, no JSON content type, not JSON, not a command.
    let request = |method: &str, path: &str, headers: &str, body: &str| {
        let text = format!(
            "{method} {path} HTTP/1.1\r\nHost: {{host}}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        parse(&raw(&repo, &text, None))
    };
    let auth = format!("Authorization: Bearer {token}\r\n");
    let json = format!("{auth}Content-Type: application/json\r\n");
    let cases = [
        (
            "POST",
            "/v1/command",
            "Content-Type: application/json\r\n".to_owned(),
            r#"{"command": "list-threads"}"#,
            401,
            "unauthorized",
        ),
        ("GET", "/v1/nosuch", auth.clone(), "", 404, "no-route"),
        ("DELETE", "/v1/threads", auth.clone(), "", 405, "wrong-method"),
        ("POST", "/v1/command", auth.clone(), r#"{"command": "list-threads"}"#, 415, "not-json"),
        (
            "POST",
            "/v1/command",
            format!("{auth}Content-Type: text/plain\r\n"),
            r#"{"command": "list-threads"}"#,
            415,
            "not-json",
        ),
        ("POST", "/v1/command", json.clone(), "{not json", 400, "bad-json"),
        ("POST", "/v1/command", json.clone(), r#"{"command": "nosuch"}"#, 422, "bad-body"),
        ("POST", "/v1/command", json.clone(), r#"{"command": "log", "thread": "nosuchthread"}"#, 404, "unknown-thread"),
        ("POST", "/v1/threads", json.clone(), r#"{"words": 1}"#, 422, "bad-body"),
    ];
    for (method, path, headers, body, status, code) in cases {
        let (got, answer) = request(method, path, &headers, body);
        assert_eq!((got, answer["code"].as_str()), (status, Some(code)), "{method} {path} {body}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer}");
    }

    // Events name themselves, and `after` takes a short commit prefix as every other command does.
    let (code, started) = request("POST", "/v1/threads", &json, r#"{"title": "events"}"#);
    assert_eq!(code, 200, "{started}");
    let id = started["thread"]["id"].as_str().expect("id").to_owned();
    let (_, written) = request(
        "POST",
        "/v1/command",
        &json,
        &format!(r#"{{"command": "write", "thread": "{id}", "path": "a.txt", "content": {{"text": "a"}}}}"#),
    );
    let first = started["thread"]["tip"].as_str().expect("tip");
    let target = format!("/v1/threads/{id}/events?after={}", &first[..10]);
    let stream = raw(&repo, &format!("GET {target} HTTP/1.1\r\nHost: {{host}}\r\n{auth}\r\n"), Some("\"a.txt\""));
    assert!(stream.contains("200 OK"), "{stream}");
    let step = stream.lines().position(|l| l == "event: step").expect("an event named step");
    assert!(stream.lines().nth(step + 1).is_some_and(|l| l.starts_with("data: ") && l.contains("a.txt")), "{stream}");
    assert!(written["step"]["commit"].is_string(), "{written}");
    let (code, answer) = request("GET", &format!("/v1/threads/{id}/events?after=zz"), &auth, "");
    assert_eq!((code, answer["code"].as_str()), (404, Some("unknown-revision")), "{answer}");
    assert_eq!(daemon.stop(), 0);
}

/// Prometheus can scrape `/metrics` across daemon restarts: with the scrape token (the value of the secret
/// `metrics.token` names), good for `/metrics` only, or without a token on the loopback port `metrics.listen`
/// names; an address that is not loopback is refused where it is written.
#[test]
fn metrics_are_scraped_with_a_stable_token_or_on_a_loopback_port_and_nothing_else_is() {
    let sandbox = Sandbox::new();
    let server = hal_testmodel::ScriptedServer::start(vec![]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = free.local_addr().expect("address").port();
    drop(free);
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let bad = format!("{settings}metrics:\n  listen: 0.0.0.0:{port}\n");
    crate::runs::commit(&sandbox, &repo, &[("hal.yaml", &bad)]);
    let status = sandbox.hal(&repo, &["status"]).ok().stdout;
    assert!(status.contains("metrics.listen: `0.0.0.0:") && status.contains("not a loopback address"), "{status}");
    let good = format!("{settings}metrics:\n  token: {}\n  listen: 127.0.0.1:{port}\n", crate::runs::KEY_VAR);
    crate::runs::commit(&sandbox, &repo, &[("hal.yaml", &good)]);

    let daemon = DaemonProcess::start(&sandbox, &repo);
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        raw(&repo, &format!("GET {path} HTTP/1.1\r\nHost: {{host}}\r\n{auth}Connection: close\r\n\r\n"), None)
    };
    let scrape = get("/metrics", Some(crate::runs::KEY));
    assert!(scrape.starts_with("HTTP/1.1 200") && scrape.contains("# TYPE"), "{scrape}");
    // OpenMetrics, said so: counters end in _total, the text ends with # EOF.
    let lower = scrape.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/openmetrics-text; version=1.0.0"), "{scrape}");
    assert!(scrape.trim_end().ends_with("# EOF") && scrape.contains("# TYPE hal_reloads counter"), "{scrape}");
    let running = "# HELP hal_turns_running Turns in progress.\n# TYPE hal_turns_running gauge\nhal_turns_running 0\n";
    assert!(scrape.contains(running), "{scrape}");
    let wrong = get("/metrics", Some("not-the-token"));
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let elsewhere = get("/v1/status", Some(crate::runs::KEY));
    assert!(elsewhere.starts_with("HTTP/1.1 401"), "the scrape token is good for /metrics only: {elsewhere}");

    // The loopback port: /metrics without a token, and nothing else.
    let plain_as = |path: &str, host: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics.listen");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    };
    let plain = |path: &str| plain_as(path, &format!("127.0.0.1:{port}"));
    let open = plain("/metrics");
    assert!(open.starts_with("HTTP/1.1 200") && open.contains("# TYPE"), "{open}");
    let other = plain("/v1/status");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    // A web page that rebinds its own name to 127.0.0.1 sends its own name: refused.
    let rebound = plain_as("/metrics", "evil.example:9464");
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert_eq!(daemon.stop(), 0);
}
