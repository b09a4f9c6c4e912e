//! Talking to the daemon of a home repo over its local HTTP API.

use std::collections::VecDeque;
use std::path::Path;

use hal_model::sse::SseParser;

use crate::error::DaemonError;
use crate::files;
use crate::lock::Holder;
use crate::protocol::{Command, DaemonInfo, Response, StatusReport, ThreadEvent};

/// A connection to a running daemon.
#[derive(Clone)]
pub struct Client {
    info: DaemonInfo,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// The daemon of the repo whose git directory is `common_dir`, or `None` when none runs (a `hal` command
    /// taking turns in its own process serves no API).
    pub fn for_repo(common_dir: &Path) -> Result<Option<Client>, DaemonError> {
        let dir = files::hal_dir(common_dir);
        if crate::lock::holder(&dir)?.is_none_or(|held| held.by == Holder::Command) {
            return Ok(None);
        }
        // The lock is taken before the API listens: wait briefly for a daemon that is still starting.
        let mut info = DaemonInfo::read(&dir);
        for _ in 0..50 {
            if info.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            info = DaemonInfo::read(&dir);
        }
        let info = info?;
        let holder = crate::lock::holder(&dir)?.map(|held| held.pid);
        if holder.as_deref() != Some(info.pid.to_string().as_str()) {
            return Err(DaemonError::InfoFile {
                path: dir.join("daemon.json"),
                reason: format!(
                    "it belongs to another daemon than the one running (pid {}); it is starting or stopping: try again",
                    holder.unwrap_or_default()
                ),
            });
        }
        let token = files::read_token(&dir)?;
        let http = hal_model::http_builder()
            .no_proxy()
            .build()
            .map_err(|e| DaemonError::start("cannot make an HTTP client", e))?;
        Ok(Some(Client { info, token, http }))
    }

    /// What the daemon published about itself.
    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.info.address)
    }

    fn unreachable(&self, reason: impl ToString) -> DaemonError {
        DaemonError::Unreachable { address: self.info.address.clone(), reason: reason.to_string() }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, DaemonError> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(remote_error(&body));
        }
        serde_json::from_slice(&body).map_err(|e| self.unreachable(format!("an answer that is not understood: {e}")))
    }

    /// Send `command`.
    pub async fn command(&self, command: &Command) -> Result<Response, DaemonError> {
        let body =
            serde_json::to_vec(command).map_err(|e| self.unreachable(format!("cannot encode the command: {e}")))?;
        let request = self.http.post(self.url("/v1/command")).header(reqwest::header::CONTENT_TYPE, "application/json");
        self.json(request.body(body)).await
    }

    /// The daemon's state.
    pub async fn status(&self) -> Result<StatusReport, DaemonError> {
        self.json(self.http.get(self.url("/v1/status"))).await
    }

    /// The metrics text.
    pub async fn metrics(&self) -> Result<String, DaemonError> {
        let response = self
            .http
            .get(self.url("/metrics"))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        response.text().await.map_err(|e| self.unreachable(e))
    }

    /// Follow `thread` (id, prefix, branch, or `backchat`: the backchat of `actor`): its new steps (after `after`,
    /// default its tip), streamed text and turn ends. Subscribed when this returns: nothing that happens
    /// afterwards is missed.
    pub async fn follow(&self, thread: &str, after: Option<&str>, actor: &str) -> Result<EventStream, DaemonError> {
        let mut url = reqwest::Url::parse(&self.url("/v1/threads")).map_err(|e| self.unreachable(e))?;
        // The thread may be a branch (`threads/<actor>/<id>`): one path segment, its slashes encoded.
        url.path_segments_mut().map_err(|()| self.unreachable("not a base URL"))?.push(thread).push("events");
        url.query_pairs_mut().append_pair("actor", actor);
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after.trim());
        }
        let response = self.http.get(url).bearer_auth(&self.token).send().await.map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(remote_error(&response.bytes().await.unwrap_or_default()));
        }
        Ok(EventStream {
            response,
            parser: SseParser::new(),
            pending: VecDeque::new(),
            address: self.info.address.clone(),
        })
    }
}

/// The daemon's error answer `body`: its `error` text, else the body as it is.
fn remote_error(body: &[u8]) -> DaemonError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    DaemonError::Remote(message)
}

/// The events of one thread, as they happen.
pub struct EventStream {
    response: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<ThreadEvent>,
    address: String,
}

impl EventStream {
    /// The next event; `None` when the daemon closed the stream (it stopped).
    pub async fn next(&mut self) -> Result<Option<ThreadEvent>, DaemonError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|e| DaemonError::Unreachable { address: self.address.clone(), reason: e.to_string() })?;
            let Some(chunk) = chunk else { return Ok(None) };
            for event in self.parser.feed(&chunk) {
                if event.data.is_empty() {
                    continue;
                }
                match serde_json::from_str(&event.data) {
                    Ok(event) => self.pending.push_back(event),
                    Err(error) => tracing::warn!(target: "hal_daemon", %error, "an event that is not understood"),
                }
            }
        }
    }
}
