//! HAL's model clients.
//!
//! Two wire formats cover the servers people run: OpenAI-compatible chat completions (OpenAI, Ollama, vLLM,
//! llama.cpp server, LM Studio, OpenRouter) and Anthropic messages. Both are streamed (server-sent events) and
//! both carry tool calls. The client is a thin layer over `reqwest` that keeps the exact bytes exchanged, so a
//! run can record precisely what the model said, up to a cap: everything the client keeps of a reply (its text,
//! one line of the stream, the raw body, tool calls and their arguments) is bounded by [`ReplyLimits`], and a
//! server that goes silent is given up on after [`ReplyLimits::idle`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), hal_model::ModelError> {
//! use hal_model::{Client, ClientOptions, Endpoint, Message, Provider, ReplyLimits, Request};
//! let client = Client::new(ClientOptions::default())?;
//! let endpoint = Endpoint {
//!     name: "local".into(),
//!     provider: Provider::OpenAi,
//!     base_url: "http://127.0.0.1:11434/v1".into(),
//!     model: "qwen2.5".into(),
//!     api_key: None,
//!     key_name: None,
//!     max_output_tokens: None,
//!     limits: ReplyLimits::default(),
//! };
//! let request = Request { messages: vec![Message::User { text: "hello".into() }], ..Request::default() };
//! let exchange = client.complete(&endpoint, &request, &mut |text| print!("{text}")).await?;
//! println!("\n{} tokens in, {} out", exchange.reply.usage.input, exchange.reply.usage.output);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod anthropic;
mod attempt;
mod client;
mod endpoint;
mod error;
mod limits;
pub mod openai;
pub mod sse;
mod types;

pub use client::{Client, ClientOptions, Exchange, encode_request, http_builder};
pub use endpoint::{Endpoint, Provider};
pub use error::ModelError;
pub use limits::{Overflow, ReplyLimits};
pub use types::{Message, Reply, Request, ToolCall, ToolSpec, Usage};
