//! What can go wrong talking to a model. Messages name the model and its base URL, never the key.

use std::time::Duration;

use crate::limits::{Overflow, seconds};

/// A failed model call.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// 401 or 403: the key is missing, wrong or not allowed this model.
    #[error(
        "model `{model}` at {base_url} refused the credentials (HTTP {status}){key_hint}: {detail}",
        key_hint = key_name.as_ref().map(|k| format!("; check the secret {k}")).unwrap_or_default()
    )]
    Unauthorized {
        /// The model's name in `hal.yaml`.
        model: String,
        /// Where it was called.
        base_url: String,
        /// The HTTP status.
        status: u16,
        /// The name of the secret that holds the key, if the model has one.
        key_name: Option<String>,
        /// What the server said (with anything key-like removed).
        detail: String,
    },
    /// 404: the base URL or the model id is wrong.
    #[error("model `{model}` (id `{model_id}`) was not found at {base_url} (HTTP 404): {detail}")]
    NotFound {
        /// The model's name in `hal.yaml`.
        model: String,
        /// The id sent to the server.
        model_id: String,
        /// Where it was called.
        base_url: String,
        /// What the server said.
        detail: String,
    },
    /// Another 4xx: the server refused the request as made.
    #[error("model `{model}` at {base_url} rejected the request (HTTP {status}): {detail}")]
    Rejected {
        /// The model's name in `hal.yaml`.
        model: String,
        /// Where it was called.
        base_url: String,
        /// The HTTP status.
        status: u16,
        /// What the server said.
        detail: String,
    },
    /// 429, 5xx or a broken connection, still failing after every retry.
    #[error("model `{model}` at {base_url} still failing after {attempts} attempts: {last}")]
    GaveUp {
        /// The model's name in `hal.yaml`.
        model: String,
        /// Where it was called.
        base_url: String,
        /// How many requests were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The answer could not be read as the wire format says.
    #[error("model `{model}` at {base_url} sent a reply HAL cannot read: {detail}")]
    Protocol {
        /// The model's name in `hal.yaml`.
        model: String,
        /// Where it was called.
        base_url: String,
        /// What was wrong.
        detail: String,
    },
    /// The reply passed one of HAL's caps (`limits.reply` in `hal.yaml`); the client stopped reading it. Never
    /// retried: the same request would most likely get the same answer.
    #[error("model `{model}` at {base_url} sent a reply over HAL's limit, so HAL stopped reading it: {over}")]
    TooLarge {
        /// The model's name in `hal.yaml`.
        model: String,
        /// Where it was called.
        base_url: String,
        /// Which cap, and the setting that raises it.
        over: Overflow,
    },
    /// The server went silent in the middle of a reply for longer than `limits.idle_seconds`. Not retried.
    #[error(
        "model `{model}` at {base_url} stopped sending in the middle of its reply: nothing came for {} s \
         (limits.idle_seconds in hal.yaml raises the limit)",
        seconds(*idle)
    )]
    Stalled {
        /// The model's name in `hal.yaml`.
        model: String,
        /// Where it was called.
        base_url: String,
        /// How long it was silent.
        idle: Duration,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}
