//! The local HTTP API. Every route needs `Authorization: Bearer <token>` (the token is in `.git/hal/daemon.token`,
//! readable by its owner only).
//!
//! - `GET  /v1/status`: the daemon's state.
//! - `POST /v1/command`: any [`Command`], answered with a [`crate::command::Response`].
//! - `GET  /v1/threads`, `POST /v1/threads` (start), `POST /v1/threads/{thread}/messages`,
//!   `POST /v1/threads/{thread}/merge`: the same commands as REST routes.
//! - `GET  /v1/threads/{thread}/events?after=<commit>`: server-sent events: each new `step` (after `after`,
//!   default the current tip), `text` as a model reply streams, `turn-started` and `turn-ended`.
//! - `GET  /metrics`: Prometheus text format.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use gix::ObjectId;
use hal_store::{Step, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::command::Command;
use crate::daemon::{Notice, Shared};
use crate::error::DaemonError;

/// Most steps one catch-up sends; older ones are read with `hal thread log`.
const MAX_CATCH_UP: usize = 1000;

/// Serve the API on `listener` until `stop` resolves.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/command", post(command))
        .route("/v1/threads", get(list).post(start))
        .route("/v1/threads/{thread}/messages", post(say))
        .route("/v1/threads/{thread}/merge", post(merge))
        .route("/v1/threads/{thread}/events", get(events))
        .route("/metrics", get(metrics))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| DaemonError::Other(format!("the HTTP API failed: {e}")))
}

/// An API error: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl From<DaemonError> for ApiError {
    fn from(error: DaemonError) -> ApiError {
        let status = match &error {
            DaemonError::Store(StoreError::UnknownThread(_) | StoreError::UnknownRevision { .. }) => {
                StatusCode::NOT_FOUND
            }
            DaemonError::Store(
                StoreError::AmbiguousThread { .. }
                | StoreError::InvalidText(_)
                | StoreError::InvalidPath { .. }
                | StoreError::NotAStep { .. },
            ) => StatusCode::BAD_REQUEST,
            DaemonError::Busy(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        DaemonError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

/// Proof that the request carried the daemon's token.
struct Authorized;

impl FromRequestParts<Arc<Shared>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Authorized, ApiError> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match given {
            Some(token) if constant_time_eq(token.as_bytes(), shared.token.as_bytes()) => Ok(Authorized),
            _ => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send `Authorization: Bearer <.git/hal/daemon.token>`".to_owned(),
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status(_: Authorized, State(shared): State<Arc<Shared>>) -> Result<HttpResponse, ApiError> {
    let report = blocking(move || shared.status()).await?;
    Ok(Json(report).into_response())
}

async fn command(
    _: Authorized,
    State(shared): State<Arc<Shared>>,
    Json(command): Json<Command>,
) -> Result<HttpResponse, ApiError> {
    let response = blocking(move || shared.command(&command)).await?;
    Ok(Json(response).into_response())
}

async fn list(auth: Authorized, state: State<Arc<Shared>>) -> Result<HttpResponse, ApiError> {
    command(auth, state, Json(Command::ListThreads)).await
}

/// The REST routes' bodies are the fields of the [`Command`] they stand for: `fields`, plus those from the path,
/// read as the command `name`.
fn command_from(name: &str, mut fields: Map<String, Value>, path: &[(&str, String)]) -> Result<Command, ApiError> {
    fields.insert("command".to_owned(), Value::String(name.to_owned()));
    for (key, value) in path {
        fields.insert((*key).to_owned(), Value::String(value.clone()));
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("the body does not fit `{name}`: {e}")))
}

/// `POST /v1/threads`: the fields of `new-thread`.
async fn start(
    auth: Authorized,
    state: State<Arc<Shared>>,
    Json(body): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, Json(command_from("new-thread", body, &[])?)).await
}

/// `POST /v1/threads/{thread}/messages`: the fields of `say`, the thread from the path.
async fn say(
    auth: Authorized,
    state: State<Arc<Shared>>,
    Path(thread): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, Json(command_from("say", body, &[("thread", thread)])?)).await
}

async fn merge(
    auth: Authorized,
    state: State<Arc<Shared>>,
    Path(thread): Path<String>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, Json(Command::Merge { actor: None, thread })).await
}

async fn metrics(_: Authorized, State(shared): State<Arc<Shared>>) -> Result<HttpResponse, ApiError> {
    let text = blocking(move || shared.metrics_text()).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DaemonError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// What the event stream of a thread carries, one JSON object per event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ThreadEvent {
    /// A new step (its machine data left out).
    Step {
        /// The step.
        step: Step,
    },
    /// Text of a model reply streaming in.
    Text {
        /// The new text.
        delta: String,
    },
    /// A turn started.
    TurnStarted {
        /// The help it runs.
        help: String,
        /// The tickets of the messages it answers (see `Response::Said`).
        #[serde(default)]
        tickets: Vec<u64>,
    },
    /// A turn ended.
    TurnEnded {
        /// `DONE`, `PENDING`, `ERROR` or `NOCANDO`.
        status: String,
        /// The result, question or reason.
        output: String,
        /// The tickets of the messages it answered.
        #[serde(default)]
        tickets: Vec<u64>,
    },
}

/// The query of the events route.
#[derive(Deserialize)]
struct EventsQuery {
    /// Send the steps after this commit first.
    #[serde(default)]
    after: Option<String>,
    /// Whose `backchat` (default: the daemon's owner).
    #[serde(default)]
    actor: Option<String>,
}

/// One subscriber's position in a thread.
struct Follower {
    shared: Arc<Shared>,
    notices: broadcast::Receiver<Notice>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    branch: String,
    last: ObjectId,
    out: VecDeque<ThreadEvent>,
}

impl Follower {
    /// Queue the steps committed since the last one sent.
    fn catch_up(&mut self) {
        let (shared, branch, last) = (self.shared.clone(), self.branch.clone(), self.last);
        let read = shared.journal.with(|home| -> hal_store::Result<(ObjectId, Vec<Step>)> {
            let thread = home.resolve_thread(&branch)?;
            let mut steps = Vec::new();
            for step in home.steps_back(&thread).take(MAX_CATCH_UP) {
                let step = step?;
                if step.commit == last {
                    break;
                }
                steps.push(step);
            }
            Ok((thread.tip, steps))
        });
        match read {
            Ok((tip, steps)) => {
                self.last = tip;
                for mut step in steps.into_iter().rev() {
                    step.data = None;
                    self.out.push_back(ThreadEvent::Step { step });
                }
            }
            Err(error) => tracing::warn!(target: "hal_daemon", %branch, %error, "cannot read new steps"),
        }
    }

    async fn next(&mut self) -> Option<ThreadEvent> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Some(event);
            }
            if *self.shutdown.borrow() {
                return None;
            }
            let notice = tokio::select! {
                notice = self.notices.recv() => notice,
                _ = self.shutdown.changed() => return None,
            };
            match notice {
                Ok(Notice::Text { branch, delta }) if branch == self.branch => {
                    self.out.push_back(ThreadEvent::Text { delta });
                }
                Ok(Notice::Tip { branch, .. }) if branch == self.branch => self.catch_up(),
                Ok(Notice::TurnStarted { branch, help, tickets }) if branch == self.branch => {
                    self.out.push_back(ThreadEvent::TurnStarted { help, tickets });
                }
                Ok(Notice::TurnEnded { branch, status, output, tickets }) if branch == self.branch => {
                    self.catch_up();
                    self.out.push_back(ThreadEvent::TurnEnded { status, output, tickets });
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Notices were lost; the commits were not. A turn end that may be among the lost is sent again.
                    tracing::warn!(target: "hal_daemon", branch = %self.branch, missed, "an event stream fell behind");
                    self.catch_up();
                    if !self.shared.is_active(&self.branch)
                        && let Some(Notice::TurnEnded { status, output, tickets, .. }) =
                            self.shared.last_end(&self.branch)
                    {
                        self.out.push_back(ThreadEvent::TurnEnded { status, output, tickets });
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

async fn events(
    _: Authorized,
    State(shared): State<Arc<Shared>>,
    Path(thread): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let notices = shared.notices.subscribe();
    let actor = query.actor.clone().unwrap_or_else(|| shared.owner.clone());
    let journal = shared.journal.clone();
    let target =
        tokio::task::spawn_blocking(move || journal.with(|home| crate::command::thread_of(home, &actor, &thread)))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let last = match query.after.as_deref() {
        Some(hex) => ObjectId::from_hex(hex.as_bytes())
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("after={hex} is not a commit id: {e}")))?,
        None => target.tip,
    };
    let shutdown = shared.shutdown.clone();
    let mut follower = Follower { shared, notices, shutdown, branch: target.branch, last, out: VecDeque::new() };
    follower.catch_up();
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        let data = serde_json::to_string(&event).unwrap_or_default();
        Some((Ok(SseEvent::default().data(data)), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
