//! Agents: who works on a thread.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::problem::SpecError;
use crate::validate::Schema;

/// The schema every agent is validated against (`schemas/agent.schema.json`).
pub const AGENT_SCHEMA: &str = include_str!("../../../schemas/agent.schema.json");

/// A validated agent. The fields mirror `schemas/agent.schema.json`, which documents them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Agent {
    /// What the agent is for.
    pub description: String,
    /// Paragraphs of its system prompt.
    pub persona: Vec<String>,
    /// Helps it may invoke.
    pub helps: Vec<String>,
    /// Isolate functions and plugins it may call.
    pub isolates: Vec<String>,
    /// A model named in `hal.yaml`.
    pub model: Option<String>,
    /// A task class routed to a model by `hal.yaml`.
    pub task: Option<String>,
}

impl Agent {
    /// Parse and validate an agent file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Agent, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(AGENT_SCHEMA)).load(file, text)
    }
}
