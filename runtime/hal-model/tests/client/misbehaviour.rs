//! Servers that misbehave, one test each, against the real client over real HTTP: the exact reason the client
//! gives, whether it retried, and that what it keeps stays within the caps of `ReplyLimits`.

use std::time::Duration;

use hal_model::{Client, ClientOptions, Endpoint, Exchange, ModelError, Provider, ReplyLimits};
use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

use super::{endpoint, quick, request, runtime};

const PROVIDERS: [Provider; 2] = [Provider::OpenAi, Provider::Anthropic];

/// An endpoint of `server` with `limits`.
fn limited(server: &ScriptedServer, provider: Provider, limits: ReplyLimits) -> Endpoint {
    Endpoint { limits, ..endpoint(server, provider) }
}

/// A client that tries twice, quickly.
fn twice() -> Client {
    Client::new(ClientOptions { max_attempts: 2, first_backoff: Duration::from_millis(5), ..ClientOptions::default() })
        .expect("client")
}

fn call(client: &Client, endpoint: &Endpoint) -> Result<Exchange, ModelError> {
    runtime().block_on(client.complete(endpoint, &request(), &mut |_| {}))
}

/// The start every message about the scripted server has.
fn at(server: &ScriptedServer) -> String {
    format!("model `scripted` at {}", server.base_url())
}

#[test]
fn a_reply_cut_by_the_token_limit_says_so_in_its_stop_reason() {
    for (provider, reason) in [(Provider::OpenAi, "length"), (Provider::Anthropic, "max_tokens")] {
        let server = ScriptedServer::start(vec![Scripted::text("The answer is cut sho").truncated()]);
        let exchange = call(&quick(), &endpoint(&server, provider)).expect("a reply");
        assert_eq!(exchange.reply.text, "The answer is cut sho");
        assert_eq!(exchange.reply.stop_reason.as_deref(), Some(reason), "{provider:?}");
    }
}

#[test]
fn an_error_event_in_the_middle_of_the_stream_ends_the_call_with_its_message() {
    for provider in PROVIDERS {
        let server = ScriptedServer::start(vec![Scripted::error_mid_stream("Half an ans", "Overloaded")]);
        let mut shown = String::new();
        let error = runtime()
            .block_on(quick().complete(&endpoint(&server, provider), &request(), &mut |t| shown.push_str(t)))
            .expect_err("an error");
        assert_eq!(
            error.to_string(),
            format!("{} sent a reply HAL cannot read: the server sent an error in the stream: Overloaded", at(&server))
        );
        assert_eq!(shown, "Half an ans", "{provider:?}");
        assert_eq!(server.requests().len(), 1, "text was shown: not retried");
    }
}

/// Regression: a server that sent its headers and then nothing held the call until the run's `max_seconds`.
#[test]
fn stalled_stream_ends_by_idle_timeout() {
    // Long enough that a loaded machine still sends the headers in time (the message depends on it).
    let limits = ReplyLimits { idle: Duration::from_millis(1500), ..ReplyLimits::default() };
    // Silence before any byte of the reply is retried, like a broken connection.
    let server = ScriptedServer::start(vec![Scripted::stall_after_headers(), Scripted::stall_after_headers()]);
    let error = call(&twice(), &limited(&server, Provider::Anthropic, limits)).expect_err("gives up");
    assert_eq!(
        error.to_string(),
        format!(
            "{} still failing after 2 attempts: no byte of the reply came within 1.5 s of its headers \
             (limits.idle_seconds in hal.yaml raises the limit)",
            at(&server)
        )
    );
    assert_eq!(server.requests().len(), 2);

    // Silence in the middle of the reply is not.
    for provider in PROVIDERS {
        let server = ScriptedServer::start(vec![Scripted::stall_mid_stream("I was saying"), Scripted::text("no")]);
        let error = call(&twice(), &limited(&server, provider, limits)).expect_err("stalled");
        assert!(matches!(error, ModelError::Stalled { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "{} stopped sending in the middle of its reply: nothing came for 1.5 s (limits.idle_seconds in \
                 hal.yaml raises the limit)",
                at(&server)
            )
        );
        assert_eq!(server.requests().len(), 1, "{provider:?}: not retried");
    }
}

#[test]
fn a_server_that_does_not_answer_in_time_is_retried_then_reported() {
    let limits = ReplyLimits { idle: Duration::from_millis(1000), ..ReplyLimits::default() };
    let late = || Scripted::text("late").delayed(Duration::from_secs(10));
    let server = ScriptedServer::start(vec![late(), late()]);
    let error = call(&twice(), &limited(&server, Provider::OpenAi, limits)).expect_err("gives up");
    assert_eq!(
        error.to_string(),
        format!(
            "{} still failing after 2 attempts: no answer came within 1 s of the request (limits.idle_seconds in \
             hal.yaml raises the limit)",
            at(&server)
        )
    );
}

#[test]
fn an_html_error_page_is_reported_by_its_title() {
    let page = "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad \
                Gateway</h1></center>\n<hr><center>nginx/1.25.3</center>\n</body>\n</html>\n";
    let server = ScriptedServer::start(vec![Scripted::html(502, page), Scripted::html(502, page)]);
    let error = call(&twice(), &endpoint(&server, Provider::OpenAi)).expect_err("gives up");
    assert_eq!(
        error.to_string(),
        format!("{} still failing after 2 attempts: HTTP 502: 502 Bad Gateway (an HTML page)", at(&server))
    );
}

/// Regression: a server streaming text without end grew the client's memory until the run's `max_seconds`.
#[test]
fn endless_model_stream_is_capped() {
    let limits = ReplyLimits { text_bytes: 64 * 1024, ..ReplyLimits::default() };
    for provider in PROVIDERS {
        let server = ScriptedServer::start(vec![Scripted::endless_text(), Scripted::text("never asked")]);
        let mut shown = 0;
        let error = runtime()
            .block_on(quick().complete(&limited(&server, provider, limits), &request(), &mut |t| shown += t.len()))
            .expect_err("capped");
        assert_eq!(
            error.to_string(),
            format!(
                "{} sent a reply over HAL's limit, so HAL stopped reading it: its text is longer than 64 KiB \
                 (limits.reply.text_kb in hal.yaml raises the limit)",
                at(&server)
            )
        );
        assert!(shown <= 64 * 1024 && shown > 60 * 1024, "{provider:?}: {shown} bytes shown");
        assert_eq!(server.requests().len(), 1, "{provider:?}: not retried");
    }
}

/// Regression: one line without end grew the stream parser's pending line without bound.
#[test]
fn endless_model_line_is_capped() {
    let limits = ReplyLimits { line_bytes: 256 * 1024, ..ReplyLimits::default() };
    for provider in PROVIDERS {
        let server = ScriptedServer::start(vec![Scripted::endless_line(), Scripted::text("never asked")]);
        let error = call(&quick(), &limited(&server, provider, limits)).expect_err("capped");
        assert_eq!(
            error.to_string(),
            format!(
                "{} sent a reply over HAL's limit, so HAL stopped reading it: one line of its event stream is longer \
                 than 256 KiB (limits.reply.line_kb in hal.yaml raises the limit)",
                at(&server)
            )
        );
        assert_eq!(server.requests().len(), 1, "{provider:?}: not retried");
    }
}

#[test]
fn too_many_tool_calls_or_too_long_arguments_end_the_call() {
    let limits = ReplyLimits { tool_calls: 2, arguments_bytes: 1024, ..ReplyLimits::default() };
    for provider in PROVIDERS {
        let three = Scripted::tools(&[("files.read", json!({})), ("files.read", json!({})), ("files.read", json!({}))]);
        let long = Scripted::tool("files.read", json!({"path": "x".repeat(1100)}));
        let server = ScriptedServer::start(vec![three, long]);
        let endpoint = limited(&server, provider, limits);
        let calls = call(&quick(), &endpoint).expect_err("three calls").to_string();
        assert_eq!(
            calls,
            format!(
                "{} sent a reply over HAL's limit, so HAL stopped reading it: it has more than 2 tool calls \
                 (limits.reply.tool_calls in hal.yaml raises the limit)",
                at(&server)
            )
        );
        let arguments = call(&quick(), &endpoint).expect_err("long arguments").to_string();
        assert_eq!(
            arguments,
            format!(
                "{} sent a reply over HAL's limit, so HAL stopped reading it: its tool-call arguments are longer \
                 than 1 KiB in all (limits.reply.arguments_kb in hal.yaml raises the limit)",
                at(&server)
            )
        );
        assert_eq!(server.requests().len(), 2, "{provider:?}: neither is retried");
    }
}

#[test]
fn a_raw_body_past_its_cap_is_not_kept_but_the_reply_is_read_whole() {
    let limits = ReplyLimits { raw_bytes: 4 * 1024, ..ReplyLimits::default() };
    let text = "word ".repeat(2000);
    let server = ScriptedServer::start(vec![Scripted::text(&text), Scripted::text("short")]);
    server.set_piece(50);
    let endpoint = limited(&server, Provider::Anthropic, limits);
    let exchange = call(&quick(), &endpoint).expect("a reply");
    assert_eq!(exchange.reply.text, text);
    assert_eq!(exchange.response_body, None, "past raw_kb the raw body is not kept");
    let exchange = call(&quick(), &endpoint).expect("a reply");
    assert!(exchange.response_body.is_some_and(|raw| raw.len() <= 4 * 1024));
}
