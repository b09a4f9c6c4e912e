//! `isolate.yaml`: an isolate's manifest.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::problem::SpecError;
use crate::validate::Schema;

/// The schema manifests are validated against (`schemas/isolate.schema.json`).
pub const ISOLATE_SCHEMA: &str = include_str!("../../../schemas/isolate.schema.json");

/// A validated `isolate.yaml`. The fields mirror `schemas/isolate.schema.json`, which documents them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateManifest {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// What it does.
    pub description: String,
    /// What it asks to be allowed.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Its own limits.
    #[serde(default)]
    pub limits: SandboxLimits,
}

/// Access to the thread's working tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeAccess {
    /// None.
    #[default]
    None,
    /// Read files.
    Read,
    /// Read and write files.
    Write,
}

/// Capabilities asked for (in a manifest) or granted (in `hal.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capabilities {
    /// The working tree.
    pub tree: TreeAccess,
    /// Hosts it may fetch from (`*`: whatever is granted).
    pub http: Vec<String>,
    /// Secret names it reads.
    pub secrets: Vec<String>,
}

/// Limits of one isolate call; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// Wall time, in milliseconds.
    pub wall_ms: Option<u64>,
    /// Units of work.
    pub fuel: Option<u64>,
    /// Linear memory, in MiB.
    pub memory_mb: Option<u64>,
    /// Largest result, in KiB.
    pub output_kb: Option<u64>,
    /// WebAssembly stack, in KiB.
    pub stack_kb: Option<u64>,
    /// Files one call may write.
    pub files: Option<u64>,
}

impl SandboxLimits {
    /// These limits, with `other`'s where these have none.
    pub fn or(self, other: SandboxLimits) -> SandboxLimits {
        SandboxLimits {
            wall_ms: self.wall_ms.or(other.wall_ms),
            fuel: self.fuel.or(other.fuel),
            memory_mb: self.memory_mb.or(other.memory_mb),
            output_kb: self.output_kb.or(other.output_kb),
            stack_kb: self.stack_kb.or(other.stack_kb),
            files: self.files.or(other.files),
        }
    }
}

impl IsolateManifest {
    /// Parse and validate a manifest. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<IsolateManifest, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(ISOLATE_SCHEMA)).load(file, text)
    }
}
