//! A scripted model server for tests.
//!
//! It is a real HTTP server on `127.0.0.1` that answers `POST /v1/chat/completions` (OpenAI-compatible) and
//! `POST /v1/messages` (Anthropic) with the next reply of a script, streamed as server-sent events in small pieces
//! (text and tool-call arguments split across many chunks, as real servers do), and records every request it
//! receives. A test points `hal.yaml` at [`ScriptedServer::base_url`] and runs the real binary against it.
//!
//! It is no friendlier than a real server: each request is checked against the wire format of its path (see
//! `validate.rs`) and a malformed one is answered 400 with the reason, recorded in [`Recorded::rejected`]
//! (and [`ScriptedServer::rejections`]), without using up a scripted reply. Tool calls get ids unique over the
//! server's life (`call_0`, `call_1`, … or `toolu_0`, …, in the order they are sent). And the script can make
//! it misbehave the way real servers do: a reply cut by the token limit ([`Scripted::truncated`]), an error
//! page in HTML ([`Scripted::html`]), an error in the middle of the stream, a stall after the headers or in the
//! middle of the reply, text without end and a line without end ([`Misbehaviour`]). A stalled or endless stream
//! ends when the client goes away or the server stops.
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

mod validate;
mod wire;

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
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::wire::ReplyEvents;

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
        /// Stopped by the token limit: `finish_reason: length` or `stop_reason: max_tokens`.
        truncated: bool,
    },
    /// An HTTP error.
    Status {
        /// The status code.
        code: u16,
        /// A `Retry-After` header value.
        retry_after: Option<String>,
        /// The body.
        body: String,
        /// Its `Content-Type`.
        content_type: String,
    },
    /// A reply made from the request it answers (a test that needs what the run sent, such as a thread id).
    FromRequest(Answerer),
    /// A stream that goes wrong.
    Misbehave(Misbehaviour),
}

/// Makes a scripted answer from the request's JSON body.
#[derive(Clone)]
pub struct Answerer(pub std::sync::Arc<dyn Fn(&Value) -> Scripted + Send + Sync>);

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answerer(..)")
    }
}

impl PartialEq for Answerer {
    fn eq(&self, other: &Answerer) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The ways a scripted stream goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehaviour {
    /// `text` streamed, then an error event (Anthropic `event: error`, an `error` chunk in chat completions).
    ErrorMidStream {
        /// The text before the error.
        text: String,
        /// The error's message.
        message: String,
    },
    /// The headers (200, `text/event-stream`), then nothing.
    StallAfterHeaders,
    /// `text` streamed, then nothing.
    StallMidStream {
        /// The text before the stall.
        text: String,
    },
    /// Text deltas without end, as fast as the client reads them.
    EndlessText,
    /// One `data:` line that never ends, as fast as the client reads it.
    EndlessLine,
}

impl Scripted {
    /// A plain text reply.
    pub fn text(text: &str) -> Scripted {
        Scripted::Reply {
            text: text.to_owned(),
            tool_calls: Vec::new(),
            usage: (10, 5),
            delay: Duration::ZERO,
            truncated: false,
        }
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
            truncated: false,
        }
    }

    /// A reply made by `answer` from the JSON body of the request it answers.
    pub fn from_request(answer: impl Fn(&Value) -> Scripted + Send + Sync + 'static) -> Scripted {
        Scripted::FromRequest(Answerer(std::sync::Arc::new(answer)))
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
            content_type: "application/json".to_owned(),
        }
    }

    /// An HTTP error whose body is an HTML page, as a proxy in front of a model server sends.
    pub fn html(code: u16, page: &str) -> Scripted {
        Scripted::Status {
            code,
            retry_after: None,
            body: page.to_owned(),
            content_type: "text/html; charset=utf-8".to_owned(),
        }
    }

    /// `text`, then an error event in the middle of the stream.
    pub fn error_mid_stream(text: &str, message: &str) -> Scripted {
        Scripted::Misbehave(Misbehaviour::ErrorMidStream { text: text.to_owned(), message: message.to_owned() })
    }

    /// The headers of a stream, then silence.
    pub fn stall_after_headers() -> Scripted {
        Scripted::Misbehave(Misbehaviour::StallAfterHeaders)
    }

    /// `text`, then silence.
    pub fn stall_mid_stream(text: &str) -> Scripted {
        Scripted::Misbehave(Misbehaviour::StallMidStream { text: text.to_owned() })
    }

    /// Text without end.
    pub fn endless_text() -> Scripted {
        Scripted::Misbehave(Misbehaviour::EndlessText)
    }

    /// A line without end.
    pub fn endless_line() -> Scripted {
        Scripted::Misbehave(Misbehaviour::EndlessLine)
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

    /// This reply cut by the token limit (`finish_reason: length`, `stop_reason: max_tokens`).
    pub fn truncated(mut self) -> Scripted {
        if let Scripted::Reply { truncated, .. } = &mut self {
            *truncated = true;
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
    /// Why the request was answered 400 without using up a scripted reply: what is wrong with it.
    pub rejected: Option<String>,
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
    /// The number of the next tool call's id.
    next_call: u64,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every request handler sees.
#[derive(Debug, Clone)]
struct App {
    shared: Arc<Mutex<Shared>>,
    /// Becomes `true` when the server stops: stalled and endless streams end then.
    stopping: watch::Receiver<bool>,
}

/// The running server; it stops when dropped.
#[derive(Debug)]
pub struct ScriptedServer {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stopping: watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Start a server on a free loopback port that answers with `script`, streaming 3-byte pieces.
    ///
    /// # Panics
    /// When no loopback port can be bound (a broken test machine).
    pub fn start(script: Vec<Scripted>) -> ScriptedServer {
        let shared = Arc::new(Mutex::new(Shared { script: script.into(), piece: 3, ..Shared::default() }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stopping, stopping_seen) = watch::channel(false);
        let app = App { shared: shared.clone(), stopping: stopping_seen };
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let router = Router::new()
                    .route("/v1/chat/completions", post(answer))
                    .route("/v1/messages", post(answer))
                    .fallback(post(answer))
                    .with_state(app);
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        ScriptedServer { address, shared, stopping, stop: Some(stop), thread: Some(thread) }
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

    /// Why each malformed request received so far was rejected, in order.
    pub fn rejections(&self) -> Vec<String> {
        lock(&self.shared).requests.iter().filter_map(|r| r.rejected.clone()).collect()
    }

    /// How many scripted replies are left.
    pub fn remaining(&self) -> usize {
        lock(&self.shared).script.len()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        let _ = self.stopping.send(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn answer(State(app): State<App>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let json = serde_json::from_slice::<Value>(&body).ok();
    let request = json.clone().unwrap_or(Value::Null);
    let anthropic = uri.path().ends_with("/messages");
    let rejected = match &json {
        None => Some("the body is not JSON".to_owned()),
        Some(body) if anthropic => validate::anthropic(body).err(),
        Some(body) => validate::openai(body).err(),
    };
    let recorded = Recorded {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: json.unwrap_or(Value::Null),
        rejected: rejected.clone(),
    };
    let (next, piece, first_call) = {
        let mut shared = lock(&app.shared);
        shared.requests.push(recorded);
        if let Some(reason) = rejected {
            drop(shared);
            let error = json!({"type": "invalid_request_error", "message": format!("invalid request: {reason}")});
            let body = if anthropic { json!({"type": "error", "error": error}) } else { json!({"error": error}) };
            return error_response(400, None, "application/json", &body.to_string());
        }
        let next = match shared.script.pop_front() {
            Some(Scripted::FromRequest(Answerer(answer))) => Some(answer(&request)),
            next => next,
        };
        let calls = match &next {
            Some(Scripted::Reply { tool_calls, .. }) => tool_calls.len() as u64,
            _ => 0,
        };
        let first_call = shared.next_call;
        shared.next_call += calls;
        (next, shared.piece, first_call)
    };
    match next {
        Some(Scripted::FromRequest(_)) => error_response(
            400,
            None,
            "application/json",
            &json!({"error": {"message": "a scripted answer made from a request made another such answer"}})
                .to_string(),
        ),
        None => error_response(
            400,
            None,
            "application/json",
            &json!({"error": {"message": "the scripted model has no more replies"}}).to_string(),
        ),
        Some(Scripted::Status { code, retry_after, body, content_type }) => {
            error_response(code, retry_after.as_deref(), &content_type, &body)
        }
        Some(Scripted::Reply { text, tool_calls, usage, delay, truncated }) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let prefix = if anthropic { "toolu" } else { "call" };
            let calls: Vec<(String, String, String)> = tool_calls
                .into_iter()
                .zip(first_call..)
                .map(|((name, arguments), n)| (format!("{prefix}_{n}"), name, arguments))
                .collect();
            let reply = ReplyEvents { text: &text, calls: &calls, usage, truncated, piece };
            let events = if anthropic { wire::anthropic_events(&reply) } else { wire::openai_events(&reply) };
            stream_response(stream::iter(wire::cut(events, piece)).boxed())
        }
        Some(Scripted::Misbehave(misbehaviour)) => {
            stream_response(wire::misbehave(misbehaviour, anthropic, piece, app.stopping))
        }
    }
}

fn stream_response(body: BoxStream<'static, Bytes>) -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body.map(Ok::<Bytes, Infallible>)))
        .unwrap_or_default()
}

fn error_response(code: u16, retry_after: Option<&str>, content_type: &str, body: &str) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type);
    if let Some(value) = retry_after {
        response = response.header("retry-after", value);
    }
    response.body(Body::from(body.to_owned())).unwrap_or_default()
}
