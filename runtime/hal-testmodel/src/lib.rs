//! A scripted model server for tests.
//!
//! It is a real HTTP server on `127.0.0.1` that answers `POST /v1/chat/completions` (OpenAI-compatible) and
//! `POST /v1/messages` (Anthropic) with the next reply of a script, streamed as server-sent events in small pieces
//! (text and tool-call arguments split across many chunks, as real servers do), and records every request it
//! receives. A test points `hal.yaml` at [`ScriptedServer::base_url`] and runs the real binary against it.
//!
//! ```
//! use hal_testmodel::{Scripted, ScriptedServer};
//! let server = ScriptedServer::start(vec![
//!     Scripted::tool("files.read", serde_json::json!({"path": "notes.txt"})),
//!     Scripted::text("The notes say hello."),
//! ]);
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(server.requests().len(), 0);
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// A model reply.
    Reply {
        /// Its text.
        text: String,
        /// Its tool calls: (name, arguments exactly as they will be streamed).
        tool_calls: Vec<(String, String)>,
        /// Tokens (in, out) reported in the usage block.
        usage: (u64, u64),
        /// Wait this long before answering.
        delay: Duration,
    },
    /// An HTTP error.
    Status {
        /// The status code.
        code: u16,
        /// A `Retry-After` header value.
        retry_after: Option<String>,
        /// The body (JSON error object).
        body: String,
    },
}

impl Scripted {
    /// A plain text reply.
    pub fn text(text: &str) -> Scripted {
        Scripted::Reply { text: text.to_owned(), tool_calls: Vec::new(), usage: (10, 5), delay: Duration::ZERO }
    }

    /// A reply that calls one tool with `arguments`.
    pub fn tool(name: &str, arguments: Value) -> Scripted {
        Scripted::tools(&[(name, arguments)])
    }

    /// A reply that calls several tools.
    pub fn tools(calls: &[(&str, Value)]) -> Scripted {
        Scripted::Reply {
            text: String::new(),
            tool_calls: calls.iter().map(|(name, args)| ((*name).to_owned(), args.to_string())).collect(),
            usage: (10, 5),
            delay: Duration::ZERO,
        }
    }

    /// A reply calling `finish` with a status and output.
    pub fn finish(status: &str, output: &str) -> Scripted {
        Scripted::tool("finish", json!({"status": status, "output": output}))
    }

    /// An HTTP error with a JSON error body.
    pub fn status(code: u16, message: &str) -> Scripted {
        Scripted::Status {
            code,
            retry_after: None,
            body: json!({"error": {"message": message, "type": "scripted"}}).to_string(),
        }
    }

    /// This error with a `Retry-After` header.
    pub fn retry_after(mut self, value: &str) -> Scripted {
        if let Scripted::Status { retry_after, .. } = &mut self {
            *retry_after = Some(value.to_owned());
        }
        self
    }

    /// This reply with text as well (before its tool calls).
    pub fn with_text(mut self, value: &str) -> Scripted {
        if let Scripted::Reply { text, .. } = &mut self {
            value.clone_into(text);
        }
        self
    }

    /// This reply reporting `input` and `output` tokens.
    pub fn usage(mut self, input: u64, output: u64) -> Scripted {
        if let Scripted::Reply { usage, .. } = &mut self {
            *usage = (input, output);
        }
        self
    }

    /// This reply sent after `delay`.
    pub fn delayed(mut self, wait: Duration) -> Scripted {
        if let Scripted::Reply { delay, .. } = &mut self {
            *delay = wait;
        }
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The path, e.g. `/v1/messages`.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`null` when it was not JSON).
    pub body: Value,
}

impl Recorded {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Shared {
    script: std::collections::VecDeque<Scripted>,
    requests: Vec<Recorded>,
    piece: usize,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running server; it stops when dropped.
#[derive(Debug)]
pub struct ScriptedServer {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Start a server on a free loopback port that answers with `script`, streaming 3-byte pieces.
    ///
    /// # Panics
    /// When no loopback port can be bound (a broken test machine).
    pub fn start(script: Vec<Scripted>) -> ScriptedServer {
        let shared = Arc::new(Mutex::new(Shared { script: script.into(), requests: Vec::new(), piece: 3 }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = Router::new()
                    .route("/v1/chat/completions", post(answer))
                    .route("/v1/messages", post(answer))
                    .fallback(post(answer))
                    .with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        ScriptedServer { address, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// The base URL to put in `hal.yaml` (`http://127.0.0.1:<port>/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Stream pieces of `bytes` characters (default 3).
    pub fn set_piece(&self, bytes: usize) {
        lock(&self.shared).piece = bytes.max(1);
    }

    /// Add replies to the end of the script.
    pub fn push(&self, replies: impl IntoIterator<Item = Scripted>) {
        lock(&self.shared).script.extend(replies);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    /// How many scripted replies are left.
    pub fn remaining(&self) -> usize {
        lock(&self.shared).script.len()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn answer(State(shared): State<Arc<Mutex<Shared>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let recorded = Recorded {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let anthropic = recorded.path.ends_with("/messages");
    let (next, piece) = {
        let mut shared = lock(&shared);
        shared.requests.push(recorded);
        (shared.script.pop_front(), shared.piece)
    };
    match next {
        None => error_response(
            400,
            None,
            &json!({"error": {"message": "the scripted model has no more replies"}}).to_string(),
        ),
        Some(Scripted::Status { code, retry_after, body }) => error_response(code, retry_after.as_deref(), &body),
        Some(Scripted::Reply { text, tool_calls, usage, delay }) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let events = if anthropic {
                anthropic_events(&text, &tool_calls, usage, piece)
            } else {
                openai_events(&text, &tool_calls, usage, piece)
            };
            // Every event is sent as its own piece of the body, and long events are cut further.
            let mut chunks: Vec<Result<Bytes, Infallible>> = Vec::new();
            for event in events {
                let bytes = event.into_bytes();
                for part in bytes.chunks(piece.max(16) * 4) {
                    chunks.push(Ok(Bytes::copy_from_slice(part)));
                }
            }
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap_or_default()
        }
    }
}

fn error_response(code: u16, retry_after: Option<&str>, body: &str) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    if let Some(value) = retry_after {
        response = response.header("retry-after", value);
    }
    response.body(Body::from(body.to_owned())).unwrap_or_default()
}

/// `text` cut into pieces of at most `size` characters.
fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size.max(1)).map(|c| c.iter().collect()).collect()
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn openai_events(text: &str, calls: &[(String, String)], usage: (u64, u64), piece: usize) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        sse(
            None,
            &json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for part in pieces(text, piece) {
        events.push(chunk(json!({"content": part}), Value::Null));
    }
    for (index, (name, arguments)) in calls.iter().enumerate() {
        events.push(chunk(
            json!({"tool_calls": [{"index": index, "id": format!("call_{index}"), "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for part in pieces(arguments, piece) {
            events.push(chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}), Value::Null));
        }
    }
    let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
    events.push(chunk(json!({}), json!(finish)));
    events.push(sse(
        None,
        &json!({"id": "chatcmpl-scripted", "model": "scripted", "choices": [],
            "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}}),
    ));
    events.push("data: [DONE]\n\n".to_owned());
    events
}

fn anthropic_events(text: &str, calls: &[(String, String)], usage: (u64, u64), piece: usize) -> Vec<String> {
    let mut events = vec![sse(
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": "msg_scripted", "type": "message", "role": "assistant",
            "model": "scripted", "content": [], "usage": {"input_tokens": usage.0, "output_tokens": 1}}}),
    )];
    let mut index = 0;
    if !text.is_empty() {
        events.push(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        events.push(sse(Some("ping"), &json!({"type": "ping"})));
        for part in pieces(text, piece) {
            events.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": part}}),
            ));
        }
        events.push(sse(Some("content_block_stop"), &json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    for (n, (name, arguments)) in calls.iter().enumerate() {
        events.push(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": format!("toolu_{n}"), "name": name, "input": {}}}),
        ));
        for part in pieces(arguments, piece) {
            events.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        events.push(sse(Some("content_block_stop"), &json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    let stop = if calls.is_empty() { "end_turn" } else { "tool_use" };
    events.push(sse(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": usage.1}}),
    ));
    events.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
    events
}
