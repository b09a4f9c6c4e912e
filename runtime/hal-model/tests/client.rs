//! The client against the scripted server: real HTTP on loopback, both wire formats, streamed in small pieces.
//! Servers that misbehave (and the caps that keep the client's memory bounded) are in `client/misbehaviour.rs`.

#[path = "client/misbehaviour.rs"]
mod misbehaviour;

use std::time::Duration;

use hal_model::{Client, ClientOptions, Endpoint, Message, ModelError, Provider, ReplyLimits, Request, ToolSpec};
use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

const KEY: &str = "sk-test-5ecret-key-never-shown";

fn endpoint(server: &ScriptedServer, provider: Provider) -> Endpoint {
    Endpoint {
        name: "scripted".into(),
        provider,
        base_url: server.base_url(),
        model: "model-x".into(),
        api_key: Some(KEY.into()),
        key_name: Some("TEST_MODEL_KEY".into()),
        max_output_tokens: Some(256),
        limits: ReplyLimits::default(),
    }
}

fn quick() -> Client {
    Client::new(ClientOptions {
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(3),
        ..ClientOptions::default()
    })
    .expect("client")
}

fn request() -> Request {
    Request {
        system: "You are terse.".into(),
        messages: vec![Message::User { text: "Read notes.txt and summarise it.".into() }],
        tools: vec![ToolSpec {
            name: "files.read".into(),
            description: "Read a file".into(),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        }],
        temperature: Some(0.2),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn both_formats_stream_text_and_split_tool_calls() {
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let long_args = json!({"path": "notes/a very long file name with ünïcode.txt", "limit": 1000});
        let server = ScriptedServer::start(vec![
            Scripted::tools(&[("files.read", long_args.clone()), ("files.read", json!({"path": "b.txt"}))])
                .with_text("Reading both files.")
                .usage(120, 30),
        ]);
        server.set_piece(2);
        let mut shown = String::new();
        let exchange = runtime()
            .block_on(quick().complete(&endpoint(&server, provider), &request(), &mut |t| shown.push_str(t)))
            .expect("a reply");
        let reply = &exchange.reply;
        assert_eq!(reply.text, "Reading both files.", "{provider:?}");
        assert_eq!(shown, reply.text, "streamed text is shown as it comes");
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(reply.tool_calls[0].name, "files.read");
        let args: serde_json::Value = serde_json::from_str(&reply.tool_calls[0].arguments).expect("json args");
        assert_eq!(args, long_args);
        assert_eq!((reply.usage.input, reply.usage.output), (120, 30));
        assert!(exchange.response_body.as_ref().is_some_and(|raw| raw.len() > 500), "the raw stream is kept");
        assert_eq!(exchange.attempts, 1);

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let sent = &requests[0];
        let body: serde_json::Value = serde_json::from_slice(&exchange.request_body).expect("json request");
        assert_eq!(sent.body, body, "the request bytes kept are the ones sent");
        match provider {
            Provider::OpenAi => {
                assert_eq!(sent.path, "/v1/chat/completions");
                assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
                assert_eq!(body["tools"][0]["function"]["name"], "files_read");
            }
            Provider::Anthropic => {
                assert_eq!(sent.path, "/v1/messages");
                assert_eq!(sent.header("x-api-key"), Some(KEY));
                assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(body["tools"][0]["name"], "files_read");
            }
        }
    }
}

#[test]
fn busy_servers_are_retried_honouring_retry_after() {
    let server = ScriptedServer::start(vec![
        Scripted::status(429, "slow down").retry_after("0.3"),
        Scripted::status(503, "overloaded"),
        Scripted::text("finally"),
    ]);
    let started = std::time::Instant::now();
    let exchange = runtime()
        .block_on(quick().complete(&endpoint(&server, Provider::OpenAi), &request(), &mut |_| {}))
        .expect("succeeds on the third attempt");
    assert_eq!(exchange.reply.text, "finally");
    assert_eq!(exchange.attempts, 3);
    assert!(started.elapsed() >= Duration::from_millis(300), "Retry-After was honoured");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn retries_end_with_the_last_failure() {
    let server = ScriptedServer::start((0..3).map(|_| Scripted::status(500, "boom")).collect());
    let client = Client::new(ClientOptions {
        max_attempts: 3,
        first_backoff: Duration::from_millis(5),
        ..ClientOptions::default()
    })
    .expect("client");
    let error = runtime()
        .block_on(client.complete(&endpoint(&server, Provider::Anthropic), &request(), &mut |_| {}))
        .expect_err("gives up");
    assert!(matches!(error, ModelError::GaveUp { attempts: 3, .. }), "{error:?}");
    assert!(error.to_string().contains("HTTP 500: boom"), "{error}");
}

#[test]
fn a_retry_after_longer_than_hal_waits_gives_up_at_once() {
    let server = ScriptedServer::start(vec![Scripted::status(429, "quota").retry_after("3600")]);
    let error = runtime()
        .block_on(quick().complete(&endpoint(&server, Provider::OpenAi), &request(), &mut |_| {}))
        .expect_err("gives up");
    assert!(error.to_string().contains("asks to wait 3600 s"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn unauthorized_and_not_found_name_the_model_and_url_but_never_the_key() {
    let server = ScriptedServer::start(vec![
        Scripted::status(401, &format!("Incorrect API key provided: {KEY}")),
        Scripted::status(404, "The model `model-x` does not exist"),
    ]);
    let endpoint = endpoint(&server, Provider::OpenAi);
    let unauthorized =
        runtime().block_on(quick().complete(&endpoint, &request(), &mut |_| {})).expect_err("401").to_string();
    assert!(unauthorized.contains("`scripted`"), "{unauthorized}");
    assert!(unauthorized.contains(&server.base_url()), "{unauthorized}");
    assert!(unauthorized.contains("TEST_MODEL_KEY"), "names the secret: {unauthorized}");
    assert!(!unauthorized.contains("5ecret"), "never the key: {unauthorized}");
    let not_found =
        runtime().block_on(quick().complete(&endpoint, &request(), &mut |_| {})).expect_err("404").to_string();
    assert!(not_found.contains("model-x") && not_found.contains("404"), "{not_found}");
    assert_eq!(server.requests().len(), 2, "neither is retried");
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let endpoint = Endpoint {
        name: "nowhere".into(),
        provider: Provider::OpenAi,
        base_url: format!("http://127.0.0.1:{port}/v1"),
        model: "m".into(),
        api_key: None,
        key_name: None,
        max_output_tokens: None,
        limits: ReplyLimits::default(),
    };
    let client = Client::new(ClientOptions {
        max_attempts: 2,
        first_backoff: Duration::from_millis(5),
        ..ClientOptions::default()
    })
    .expect("client");
    let error = runtime().block_on(client.complete(&endpoint, &request(), &mut |_| {})).expect_err("no server");
    let text = error.to_string();
    assert!(text.contains("`nowhere`") && text.contains("2 attempts"), "{text}");
}

#[test]
fn tool_call_ids_are_unique_across_replies_and_a_malformed_request_is_rejected_with_its_reason() {
    for (provider, prefix) in [(Provider::OpenAi, "call"), (Provider::Anthropic, "toolu")] {
        let server = ScriptedServer::start(vec![
            Scripted::tool("files.read", json!({"path": "a"})),
            Scripted::tools(&[("files.read", json!({"path": "b"})), ("files.read", json!({"path": "c"}))]),
        ]);
        let endpoint = endpoint(&server, provider);
        let mut ids = Vec::new();
        for _ in 0..2 {
            let exchange = runtime().block_on(quick().complete(&endpoint, &request(), &mut |_| {})).expect("reply");
            ids.extend(exchange.reply.tool_calls.into_iter().map(|call| call.id));
        }
        assert_eq!(ids, [0, 1, 2].map(|n| format!("{prefix}_{n}")));

        // A tool result that answers no call of the message before it: a real server answers 400.
        let mut orphan = request();
        orphan.messages.push(Message::Tool {
            call_id: "nowhere".into(),
            name: "files.read".into(),
            content: "A".into(),
            is_error: false,
        });
        let error = runtime().block_on(quick().complete(&endpoint, &orphan, &mut |_| {})).expect_err("400");
        assert!(matches!(error, ModelError::Rejected { status: 400, .. }), "{error:?}");
        let rejections = server.rejections();
        assert_eq!(rejections.len(), 1, "{rejections:?}");
        assert!(rejections[0].contains("`nowhere`") && error.to_string().contains(&rejections[0]), "{error}");
        assert_eq!(server.remaining(), 0, "a rejected request uses up no scripted reply");
    }
}
