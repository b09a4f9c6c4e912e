//! Where and how to reach one model.

use serde::{Deserialize, Serialize};

use crate::limits::ReplyLimits;

/// The wire format a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter).
    OpenAi,
    /// Anthropic messages.
    Anthropic,
}

impl Provider {
    /// Its name in `hal.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// The base URL used when `hal.yaml` gives none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com/v1",
        }
    }
}

/// A model ready to call: its settings with the key already looked up.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The model's name in `hal.yaml` (used in messages).
    pub name: String,
    /// The wire format.
    pub provider: Provider,
    /// Everything before `/chat/completions` or `/messages`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The model id sent to the server.
    pub model: String,
    /// The API key, if the model needs one.
    pub api_key: Option<String>,
    /// The name of the secret the key came from (for messages; never the value).
    pub key_name: Option<String>,
    /// Most tokens the model may write in one reply.
    pub max_output_tokens: Option<u32>,
    /// How much of a reply HAL reads, and how long it waits for it (`limits` in `hal.yaml`).
    pub limits: ReplyLimits,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("key_name", &self.key_name)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Endpoint {
    /// The URL requests go to.
    pub fn url(&self) -> String {
        let path = match self.provider {
            Provider::OpenAi => crate::openai::PATH,
            Provider::Anthropic => crate::anthropic::PATH,
        };
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// `text` with the key, and anything that looks like an API key, taken out.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = match self.api_key.as_deref().filter(|key| !key.is_empty()) {
            Some(key) => text.replace(key, "<key>"),
            None => text.to_owned(),
        };
        // Servers echo part of a wrong key ("Incorrect API key provided: sk-abc...xyz"): drop key-like words.
        text = text
            .split(' ')
            .map(|word| if word.starts_with("sk-") || word.starts_with("sk_") { "<key>" } else { word })
            .collect::<Vec<_>>()
            .join(" ");
        text
    }
}
