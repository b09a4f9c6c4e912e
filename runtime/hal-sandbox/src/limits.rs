//! The limits of one isolate call.

use std::time::Duration;

use hal_spec::SandboxLimits;

/// Limits of one call, resolved from the isolate's manifest, `hal.yaml` and the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time.
    pub wall: Duration,
    /// Units of work (fuel).
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory: usize,
    /// Largest result, in bytes.
    pub output: usize,
}

/// The defaults: 10 s, 10^10 fuel, 256 MiB, 1 MiB of result.
pub const DEFAULT_LIMITS: SandboxLimits = SandboxLimits {
    wall_ms: Some(10_000),
    fuel: Some(10_000_000_000),
    memory_mb: Some(256),
    output_kb: Some(1024),
    stack_kb: Some(1024),
};

impl Limits {
    /// The limits for an isolate: `hal.yaml`'s for that isolate, else its manifest's, else `hal.yaml`'s
    /// defaults, else HAL's.
    pub fn resolve(policy: SandboxLimits, manifest: SandboxLimits, defaults: SandboxLimits) -> Limits {
        let limits = policy.or(manifest).or(defaults).or(DEFAULT_LIMITS);
        let get = |value: Option<u64>, fallback: Option<u64>| value.or(fallback).unwrap_or(1);
        Limits {
            wall: Duration::from_millis(get(limits.wall_ms, DEFAULT_LIMITS.wall_ms)),
            fuel: get(limits.fuel, DEFAULT_LIMITS.fuel),
            memory: usize::try_from(get(limits.memory_mb, DEFAULT_LIMITS.memory_mb).saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            output: usize::try_from(get(limits.output_kb, DEFAULT_LIMITS.output_kb).saturating_mul(1 << 10))
                .unwrap_or(usize::MAX),
        }
    }
}
