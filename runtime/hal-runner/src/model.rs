//! Where a run's model turns come from: a live model named in `hal.yaml`, or a recording (replay, demo).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hal_model::{Client, Endpoint, Provider, Reply, ReplyLimits, Request};
use hal_spec::Settings;

use crate::error::RunError;
use crate::tools::BoxFuture;

/// Context window assumed for a model whose settings give none, in tokens.
pub const DEFAULT_CONTEXT_TOKENS: u64 = 64_000;

/// One model turn as the runner records it.
#[derive(Debug, Clone)]
pub struct ModelTurn {
    /// What the model said.
    pub reply: Reply,
    /// The response body exactly as received, when there was one and it was no longer than
    /// `limits.reply.raw_kb`.
    pub response: Option<Vec<u8>>,
    /// Size of the request body.
    pub request_bytes: usize,
    /// How long the call took.
    pub latency: Duration,
}

/// A model the runner can call.
pub trait Model: Send + Sync {
    /// Its name for the step record (`Hal-Model`).
    fn name(&self) -> &str;

    /// Its context window in tokens.
    fn context_tokens(&self) -> u64 {
        DEFAULT_CONTEXT_TOKENS
    }

    /// One turn: the reply to `request`, with its text passed to `on_text` as it arrives. An error ends the run,
    /// its text the reason.
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_text: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<ModelTurn, TurnError>>;
}

/// Why a model turn gave no reply.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The model's service failed or refused, after the client's retries.
    #[error(transparent)]
    Model(#[from] hal_model::ModelError),
    /// A recording has no reply left.
    #[error("the recording has no more model replies: this run asked the model more often than the original")]
    RecordingEnded,
}

/// Chooses the model of each run.
pub trait Models: Send + Sync {
    /// The model a run uses: the one named `model`, else the one `hal.yaml` routes the task class `task` to.
    fn choose(&self, model: Option<&str>, task: Option<&str>) -> Result<Arc<dyn Model>, RunError>;

    /// The models for the next sub-run started by a run using these.
    fn subrun(&self) -> Arc<dyn Models>;

    /// The sub-run these models were given for runs on the thread `id`: a recording played in a replay learns
    /// which of the replay's threads stands for its original's, so that a recorded call naming the original's
    /// thread (a caller's answer to a sub-help's question) names the replay's. Nothing for live models.
    fn ran_on(&self, id: &str) {
        let _ = id;
    }
}

pub use crate::secrets::SecretLookup;

/// Live models: routed by `hal.yaml`, keys read from the secret store by the secret names it gives.
pub struct LiveModels {
    client: Client,
    settings: Settings,
    secret: SecretLookup,
}

/// What to tell someone who has no model configured.
pub const NO_MODEL_HELP: &str = "no model is configured: add one under `models` in hal.yaml on main and commit it, \
for example\n\
\n  models:\
\n    gpt:      {provider: openai, model: gpt-4.1-mini, key: OPENAI_API_KEY}        # hal secret set OPENAI_API_KEY\
\n    claude:   {provider: anthropic, model: claude-sonnet-4-5, key: ANTHROPIC_API_KEY}\
\n    local:    {provider: openai, base_url: 'http://127.0.0.1:11434/v1', model: qwen2.5-coder}   # Ollama, no key\
\n  tasks:\
\n    default: gpt\n";

impl LiveModels {
    /// Models from `settings`, called with `client`; keys come from `secret(name)`.
    pub fn new(client: Client, settings: Settings, secret: SecretLookup) -> LiveModels {
        LiveModels { client, settings, secret }
    }

    /// Models from `settings` with keys from the secret store (or the environment).
    pub fn from_store(client: Client, settings: Settings) -> LiveModels {
        LiveModels::new(client, settings, crate::secrets::lookup())
    }

    /// The endpoint of the model named `name`.
    pub fn endpoint(&self, name: &str) -> Result<(Endpoint, u64), RunError> {
        let Some(model) = self.settings.models.get(name) else {
            if self.settings.models.is_empty() {
                return Err(RunError::NoModel(NO_MODEL_HELP.to_owned()));
            }
            let known: Vec<&str> = self.settings.models.keys().map(String::as_str).collect();
            return Err(RunError::NoModel(format!(
                "no model named `{name}` in hal.yaml (models: {})",
                known.join(", ")
            )));
        };
        let provider = match model.provider.as_str() {
            "anthropic" => Provider::Anthropic,
            _ => Provider::OpenAi,
        };
        let api_key = match &model.key {
            Some(key_name) => Some((self.secret)(key_name).ok_or_else(|| {
                RunError::NoModel(format!(
                    "model `{name}` needs its API key in the secret {key_name}: set it with `hal secret set \
                     {key_name}` (or in the environment as {key_name}) and run again"
                ))
            })?),
            None => None,
        };
        let endpoint = Endpoint {
            name: name.to_owned(),
            provider,
            base_url: model.base_url.clone().unwrap_or_else(|| provider.default_base_url().to_owned()),
            model: model.model.clone(),
            api_key,
            key_name: model.key.clone(),
            max_output_tokens: model.max_output_tokens,
            limits: reply_limits(&self.settings.limits),
        };
        Ok((endpoint, model.context_tokens.unwrap_or(DEFAULT_CONTEXT_TOKENS)))
    }
}

impl Models for LiveModels {
    fn choose(&self, model: Option<&str>, task: Option<&str>) -> Result<Arc<dyn Model>, RunError> {
        let name = self.settings.route(model, task).ok_or_else(|| RunError::NoModel(NO_MODEL_HELP.to_owned()))?;
        let (endpoint, context_tokens) = self.endpoint(&name)?;
        Ok(Arc::new(LiveModel { client: self.client.clone(), endpoint, context_tokens }))
    }

    fn subrun(&self) -> Arc<dyn Models> {
        Arc::new(LiveModels {
            client: self.client.clone(),
            settings: self.settings.clone(),
            secret: self.secret.clone(),
        })
    }
}

/// The caps on a model's replies from `hal.yaml`'s `limits` (`reply`, `idle_seconds`), each defaulting to
/// [`ReplyLimits::default`]'s.
pub fn reply_limits(limits: &hal_spec::LimitSettings) -> ReplyLimits {
    let defaults = ReplyLimits::default();
    let bytes = |kb: Option<u64>, default: usize| {
        kb.map_or(default, |kb| usize::try_from(kb.saturating_mul(1024)).unwrap_or(usize::MAX))
    };
    let reply = &limits.reply;
    ReplyLimits {
        text_bytes: bytes(reply.text_kb, defaults.text_bytes),
        line_bytes: bytes(reply.line_kb, defaults.line_bytes),
        raw_bytes: bytes(reply.raw_kb, defaults.raw_bytes),
        tool_calls: reply.tool_calls.map_or(defaults.tool_calls, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        arguments_bytes: bytes(reply.arguments_kb, defaults.arguments_bytes),
        // The schema keeps it within (0, 86400]; a value that is no duration falls back to the default.
        idle: limits
            .idle_seconds
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .filter(|idle| !idle.is_zero())
            .unwrap_or(defaults.idle),
    }
}

/// A model reached over HTTP.
struct LiveModel {
    client: Client,
    endpoint: Endpoint,
    context_tokens: u64,
}

impl Model for LiveModel {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    fn context_tokens(&self) -> u64 {
        self.context_tokens
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_text: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<ModelTurn, TurnError>> {
        Box::pin(async move {
            let exchange = self.client.complete(&self.endpoint, request, on_text).await?;
            Ok(ModelTurn {
                reply: exchange.reply,
                response: exchange.response_body,
                request_bytes: exchange.request_body.len(),
                latency: exchange.latency,
            })
        })
    }
}

/// Model turns played back from a recording, in order; sub-runs get the recordings of their own threads.
#[derive(Debug, Default)]
pub struct Recording {
    replies: Mutex<VecDeque<Reply>>,
    subruns: Mutex<VecDeque<Arc<Recording>>>,
    /// The requests made of it, when asked to keep them.
    requests: Mutex<Option<Vec<Request>>>,
    /// The thread of the original run this recording was made on, when it is a sub-run's.
    origin: Option<String>,
    /// The replay's thread for each original thread, as sub-runs learn them ([`Models::ran_on`]): shared by every
    /// recording of one replay, and put in place of the original's ids in the arguments of the calls played.
    threads: Arc<Mutex<std::collections::HashMap<String, String>>>,
}

/// The name recorded replies go by in `Hal-Model`.
pub const RECORDING_MODEL: &str = "recording";

impl Recording {
    /// A recording of `replies`, whose sub-runs (in the order they start) play `subruns`.
    pub fn new(replies: Vec<Reply>, subruns: Vec<Arc<Recording>>) -> Recording {
        Recording {
            replies: Mutex::new(replies.into()),
            subruns: Mutex::new(subruns.into()),
            requests: Mutex::new(None),
            origin: None,
            threads: Arc::default(),
        }
    }

    /// A recording made on the original thread `origin` (`None` for the top of a replay), whose replay's threads
    /// are kept in `threads`, shared by all the recordings of one replay.
    pub fn of_thread(
        replies: Vec<Reply>,
        subruns: Vec<Arc<Recording>>,
        origin: Option<String>,
        threads: Arc<Mutex<std::collections::HashMap<String, String>>>,
    ) -> Recording {
        Recording { origin, threads, ..Recording::new(replies, subruns) }
    }

    /// Keep every request made of this recording (see [`Recording::requests`]).
    pub fn keeping_requests(self) -> Recording {
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
        self
    }

    /// The requests made so far, when kept.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default()
    }

    /// How many replies have not been played.
    pub fn remaining(&self) -> usize {
        self.replies.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Models for Arc<Recording> {
    fn choose(&self, _model: Option<&str>, _task: Option<&str>) -> Result<Arc<dyn Model>, RunError> {
        Ok(Arc::new(RecordedModel(self.clone())))
    }

    fn subrun(&self) -> Arc<dyn Models> {
        let next = self.subruns.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        Arc::new(next.unwrap_or_default())
    }

    fn ran_on(&self, id: &str) {
        if let Some(origin) = &self.origin {
            self.threads.lock().unwrap_or_else(PoisonError::into_inner).insert(origin.clone(), id.to_owned());
        }
    }
}

struct RecordedModel(Arc<Recording>);

impl Model for RecordedModel {
    fn name(&self) -> &str {
        RECORDING_MODEL
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_text: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<ModelTurn, TurnError>> {
        Box::pin(async move {
            let started = Instant::now();
            if let Some(kept) = self.0.requests.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                kept.push(request.clone());
            }
            let mut reply = self
                .0
                .replies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .ok_or(TurnError::RecordingEnded)?;
            // A call answering a sub-help's question (`{thread, answer}`) names the original's sub-thread: it names
            // the replay's that stands for it. Nothing else of a call is changed.
            let threads = self.0.threads.lock().unwrap_or_else(PoisonError::into_inner);
            for call in &mut reply.tool_calls {
                call.arguments = with_thread_replaced(&call.arguments, &threads);
            }
            drop(threads);
            if !reply.text.is_empty() {
                on_text(&reply.text);
            }
            let request_bytes = serde_json::to_vec(request).map(|b| b.len()).unwrap_or_default();
            Ok(ModelTurn { reply, response: None, request_bytes, latency: started.elapsed() })
        })
    }
}

/// `arguments` (a call's, as the model gave them) with the value of its `thread` field, when it is a thread that
/// `threads` maps, written as the thread it maps to; otherwise as they are, byte for byte.
fn with_thread_replaced(arguments: &str, threads: &std::collections::HashMap<String, String>) -> String {
    let named = serde_json::from_str::<serde_json::Value>(arguments)
        .ok()
        .and_then(|value| value.get("thread")?.as_str().map(str::to_owned));
    match named.as_deref().and_then(|named| Some((named, threads.get(named)?))) {
        // Ids are JSON strings of letters and digits: the quoted value is the field's, written as it was.
        Some((original, replayed)) => arguments.replace(&format!("\"{original}\""), &format!("\"{replayed}\"")),
        None => arguments.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_thread_field_naming_a_mapped_thread_is_replaced() {
        let threads = std::collections::HashMap::from([("6bnaaaaaaaa".to_owned(), "6bnbbbbbbbb".to_owned())]);
        let answer = r#"{"thread": "6bnaaaaaaaa", "answer": "yes"}"#;
        assert_eq!(with_thread_replaced(answer, &threads), r#"{"thread": "6bnbbbbbbbb", "answer": "yes"}"#);
        let other = r#"{"input": "see 6bnaaaaaaaa"}"#;
        assert_eq!(with_thread_replaced(other, &threads), other, "a mention elsewhere is left as it is");
        let unknown = r#"{"thread": "6bncccccccc"}"#;
        assert_eq!(with_thread_replaced(unknown, &threads), unknown);
        assert_eq!(with_thread_replaced("not json", &threads), "not json");
    }

    #[test]
    fn reply_limits_come_from_hal_yaml_in_kib_else_the_defaults() {
        let text = "limits:\n  idle_seconds: 1.5\n  reply:\n    text_kb: 64\n    raw_kb: 0\n    tool_calls: 3\n";
        let settings = Settings::parse("hal.yaml", text).expect("valid");
        let limits = reply_limits(&settings.limits);
        assert_eq!(
            limits,
            ReplyLimits {
                text_bytes: 64 * 1024,
                raw_bytes: 0,
                tool_calls: 3,
                idle: Duration::from_millis(1500),
                ..ReplyLimits::default()
            }
        );
        assert_eq!(reply_limits(&hal_spec::LimitSettings::default()), ReplyLimits::default());
    }
}
