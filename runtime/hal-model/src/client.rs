//! The HTTP client: one request, streamed, retried when the server is busy or briefly broken.

use std::sync::Once;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::endpoint::{Endpoint, Provider};
use crate::error::ModelError;
use crate::sse::SseParser;
use crate::types::{Reply, Request, ToolNames};
use crate::{anthropic, openai};

/// How patient the client is.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the reply's next bytes.
    pub idle_timeout: Duration,
    /// Requests made for one call before giving up on 429, 5xx or broken connections.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, with jitter.
    pub first_backoff: Duration,
    /// Longest wait between two attempts; a `Retry-After` asking for more ends the retries.
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// One completed call, with the exact bytes exchanged.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// What the model answered.
    pub reply: Reply,
    /// The request body sent (the last attempt's).
    pub request_body: Vec<u8>,
    /// The response body received, exactly (for a stream, the event stream as it came).
    pub response_body: Vec<u8>,
    /// From the first request to the end of the reply, retries included.
    pub latency: Duration,
    /// How many requests it took.
    pub attempts: u32,
}

/// A client for both wire formats. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
}

/// The outcome of one attempt.
enum Attempt {
    Done(Reply, Vec<u8>),
    /// Worth another try, after at least this long (from `Retry-After`), for this reason.
    Retry(Option<Duration>, String),
    Fail(ModelError),
}

impl Client {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Client, ModelError> {
        let http = http_builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.idle_timeout)
            .user_agent(concat!("hal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Setup(e.to_string()))?;
        Ok(Client { http, options })
    }

    /// Call `endpoint` with `request`. `on_text` sees the reply's text as it streams in.
    pub async fn complete(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Exchange, ModelError> {
        let names = ToolNames::for_tools(&request.tools);
        let request_body = encode_request(endpoint, request);
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match self.attempt(endpoint, &request_body, &names, on_text).await {
                Attempt::Done(reply, response_body) => {
                    return Ok(Exchange { reply, request_body, response_body, latency: started.elapsed(), attempts });
                }
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(asked, reason) => {
                    let backoff = self.backoff(attempts);
                    let wait = asked.map_or(backoff, |asked| asked.max(backoff / 4));
                    if attempts < self.options.max_attempts && wait <= self.options.max_backoff {
                        tracing::info!(target: "hal_model", model = %endpoint.name, attempts, wait_ms = wait.as_millis() as u64, %reason, "retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    if wait > self.options.max_backoff {
                        format!("{reason}; the server asks to wait {} s, longer than HAL waits", wait.as_secs())
                    } else {
                        reason
                    }
                }
            };
            return Err(ModelError::GaveUp {
                model: endpoint.name.clone(),
                base_url: endpoint.base_url.clone(),
                attempts,
                last,
            });
        }
    }

    /// Exponential backoff with full jitter over the upper half: `first * 2^(n-1)`, between 50% and 100%.
    fn backoff(&self, attempts: u32) -> Duration {
        let exponential = self.options.first_backoff.saturating_mul(1 << attempts.saturating_sub(1).min(16));
        let capped = exponential.min(self.options.max_backoff);
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    async fn attempt(
        &self,
        endpoint: &Endpoint,
        body: &[u8],
        names: &ToolNames,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Attempt {
        let mut http = self
            .http
            .post(endpoint.url())
            .header(CONTENT_TYPE, "application/json")
            .header("accept", "text/event-stream, application/json")
            .body(body.to_vec());
        match (endpoint.provider, endpoint.api_key.as_deref()) {
            (Provider::OpenAi, Some(key)) => http = http.bearer_auth(key),
            (Provider::Anthropic, key) => {
                http = http.header("anthropic-version", anthropic::VERSION);
                if let Some(key) = key {
                    http = http.header("x-api-key", key);
                }
            }
            (Provider::OpenAi, None) => {}
        }
        let response = match http.send().await {
            Ok(response) => response,
            Err(error) => return Attempt::Retry(None, endpoint.scrub(&describe(&error))),
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let detail = endpoint.scrub(&error_detail(response.bytes().await.unwrap_or_default().as_ref()));
            return classify(endpoint, status, retry_after, detail);
        }
        let streamed = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut raw = Vec::new();
        let mut stream = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut decoder = Decoder::new(endpoint.provider);
        let mut shown_any = false;
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(piece) => piece,
                Err(error) => {
                    let reason = endpoint.scrub(&format!("the reply broke off: {}", describe(&error)));
                    return if shown_any {
                        Attempt::Fail(protocol(endpoint, reason))
                    } else {
                        Attempt::Retry(None, reason)
                    };
                }
            };
            raw.extend_from_slice(&piece);
            if !streamed {
                continue;
            }
            for event in parser.feed(&piece) {
                match decoder.event(event.event.as_deref(), &event.data, names) {
                    Ok(text) if !text.is_empty() => {
                        shown_any = true;
                        on_text(&text);
                    }
                    Ok(_) => {}
                    Err(detail) => return Attempt::Fail(protocol(endpoint, endpoint.scrub(&detail))),
                }
            }
        }
        let finished = if streamed {
            if let Some(event) = parser.finish()
                && let Err(detail) = decoder.event(event.event.as_deref(), &event.data, names)
            {
                return Attempt::Fail(protocol(endpoint, endpoint.scrub(&detail)));
            }
            decoder.finish()
        } else {
            let text = String::from_utf8_lossy(&raw).into_owned();
            decoder.whole(&text, names).and_then(|()| decoder.finish()).inspect(|reply| {
                if !reply.text.is_empty() {
                    on_text(&reply.text);
                }
            })
        };
        match finished.map_err(|detail| endpoint.scrub(&detail)) {
            Ok(reply) => Attempt::Done(reply, raw),
            Err(detail) if !shown_any => Attempt::Retry(None, detail),
            Err(detail) => Attempt::Fail(protocol(endpoint, detail)),
        }
    }
}

/// A `reqwest` client builder with TLS ready (HAL uses rustls with the `ring` provider, installed once per
/// process). Every HTTP client in HAL starts here.
pub fn http_builder() -> reqwest::ClientBuilder {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// The exact body [`Client::complete`] sends for `request` to `endpoint`.
pub fn encode_request(endpoint: &Endpoint, request: &Request) -> Vec<u8> {
    let names = ToolNames::for_tools(&request.tools);
    let body = match endpoint.provider {
        Provider::OpenAi => openai::encode(request, &endpoint.model, endpoint.max_output_tokens, &names),
        Provider::Anthropic => anthropic::encode(request, &endpoint.model, endpoint.max_output_tokens, &names),
    };
    body.to_string().into_bytes()
}

/// Either format's decoder.
enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl Decoder {
    fn new(provider: Provider) -> Decoder {
        match provider {
            Provider::OpenAi => Decoder::OpenAi(openai::Decoder::default()),
            Provider::Anthropic => Decoder::Anthropic(anthropic::Decoder::default()),
        }
    }

    fn event(&mut self, name: Option<&str>, data: &str, names: &ToolNames) -> Result<String, String> {
        match self {
            Decoder::OpenAi(decoder) => decoder.chunk(data, names),
            Decoder::Anthropic(decoder) => decoder.event(name, data, names),
        }
    }

    fn whole(&mut self, body: &str, names: &ToolNames) -> Result<(), String> {
        match self {
            Decoder::OpenAi(decoder) => decoder.whole(body, names),
            Decoder::Anthropic(decoder) => decoder.whole(body, names),
        }
    }

    fn finish(self) -> Result<Reply, String> {
        match self {
            Decoder::OpenAi(decoder) => decoder.finish(),
            Decoder::Anthropic(decoder) => decoder.finish(),
        }
    }
}

fn protocol(endpoint: &Endpoint, detail: String) -> ModelError {
    ModelError::Protocol { model: endpoint.name.clone(), base_url: endpoint.base_url.clone(), detail }
}

/// What to do about a non-2xx answer.
fn classify(endpoint: &Endpoint, status: StatusCode, retry_after: Option<Duration>, detail: String) -> Attempt {
    let model = endpoint.name.clone();
    let base_url = endpoint.base_url.clone();
    match status.as_u16() {
        401 | 403 => Attempt::Fail(ModelError::Unauthorized {
            model,
            base_url,
            status: status.as_u16(),
            key_name: endpoint.key_name.clone(),
            detail,
        }),
        404 => Attempt::Fail(ModelError::NotFound { model, base_url, model_id: endpoint.model.clone(), detail }),
        408 | 409 | 425 | 429 | 500..=599 => Attempt::Retry(retry_after, format!("HTTP {}: {detail}", status.as_u16())),
        other => Attempt::Fail(ModelError::Rejected { model, base_url, status: other, detail }),
    }
}

/// `Retry-After` in seconds (HTTP dates are rare from model servers and fall back to the backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// The server's error message from an error body, shortened.
fn error_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let detail = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => json.get("error").map_or_else(|| json.to_string(), openai::error_text),
        Err(_) => text.trim().to_owned(),
    };
    let detail = if detail.is_empty() { "(no details)".to_owned() } else { detail };
    if detail.chars().count() > 300 { format!("{}…", detail.chars().take(300).collect::<String>()) } else { detail }
}

/// A transport error with its causes, on one line.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
