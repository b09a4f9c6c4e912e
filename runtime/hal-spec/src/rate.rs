//! The `rate_limits` section of `hal.yaml`: how many tool calls an hour runs may make, per tool (named as policy
//! names it: an isolate, a function, a plugin or one version of it, a sub-help), per help and per actor. Each is a
//! token bucket of that many calls, refilled evenly over the hour.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long a call waits for its turn when `wait_seconds` is not set.
pub const DEFAULT_WAIT_SECONDS: f64 = 10.0;

/// The `rate_limits` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Calls an hour, by tool.
    pub tools: BTreeMap<String, u32>,
    /// Tool calls an hour by the runs of a help, by help name.
    pub helps: BTreeMap<String, u32>,
    /// Tool calls an hour on an actor's threads, by actor.
    pub actors: BTreeMap<String, u32>,
    /// The longest a call waits for its turn before the run ends PENDING instead (default 10).
    pub wait_seconds: Option<f64>,
}

impl RateLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        !(self.tools.is_empty() && self.helps.is_empty() && self.actors.is_empty())
    }

    /// The longest a call waits for its turn.
    pub fn wait(&self) -> f64 {
        self.wait_seconds.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(DEFAULT_WAIT_SECONDS)
    }
}

/// How long until a bucket of `per_hour` calls, which let the calls at `times` (seconds, oldest first, all within
/// the hour before `now`) through, has room for one more: 0 when it has room now.
pub fn wait_for_room(per_hour: u32, times: &[i64], now: i64) -> f64 {
    if per_hour == 0 {
        return f64::INFINITY;
    }
    let capacity = f64::from(per_hour);
    let rate = capacity / 3_600.0;
    // Full an hour ago; each call takes one, time refills it evenly.
    let (mut tokens, mut last) = (capacity, now - 3_600);
    for &time in times {
        tokens = (tokens + (time - last).max(0) as f64 * rate).min(capacity) - 1.0;
        last = time;
    }
    tokens = (tokens + (now - last).max(0) as f64 * rate).min(capacity);
    if tokens >= 1.0 { 0.0 } else { (1.0 - tokens) / rate }
}

#[cfg(test)]
mod tests {
    use super::wait_for_room;

    #[test]
    fn a_bucket_lets_its_calls_through_then_refills_evenly() {
        let now = 1_000_000;
        assert_eq!(wait_for_room(2, &[], now), 0.0);
        assert_eq!(wait_for_room(2, &[now - 10], now), 0.0);
        // Two calls just now: the next waits half an hour (one call's worth of refill at 2 an hour).
        let wait = wait_for_room(2, &[now - 1, now], now);
        assert!((wait - 1_800.0).abs() < 2.0, "{wait}");
        // Calls spread over the hour refill as they go.
        let spread: Vec<i64> = (0..60).map(|minute| now - 3_600 + minute * 60).collect();
        assert_eq!(wait_for_room(60, &spread, now), 0.0);
        assert!(wait_for_room(0, &[], now).is_infinite());
    }
}
