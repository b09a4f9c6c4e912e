//! The local HTTP API. It describes itself at `GET /v1/openapi.json` (generated from the handlers' `utoipa::path`
//! attributes, served without a token); every other route needs `Authorization: Bearer <token>` (the token is
//! in `.git/hal/daemon.token`, readable by its owner only).
//!
//! - `GET  /v1/status`: the daemon's state (the same as the `status` command).
//! - `POST /v1/command`: any [`Command`], answered with a [`crate::protocol::Response`]. A command that sends a
//!   message takes an `Idempotency-Key` header (or its `idempotency_key` field): sent again with the same key,
//!   it writes and starts nothing and answers what the first did (`"repeated": true`), across restarts.
//! - `GET  /v1/threads`, `POST /v1/threads` (start), `POST /v1/threads/{thread}/messages`,
//!   `POST /v1/threads/{thread}/merge`: the same commands as REST routes.
//! - `GET  /v1/threads/{thread}/events?after=<commit>`: server-sent events named by their `event:` line: each
//!   new `step` (after `after`, default the current tip), `text` as a model reply streams, `progress` of the helps
//!   its run called, `turn-started` and `turn-ended`.
//! - `GET  /metrics`: OpenMetrics text (Prometheus reads it).
//!
//! Every error is `{"error": "...", "code": "..."}` ([`ApiError`]), a body included that is not JSON or not sent
//! as `application/json` ([`Body`]), and a route that does not exist.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use futures_util::Stream;
use hal_store::StoreError;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::daemon::Shared;
use crate::error::DaemonError;
use crate::follow::Follower;
use crate::protocol::{Command, Response, StatusReport, ThreadEvent};
use utoipa::OpenApi as _;

/// The largest request body the API takes.
const MAX_BODY: usize = 24 * 1024 * 1024;

/// Serve the API on `listener` until `stop` resolves.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    // The routes and their description come from the same handlers (their `utoipa::path` attributes).
    let (routes, description) = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(utoipa_axum::routes!(status))
        .routes(utoipa_axum::routes!(command))
        .routes(utoipa_axum::routes!(list, start))
        .routes(utoipa_axum::routes!(say))
        .routes(utoipa_axum::routes!(merge))
        .routes(utoipa_axum::routes!(events))
        .routes(utoipa_axum::routes!(metrics))
        .split_for_parts();
    let description = Arc::new(description);
    let app = routes
        // The description holds nothing of the repo: it is served without the token, for tools to read.
        .route("/v1/openapi.json", get(move || std::future::ready(Json(description.as_ref().clone()))))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // A `write` carries a whole file (a step holds up to 16 MiB; base64 makes that about 22 MiB).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| DaemonError::start("the HTTP API failed", e))
}

/// The API's description (OpenAPI 3.1): what the handlers' `utoipa::path` attributes say, with the token.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "HAL daemon API",
        description = "The local HTTP API of `hal daemon`: every route but this description needs \
            `Authorization: Bearer <token>`, the token being in `.git/hal/daemon.token`. Errors are \
            `{\"error\": \"...\", \"code\": \"...\"}`."
    ),
    modifiers(&BearerToken),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The bearer token every route but the description needs.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The content of `.git/hal/daemon.token` (readable by the repo's owner only)."));
        components.add_security_scheme("token", SecurityScheme::Http(bearer.build()));
    }
}

/// The body of every error the API answers.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorBody {
    /// What went wrong, in words for a person.
    error: String,
    /// What went wrong, for a program: `unauthorized`, `unknown-thread`, `busy`, `bad-body`, ...
    code: String,
}

/// An API error: an HTTP status and `{"error": "<what went wrong, in words>", "code": "<kebab-case>"}`, the
/// one shape of every error the API answers (a rejected body, an unknown route and a missing token included).
pub(crate) struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError(status, code, message.into())
    }

    fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message.to_string())
    }
}

impl From<DaemonError> for ApiError {
    fn from(error: DaemonError) -> ApiError {
        let (status, code) = match &error {
            DaemonError::Store(StoreError::UnknownThread(_)) => (StatusCode::NOT_FOUND, "unknown-thread"),
            DaemonError::Store(StoreError::UnknownRevision { .. }) => (StatusCode::NOT_FOUND, "unknown-revision"),
            DaemonError::UnknownIsolate { .. } => (StatusCode::NOT_FOUND, "unknown-isolate"),
            // A message whose turn names a help or agent that is gone is a message that cannot run (400, below);
            // a help asked about by name is a thing not found.
            DaemonError::UnknownHelp(_) => (StatusCode::NOT_FOUND, "unknown-help"),
            DaemonError::Store(StoreError::AmbiguousThread { .. }) => (StatusCode::BAD_REQUEST, "ambiguous-thread"),
            DaemonError::Store(
                StoreError::InvalidText(_) | StoreError::InvalidPath { .. } | StoreError::NotAStep { .. },
            ) => (StatusCode::BAD_REQUEST, "invalid-input"),
            DaemonError::Busy(_) => (StatusCode::CONFLICT, "busy"),
            DaemonError::Store(StoreError::Frozen { .. }) => (StatusCode::CONFLICT, "frozen"),
            DaemonError::Halted(_) => (StatusCode::CONFLICT, "halted"),
            DaemonError::NotOwner(_) => (StatusCode::FORBIDDEN, "not-owner"),
            DaemonError::NotMember(_) => (StatusCode::FORBIDDEN, "not-member"),
            DaemonError::NotFrozen(_) => (StatusCode::CONFLICT, "not-frozen"),
            DaemonError::NoApproval(_) => (StatusCode::CONFLICT, "no-approval"),
            DaemonError::Store(StoreError::Moved { .. }) => (StatusCode::CONFLICT, "moved"),
            DaemonError::NoSandbox(_) => (StatusCode::SERVICE_UNAVAILABLE, "no-sandbox"),
            // The turn a message asks for cannot run (no such help or agent, no model): nothing was written.
            DaemonError::Run(_) => (StatusCode::BAD_REQUEST, "cannot-run"),
            DaemonError::KeyWithoutMessage => (StatusCode::BAD_REQUEST, "key-without-message"),
            DaemonError::UnusableIsolate { .. } => (StatusCode::BAD_REQUEST, "unusable-isolate"),
            DaemonError::BadArguments(_) => (StatusCode::BAD_REQUEST, "bad-arguments"),
            // The IETF's idempotency-key draft: a key sent again with a different request is unprocessable.
            DaemonError::KeyReused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "key-reused"),
            DaemonError::BadSignature(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad-signature"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError(status, code, error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        DaemonError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        (self.0, Json(serde_json::json!({"error": self.2, "code": self.1}))).into_response()
    }
}

/// A JSON request body, refused in the API's error shape: without `Content-Type: application/json` (415: a
/// form a web page can send across origins is never taken for a command), not JSON (400), or not the fields
/// the route takes (422).
pub(crate) struct Body<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Body<T>, ApiError> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-json",
                "send the body as JSON, with `Content-Type: application/json`",
            )),
            Err(JsonRejection::JsonSyntaxError(error)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-json",
                format!("the body is not JSON: {}", error.body_text()),
            )),
            Err(JsonRejection::JsonDataError(error)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-body",
                format!("the body does not fit: {}", error.body_text()),
            )),
            Err(other) => Err(ApiError::new(other.status(), "bad-body", other.body_text())),
        }
    }
}

/// A route the API has, asked with a method it does not take.
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("{} does not take {method} (see GET /v1/openapi.json)", uri.path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "wrong-method", message)
}

/// Any route the API does not have.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no-route", format!("no route {} (see GET /v1/openapi.json)", uri.path()))
}

/// Proof that the request carried the daemon's token.
struct Authorized;

impl FromRequestParts<Arc<Shared>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Authorized, ApiError> {
        match bearer(parts) {
            Some(token) if constant_time_eq(token.as_bytes(), shared.token.as_bytes()) => Ok(Authorized),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong token: send `Authorization: Bearer <.git/hal/daemon.token>`",
            )),
        }
    }
}

/// The token of the request's `Authorization: Bearer <token>` header.
fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[utoipa::path(get, path = "/v1/status", tag = "daemon", security(("token" = [])),
    responses((status = 200, description = "The daemon's state, as the `status` command answers", body = StatusReport),
        (status = 401, description = "No token, or the wrong one", body = ErrorBody)))]
async fn status(_: Authorized, State(shared): State<Arc<Shared>>) -> Result<HttpResponse, ApiError> {
    let report = blocking(move || shared.status()).await?;
    Ok(Json(report).into_response())
}

#[utoipa::path(post, path = "/v1/command", tag = "commands", security(("token" = [])),
    request_body(content = Command, description = "Any command, named by its `command` field: \
        `{\"command\": \"list-threads\"}`, `{\"command\": \"say\", \"thread\": \"backchat\", \"text\": \"hello\"}`"),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "For a command that sends a message: sent again with the same key, it does nothing and answers what the first did")),
    responses((status = 200, description = "What the command did, named by its `result` field", body = Response),
        (status = 400, description = "The command cannot be done as asked (nothing was written)", body = ErrorBody),
        (status = 401, description = "No token, or the wrong one", body = ErrorBody),
        (status = 404, description = "No such thread, commit, help, agent or isolate", body = ErrorBody),
        (status = 409, description = "The thread runs a turn, or moved on", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "The body is not a command, or an idempotency key was reused", body = ErrorBody)))]
async fn command(
    _: Authorized,
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Body(command): Body<Command>,
) -> Result<HttpResponse, ApiError> {
    let command = with_key(command, &headers)?;
    let response = blocking(move || shared.command(&command)).await?;
    Ok(Json(response).into_response())
}

/// `command` with the request's `Idempotency-Key` header as its idempotency key.
fn with_key(mut command: Command, headers: &HeaderMap) -> Result<Command, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(command) };
    let refused = |why: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad-idempotency-key", why);
    let key = value.to_str().map_err(|_| refused("the Idempotency-Key header is not visible ASCII"))?.to_owned();
    match &mut command {
        Command::NewThread { idempotency_key, .. }
        | Command::Say { idempotency_key, .. }
        | Command::CallIsolate { idempotency_key, .. }
        | Command::Replay { idempotency_key, .. } => {
            if idempotency_key.as_ref().is_some_and(|given| *given != key) {
                return Err(refused("the body and the Idempotency-Key header name different keys"));
            }
            *idempotency_key = Some(key);
            Ok(command)
        }
        _ => Err(refused("only a command that sends a message, calls an isolate or replays takes an Idempotency-Key")),
    }
}

#[utoipa::path(get, path = "/v1/threads", tag = "threads", security(("token" = [])),
    responses((status = 200, description = "The `threads` result of `list-threads`", body = Response),
        (status = 401, description = "No token, or the wrong one", body = ErrorBody)))]
async fn list(auth: Authorized, state: State<Arc<Shared>>) -> Result<HttpResponse, ApiError> {
    command(auth, state, HeaderMap::new(), Body(Command::ListThreads)).await
}

/// The REST routes' bodies are the fields of the [`Command`] they stand for: `fields`, plus those from the path,
/// read as the command `name`.
fn command_from(name: &str, mut fields: Map<String, Value>, path: &[(&str, String)]) -> Result<Command, ApiError> {
    fields.insert("command".to_owned(), Value::String(name.to_owned()));
    for (key, value) in path {
        fields.insert((*key).to_owned(), Value::String(value.clone()));
    }
    serde_json::from_value(Value::Object(fields)).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-body", format!("the body does not fit `{name}`: {e}"))
    })
}

/// `POST /v1/threads`: the fields of `new-thread`.
#[utoipa::path(post, path = "/v1/threads", tag = "threads", security(("token" = [])),
    request_body(content = Object, description = "The fields of `new-thread`: `title`, `from`, `help`, `agent`, `input`"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to send again")),
    responses((status = 200, description = "The `started` result of `new-thread`", body = Response),
        (status = 400, description = "The turn its input asks for cannot run", body = ErrorBody),
        (status = 422, description = "The body does not fit `new-thread`", body = ErrorBody)))]
async fn start(
    auth: Authorized,
    state: State<Arc<Shared>>,
    headers: HeaderMap,
    Body(body): Body<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, headers, Body(command_from("new-thread", body, &[])?)).await
}

/// `POST /v1/threads/{thread}/messages`: the fields of `say`, the thread from the path.
#[utoipa::path(post, path = "/v1/threads/{thread}/messages", tag = "threads", security(("token" = [])),
    params(("thread" = String, Path, description = "Thread id, unique prefix or branch; `backchat` for yours"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to send again")),
    request_body(content = Object, description = "The fields of `say`: `text`, and `help`, `agent`"),
    responses((status = 200, description = "The `said` result of `say`", body = Response),
        (status = 404, description = "No such thread", body = ErrorBody),
        (status = 422, description = "The body does not fit `say`", body = ErrorBody)))]
async fn say(
    auth: Authorized,
    state: State<Arc<Shared>>,
    Path(thread): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, headers, Body(command_from("say", body, &[("thread", thread)])?)).await
}

/// `POST /v1/threads/{thread}/merge`: a merge without a signature, which only a repo whose `hal.yaml` names no
/// owners takes; otherwise send `merge` with the owner's `signature` to `POST /v1/command`.
#[utoipa::path(post, path = "/v1/threads/{thread}/merge", tag = "threads", security(("token" = [])),
    params(("thread" = String, Path, description = "Thread id, unique prefix or branch. Once hal.yaml names owners, \
        a merge needs an owner's signature: send `merge` with `signature` to POST /v1/command instead")),
    responses((status = 200, description = "The `merged` result of `merge`", body = Response),
        (status = 404, description = "No such thread", body = ErrorBody),
        (status = 409, description = "The thread runs a turn", body = ErrorBody)))]
async fn merge(
    auth: Authorized,
    state: State<Arc<Shared>>,
    Path(thread): Path<String>,
) -> Result<HttpResponse, ApiError> {
    command(auth, state, HeaderMap::new(), Body(Command::Merge { actor: None, thread, signature: None })).await
}

#[utoipa::path(get, path = "/metrics", tag = "daemon", security(("token" = [])),
    responses((status = 200, description = "Prometheus text format. Besides the daemon's token, the value of the \
        secret `metrics.token` in hal.yaml names is taken here (and nowhere else); `metrics.listen` serves this \
        route without a token on a loopback address", content_type = "text/plain", body = String)))]
async fn metrics(_: Scraper, State(shared): State<Arc<Shared>>) -> Result<HttpResponse, ApiError> {
    metrics_text(shared).await
}

/// The OpenMetrics text of `shared`'s metrics.
async fn metrics_text(shared: Arc<Shared>) -> Result<HttpResponse, ApiError> {
    let text = blocking(move || shared.metrics_text()).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Serve `/metrics` alone, without a token, on `listener` (a loopback address `metrics.listen` in `hal.yaml`
/// names), until `stop` resolves.
pub(crate) async fn serve_metrics(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let app = axum::Router::new()
        .route("/metrics", get(|_: LoopbackHost, State(shared): State<Arc<Shared>>| metrics_text(shared)))
        .fallback(no_route)
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| DaemonError::start("the metrics listener failed", e))
}

/// Proof that a request to the metrics listener names a loopback host: a web page the browser was tricked into
/// sending to this port (DNS rebinding) names its own.
struct LoopbackHost;

impl<S: Send + Sync> FromRequestParts<S> for LoopbackHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<LoopbackHost, ApiError> {
        let host = parts.headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        match name {
            "127.0.0.1" | "localhost" | "::1" => Ok(LoopbackHost),
            _ => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "not-loopback", format!("host {host:?} is not this machine")))
            }
        }
    }
}

/// Proof that a request for `/metrics` carried the daemon's token, or the scrape token: the value of the secret
/// `metrics.token` in `hal.yaml` names, which is good for nothing else.
struct Scraper;

impl FromRequestParts<Arc<Shared>> for Scraper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Scraper, ApiError> {
        let Err(refused) = Authorized::from_request_parts(parts, shared).await else { return Ok(Scraper) };
        // Nothing is looked up for a request that brings no token.
        let Some(given) = bearer(parts).filter(|given| !given.is_empty()) else { return Err(refused) };
        let secret = shared.loaded().runner.catalog().settings.metrics.token.clone();
        let expected = secret.and_then(|name| (shared.secrets)(&name)).filter(|value| !value.is_empty());
        match expected {
            Some(expected) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(Scraper),
            _ => Err(refused),
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DaemonError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?.map_err(ApiError::from)
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

#[utoipa::path(get, path = "/v1/threads/{thread}/events", tag = "threads", security(("token" = [])),
    params(("thread" = String, Path, description = "Thread id, unique prefix or branch; `backchat` for yours"),
        ("after" = Option<String>, Query, description = "Send the steps after this commit (an id or unique prefix) first; default: the tip"),
        ("actor" = Option<String>, Query, description = "Whose `backchat` (default: the daemon's owner)")),
    responses((status = 200, description = "Server-sent events, one `ThreadEvent` as JSON per event, named by its \
        `event:` line (`step`, `text`, `progress`, `turn-started`, `turn-ended`)", content_type = "text/event-stream", body = ThreadEvent),
        (status = 404, description = "No such thread or commit", body = ErrorBody)))]
async fn events(
    _: Authorized,
    State(shared): State<Arc<Shared>>,
    Path(thread): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let notices = shared.notices.subscribe();
    let actor = query.actor.clone().unwrap_or_else(|| shared.owner.clone());
    // A commit id or any unambiguous prefix of one, as every other command takes.
    let after = query.after.clone();
    let follower = tokio::task::spawn_blocking(move || {
        // A whole id is taken as it is (the null id asks for every step from the first).
        let resolve = |spec: String| match gix::ObjectId::from_hex(spec.as_bytes()) {
            Ok(id) => Ok(id),
            Err(_) => shared.journal.handle().resolve_commit(&spec),
        };
        let after = after.map(resolve).transpose()?;
        Follower::new(shared, notices, &actor, &thread, after)
    })
    .await
    .map_err(ApiError::internal)??;
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        let data = serde_json::to_string(&event).unwrap_or_default();
        Some((Ok(SseEvent::default().event(event.name()).data(data)), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
