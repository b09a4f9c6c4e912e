//! The local HTTP API. Every route needs `Authorization: Bearer <token>` (the token is in `.git/hal/daemon.token`,
//! readable by its owner only).
//!
//! - `GET  /v1/status`: the daemon's state (the same as the `status` command).
//! - `POST /v1/command`: any [`Command`], answered with a [`crate::protocol::Response`]: `list-threads`, `log`,
//!   `new-thread`, `say`, `fork`, `write`, `merge`, `catalogue`, `build-isolates`, `status`, `call-isolate`, `help-tests`,
//!   `replay`. A command that sends a
//!   message takes an `Idempotency-Key` header (or its `idempotency_key` field): sent again with the same key,
//!   it writes and starts nothing and answers what the first did (`"repeated": true`), across restarts.
//! - `GET  /v1/threads`, `POST /v1/threads` (start), `POST /v1/threads/{thread}/messages`,
//!   `POST /v1/threads/{thread}/merge`: the same commands as REST routes.
//! - `GET  /v1/threads/{thread}/events?after=<commit>`: server-sent events: each new `step` (after `after`,
//!   default the current tip), `text` as a model reply streams, `turn-started` and `turn-ended`.
//! - `GET  /metrics`: Prometheus text format.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use gix::ObjectId;
use hal_runner::RunError;
use hal_store::StoreError;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::daemon::Shared;
use crate::error::DaemonError;
use crate::follow::Follower;
use crate::protocol::Command;

/// The largest request body the API takes.
const MAX_BODY: usize = 24 * 1024 * 1024;

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
        // A `write` carries a whole file (a step holds up to 16 MiB; base64 makes that about 22 MiB).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| DaemonError::start("the HTTP API failed", e))
}

/// An API error: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl From<DaemonError> for ApiError {
    fn from(error: DaemonError) -> ApiError {
        let status = match &error {
            DaemonError::Store(StoreError::UnknownThread(_) | StoreError::UnknownRevision { .. })
            | DaemonError::UnknownIsolate { .. }
            | DaemonError::Run(RunError::UnknownHelp { .. } | RunError::UnknownAgent { .. }) => StatusCode::NOT_FOUND,
            DaemonError::Store(
                StoreError::AmbiguousThread { .. }
                | StoreError::InvalidText(_)
                | StoreError::InvalidPath { .. }
                | StoreError::NotAStep { .. },
            ) => StatusCode::BAD_REQUEST,
            DaemonError::Busy(_) | DaemonError::Store(StoreError::Moved { .. }) => StatusCode::CONFLICT,
            DaemonError::NoSandbox(_) => StatusCode::SERVICE_UNAVAILABLE,
            // The turn a message asks for cannot run (no such help or agent, no model): nothing was written.
            DaemonError::Run(_) | DaemonError::KeyWithoutMessage => StatusCode::BAD_REQUEST,
            DaemonError::UnusableIsolate { .. } | DaemonError::BadArguments(_) => StatusCode::BAD_REQUEST,
            // The IETF's idempotency-key draft: a key sent again with a different request is unprocessable.
            DaemonError::KeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
    headers: HeaderMap,
    Json(command): Json<Command>,
) -> Result<HttpResponse, ApiError> {
    let command = with_key(command, &headers)?;
    let response = blocking(move || shared.command(&command)).await?;
    Ok(Json(response).into_response())
}

/// `command` with the request's `Idempotency-Key` header as its idempotency key.
fn with_key(mut command: Command, headers: &HeaderMap) -> Result<Command, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(command) };
    let refused = |why: &str| ApiError(StatusCode::BAD_REQUEST, why.to_owned());
    let key = value.to_str().map_err(|_| refused("the Idempotency-Key header is not visible ASCII"))?.to_owned();
    match &mut command {
        Command::NewThread { idempotency_key, .. } | Command::Say { idempotency_key, .. } => {
            if idempotency_key.as_ref().is_some_and(|given| *given != key) {
                return Err(refused("the body and the Idempotency-Key header name different keys"));
            }
            *idempotency_key = Some(key);
            Ok(command)
        }
        _ => Err(refused("only a command that sends a message takes an Idempotency-Key")),
    }
}

async fn list(auth: Authorized, state: State<Arc<Shared>>) -> Result<HttpResponse, ApiError> {
    command(auth, state, HeaderMap::new(), Json(Command::ListThreads)).await
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
    headers: HeaderMap,
    Json(body): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, headers, Json(command_from("new-thread", body, &[])?)).await
}

/// `POST /v1/threads/{thread}/messages`: the fields of `say`, the thread from the path.
async fn say(
    auth: Authorized,
    state: State<Arc<Shared>>,
    Path(thread): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, headers, Json(command_from("say", body, &[("thread", thread)])?)).await
}

async fn merge(
    auth: Authorized,
    state: State<Arc<Shared>>,
    Path(thread): Path<String>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, HeaderMap::new(), Json(Command::Merge { actor: None, thread })).await
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

async fn events(
    _: Authorized,
    State(shared): State<Arc<Shared>>,
    Path(thread): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let notices = shared.notices.subscribe();
    let actor = query.actor.clone().unwrap_or_else(|| shared.owner.clone());
    let after = match query.after.as_deref() {
        Some(hex) => Some(
            ObjectId::from_hex(hex.as_bytes())
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("after={hex} is not a commit id: {e}")))?,
        ),
        None => None,
    };
    let follower = tokio::task::spawn_blocking(move || Follower::new(shared, notices, &actor, &thread, after))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        let data = serde_json::to_string(&event).unwrap_or_default();
        Some((Ok(SseEvent::default().data(data)), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
