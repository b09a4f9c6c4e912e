//! The limits of one isolate call.

use std::time::Duration;

use hal_spec::SandboxLimits;

/// The limits of one isolate call, resolved from the isolate's manifest, `hal.yaml` and the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsolateLimits {
    /// Wall time.
    pub wall: Duration,
    /// Units of work (fuel).
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory: usize,
    /// Largest result, in bytes.
    pub output: usize,
    /// Files one call may write.
    pub files: usize,
}

/// The defaults: 10 s, 10^10 fuel, 256 MiB, 1 MiB of result, 10,000 files written.
pub const DEFAULT_LIMITS: SandboxLimits = SandboxLimits {
    wall_ms: Some(10_000),
    fuel: Some(10_000_000_000),
    memory_mb: Some(256),
    output_kb: Some(1024),
    stack_kb: Some(1024),
    files: Some(10_000),
};

impl IsolateLimits {
    /// The limits for an isolate: `hal.yaml`'s for that isolate, else its manifest's, else `hal.yaml`'s
    /// defaults, else HAL's.
    pub fn resolve(policy: SandboxLimits, manifest: SandboxLimits, defaults: SandboxLimits) -> IsolateLimits {
        // With HAL's defaults last, every field is set.
        let limits = policy.or(manifest).or(defaults).or(DEFAULT_LIMITS);
        let get = |value: Option<u64>| value.unwrap_or_default();
        let bytes = |value: u64, shift: u32| usize::try_from(value.saturating_mul(1 << shift)).unwrap_or(usize::MAX);
        IsolateLimits {
            wall: Duration::from_millis(get(limits.wall_ms)),
            fuel: get(limits.fuel),
            memory: bytes(get(limits.memory_mb), 20),
            output: bytes(get(limits.output_kb), 10),
            files: usize::try_from(get(limits.files)).unwrap_or(usize::MAX),
        }
    }
}
