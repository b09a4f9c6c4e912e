//! HAL's help and agent files.
//!
//! A *help* is a YAML invocation spec (how to call a model so that it reliably does one kind of job); an
//! *agent* says who is working on a thread. Both are validated against the JSON Schemas in `schemas/`, which
//! are the single source of truth for their formats. Every problem is reported with the file, line, column
//! and field, and unknown fields are errors, so a typo never silently does nothing.
//!
//! YAML is read with `saphyr`, a maintained YAML 1.2 parser whose marked nodes keep the position of every
//! value and key (`serde_yaml` is archived).
//!
//! ```
//! let help = hal_spec::Help::parse("helps/summary.yaml", "description: Summarise a text\ninstructions:\n  - Be brief.\n")
//!     .expect("valid");
//! assert_eq!(help.system_prompt(), "Be brief.");
//! let error = hal_spec::Help::parse("helps/bad.yaml", "runner:\n  tempreature: 0.2\n").expect_err("typo");
//! assert!(error.to_string().starts_with("helps/bad.yaml:2:3: runner.tempreature: unknown field"));
//! ```

#![deny(missing_docs)]

mod actor;
mod agent;
pub mod budget;
pub mod builtin;
mod callable;
mod document;
mod help;
mod isolate;
mod plugin;
pub mod policy;
pub mod policy_edit;
mod problem;
pub mod rate;
mod settings;
mod validate;

pub use actor::{ACTOR_SCHEMA, ActorFile, ActorKey};
pub use agent::{AGENT_SCHEMA, Agent};
pub use callable::{Callable, either};
pub use help::{Assess, Done, Example, HELP_SCHEMA, Help, HelpTest, OutputCheck, Route, Runner};
pub use isolate::{Capabilities, ISOLATE_SCHEMA, IsolateManifest, SandboxLimits, TreeAccess};
pub use plugin::{PLUGIN_SCHEMA, PLUGIN_TESTS_SCHEMA, PluginFunction, PluginManifest, PluginTest};
pub use problem::{FieldProblem, SpecError};
pub use settings::{
    DEFAULT_TASK, IsolatePolicy, LimitSettings, MetricsSettings, ModelSettings, ReplyLimits, SETTINGS_SCHEMA, Sandbox,
    Settings, TrustSettings, UnsignedMessages,
};

/// Whether `name` is made only of what the names of helps and agents are made of (lowercase letters, digits, `-`
/// and `_`), and is not empty: the one check of a name a person or a model gives before it becomes a path.
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
