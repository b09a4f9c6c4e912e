//! One request and its answer, read within the caps of [`ReplyLimits`]: every wait for the server is bounded by
//! the idle time, and every part of the answer kept is bounded in size.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::endpoint::{Endpoint, Provider};
use crate::error::ModelError;
use crate::limits::{Caps, DecodeError, Overflow, ReplyLimits, seconds};
use crate::sse::SseParser;
use crate::types::{Reply, ToolNames};
use crate::{anthropic, openai};

/// The most of an error answer's body read: its message is shortened to 300 characters anyway.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The outcome of one attempt.
pub(crate) enum Attempt {
    /// The reply, and the raw body when it was no longer than `limits.reply.raw_kb`.
    Done(Reply, Option<Vec<u8>>),
    /// Worth another try, after at least this long (from `Retry-After`), for this reason.
    Retry(Option<Duration>, String),
    Fail(ModelError),
}

/// Send `body` to `endpoint` once and read the answer. Cancel-safe: dropping the future drops the connection.
pub(crate) async fn attempt(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    body: &[u8],
    names: &ToolNames,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Attempt {
    let limits = endpoint.limits;
    let mut request = http
        .post(endpoint.url())
        .header(CONTENT_TYPE, "application/json")
        .header("accept", "text/event-stream, application/json")
        .body(body.to_vec());
    match (endpoint.provider, endpoint.api_key.as_deref()) {
        (Provider::OpenAi, Some(key)) => request = request.bearer_auth(key),
        (Provider::Anthropic, key) => {
            request = request.header("anthropic-version", anthropic::VERSION);
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
        }
        (Provider::OpenAi, None) => {}
    }
    let response = match tokio::time::timeout(limits.idle, request.send()).await {
        Err(_) => {
            return Attempt::Retry(
                None,
                format!(
                    "no answer came within {} s of the request (limits.idle_seconds in hal.yaml raises the limit)",
                    seconds(limits.idle)
                ),
            );
        }
        Ok(Err(error)) => return Attempt::Retry(None, endpoint.scrub(&describe(&error))),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after(response.headers());
        let body = error_body(response, limits.idle).await;
        let detail = endpoint.scrub(&error_detail(&body));
        return classify(endpoint, status, retry_after, detail);
    }
    let streamed = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut read = Read::new(endpoint, names, on_text);
    let mut stream = response.bytes_stream();
    loop {
        let piece = match tokio::time::timeout(limits.idle, stream.next()).await {
            Err(_) if read.received => {
                return Attempt::Fail(ModelError::Stalled {
                    model: endpoint.name.clone(),
                    base_url: endpoint.base_url.clone(),
                    idle: limits.idle,
                });
            }
            Err(_) => {
                return Attempt::Retry(
                    None,
                    format!(
                        "no byte of the reply came within {} s of its headers (limits.idle_seconds in hal.yaml \
                         raises the limit)",
                        seconds(limits.idle)
                    ),
                );
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                let reason = endpoint.scrub(&format!("the reply broke off: {}", describe(&error)));
                return if read.shown_any {
                    Attempt::Fail(protocol(endpoint, reason))
                } else {
                    Attempt::Retry(None, reason)
                };
            }
            Ok(Some(Ok(piece))) => piece,
        };
        let fed = if streamed { read.stream_piece(&piece) } else { read.body_piece(&piece) };
        if let Err(error) = fed {
            return Attempt::Fail(error);
        }
    }
    read.finish(streamed)
}

/// What one attempt has read so far.
struct Read<'a> {
    endpoint: &'a Endpoint,
    names: &'a ToolNames,
    on_text: &'a mut (dyn FnMut(&str) + Send),
    limits: ReplyLimits,
    /// The raw stream as it came, until it passes `limits.raw_bytes` (then `None`).
    raw: Option<Vec<u8>>,
    /// The body of an answer that is not streamed (it is read whole).
    body: Vec<u8>,
    parser: SseParser,
    decoder: Decoder,
    /// A byte of the body came.
    received: bool,
    /// Text was passed to `on_text` (so a retry would show it twice).
    shown_any: bool,
}

impl<'a> Read<'a> {
    fn new(endpoint: &'a Endpoint, names: &'a ToolNames, on_text: &'a mut (dyn FnMut(&str) + Send)) -> Read<'a> {
        let limits = endpoint.limits;
        Read {
            endpoint,
            names,
            on_text,
            limits,
            raw: Some(Vec::new()),
            body: Vec::new(),
            parser: SseParser::with_limit(limits.line_bytes),
            decoder: Decoder::new(endpoint.provider, Caps::new(limits)),
            received: false,
            shown_any: false,
        }
    }

    /// The next piece of an event stream.
    fn stream_piece(&mut self, piece: &[u8]) -> Result<(), ModelError> {
        self.received |= !piece.is_empty();
        if let Some(raw) = &mut self.raw {
            if raw.len() + piece.len() > self.limits.raw_bytes {
                tracing::debug!(target: "hal_model", model = %self.endpoint.name, limit = self.limits.raw_bytes, "the raw reply is too long to keep");
                self.raw = None;
            } else {
                raw.extend_from_slice(piece);
            }
        }
        let events = self
            .parser
            .try_feed(piece)
            .map_err(|_| too_large(self.endpoint, Overflow::Line { limit: self.limits.line_bytes }))?;
        for event in events {
            let text = self
                .decoder
                .event(event.event.as_deref(), &event.data, self.names)
                .map_err(|error| decode_failure(self.endpoint, error))?;
            if !text.is_empty() {
                self.shown_any = true;
                (self.on_text)(&text);
            }
        }
        Ok(())
    }

    /// The next piece of an answer that is not streamed.
    fn body_piece(&mut self, piece: &[u8]) -> Result<(), ModelError> {
        self.received |= !piece.is_empty();
        if self.body.len() + piece.len() > self.limits.line_bytes {
            return Err(too_large(self.endpoint, Overflow::Body { limit: self.limits.line_bytes }));
        }
        self.body.extend_from_slice(piece);
        Ok(())
    }

    /// The answer ended.
    fn finish(mut self, streamed: bool) -> Attempt {
        let endpoint = self.endpoint;
        let finished = if streamed {
            if let Some(event) = self.parser.finish()
                && let Err(error) = self.decoder.event(event.event.as_deref(), &event.data, self.names)
            {
                return Attempt::Fail(decode_failure(endpoint, error));
            }
            self.decoder.finish()
        } else {
            let text = String::from_utf8_lossy(&self.body).into_owned();
            let finished = self.decoder.whole(&text, self.names).and_then(|()| self.decoder.finish());
            if let Ok(reply) = &finished
                && !reply.text.is_empty()
            {
                (self.on_text)(&reply.text);
            }
            self.raw = (self.body.len() <= self.limits.raw_bytes).then_some(self.body);
            finished
        };
        match finished {
            Ok(reply) => Attempt::Done(reply, self.raw),
            Err(DecodeError::Protocol(detail)) if !self.shown_any => Attempt::Retry(None, endpoint.scrub(&detail)),
            Err(error) => Attempt::Fail(decode_failure(endpoint, error)),
        }
    }
}

/// Either format's decoder.
enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl Decoder {
    fn new(provider: Provider, caps: Caps) -> Decoder {
        match provider {
            Provider::OpenAi => Decoder::OpenAi(openai::Decoder::new(caps)),
            Provider::Anthropic => Decoder::Anthropic(anthropic::Decoder::new(caps)),
        }
    }

    fn event(&mut self, name: Option<&str>, data: &str, names: &ToolNames) -> Result<String, DecodeError> {
        match self {
            Decoder::OpenAi(decoder) => decoder.chunk(data, names),
            Decoder::Anthropic(decoder) => decoder.event(name, data, names),
        }
    }

    fn whole(&mut self, body: &str, names: &ToolNames) -> Result<(), DecodeError> {
        match self {
            Decoder::OpenAi(decoder) => decoder.whole(body, names),
            Decoder::Anthropic(decoder) => decoder.whole(body, names),
        }
    }

    fn finish(self) -> Result<Reply, DecodeError> {
        match self {
            Decoder::OpenAi(decoder) => decoder.finish(),
            Decoder::Anthropic(decoder) => decoder.finish(),
        }
    }
}

fn protocol(endpoint: &Endpoint, detail: String) -> ModelError {
    ModelError::Protocol { model: endpoint.name.clone(), base_url: endpoint.base_url.clone(), detail }
}

fn too_large(endpoint: &Endpoint, over: Overflow) -> ModelError {
    ModelError::TooLarge { model: endpoint.name.clone(), base_url: endpoint.base_url.clone(), over }
}

fn decode_failure(endpoint: &Endpoint, error: DecodeError) -> ModelError {
    match error {
        DecodeError::Over(over) => too_large(endpoint, over),
        DecodeError::Protocol(detail) => protocol(endpoint, endpoint.scrub(&detail)),
    }
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

/// The start of an error answer's body: at most [`MAX_ERROR_BODY`] bytes, each piece within `idle`.
async fn error_body(response: reqwest::Response, idle: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(piece))) => {
                let room = MAX_ERROR_BODY - body.len();
                body.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            _ => break,
        }
    }
    body
}

/// The server's error message from an error body, shortened: the `error` of a JSON body, the title (else the
/// text) of an HTML page, else the text.
fn error_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let detail = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => json.get("error").map_or_else(|| json.to_string(), openai::error_text),
        Err(_) if text.trim_start().starts_with('<') => html_text(&text),
        Err(_) => text.trim().to_owned(),
    };
    let detail = if detail.is_empty() { "(no details)".to_owned() } else { detail };
    crate::limits::excerpt(&detail, 300)
}

/// What an HTML error page says, in one line: its title, else its text without the markup.
fn html_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let title = lower.find("<title").and_then(|start| {
        let open = start + lower[start..].find('>')? + 1;
        let close = open + lower[open..].find("</title")?;
        Some(plain(&html[open..close]))
    });
    let text = match title.filter(|t| !t.is_empty()) {
        Some(title) => title,
        None => {
            let mut text = String::new();
            let mut in_tag = false;
            for c in html.chars() {
                match c {
                    '<' => {
                        in_tag = true;
                        text.push(' ');
                    }
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            plain(&text)
        }
    };
    format!("{text} (an HTML page)")
}

/// `text` with its common entities decoded and its white space collapsed.
fn plain(text: &str) -> String {
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_read_as_one_line() {
        assert_eq!(error_detail(br#"{"error":{"message":"slow down"}}"#), "slow down");
        let nginx = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad \
                      Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(error_detail(nginx), "502 Bad Gateway (an HTML page)");
        let untitled = b"<!DOCTYPE html><p>Service&nbsp;unavailable &amp; sorry</p>";
        assert_eq!(error_detail(untitled), "Service unavailable & sorry (an HTML page)");
        assert_eq!(error_detail(b"  "), "(no details)");
        assert_eq!(error_detail("é".repeat(400).as_bytes()).chars().count(), 301);
    }
}
