//! The HTTP client: one request, streamed, retried when the server is busy or briefly broken.
//!
//! What is retried: 408, 409, 425, 429 and 5xx answers, a connection that fails or breaks before any text was
//! shown, and silence before any byte of the reply (see [`crate::ReplyLimits`]). What is not: other 4xx
//! answers, a reply over one of the caps, silence in the middle of a reply, and a reply that breaks after its
//! text started to show (a retry would show it twice).

use std::sync::Once;
use std::time::{Duration, Instant};

use crate::attempt::{Attempt, attempt};
use crate::endpoint::{Endpoint, Provider};
use crate::error::ModelError;
use crate::types::{Reply, Request, ToolNames};
use crate::{anthropic, openai};

/// How patient the client is.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to open a connection (default 10 s). The longest silence while waiting for a reply is the
    /// endpoint's [`crate::ReplyLimits::idle`].
    pub connect_timeout: Duration,
    /// Requests made for one call before giving up on 429, 5xx or broken connections (default 5).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, with jitter (default 500 ms).
    pub first_backoff: Duration,
    /// Longest wait between two attempts; a `Retry-After` asking for more ends the retries (default 60 s).
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
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
    /// The response body received, exactly (for a stream, the event stream as it came); `None` when it was
    /// longer than the endpoint's [`crate::ReplyLimits::raw_bytes`] (the reply itself was read whole).
    pub response_body: Option<Vec<u8>>,
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

impl Client {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Client, ModelError> {
        let http = http_builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("hal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Setup(e.to_string()))?;
        Ok(Client { http, options })
    }

    /// Call `endpoint` with `request`. `on_text` sees the reply's text as it streams in. The reply is read
    /// within the endpoint's [`crate::ReplyLimits`]. Cancel-safe: dropping the future drops the connection.
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
            let last = match attempt(&self.http, endpoint, &request_body, &names, on_text).await {
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
