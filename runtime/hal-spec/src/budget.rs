//! What runs may spend: the price of each model (`models.<name>.price`) and the `budgets` section of `hal.yaml`,
//! in tokens, US dollars or both, per thread, per help per day and per actor per day (UTC days).

use serde::{Deserialize, Serialize};

/// A model's price, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million completion tokens.
    pub output: f64,
}

impl Price {
    /// What `input` prompt tokens and `output` completion tokens cost, in dollars.
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input + output as f64 * self.output) / 1_000_000.0
    }
}

/// The `budgets` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    /// What one thread may spend over its life.
    pub thread: Option<Budget>,
    /// What the runs of each help may spend in a day, all threads together.
    pub help_per_day: Option<Budget>,
    /// What the runs on each actor's threads may spend in a day.
    pub actor_per_day: Option<Budget>,
}

/// One budget: tokens (prompt and completion together), dollars (by the models' prices), or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// Most tokens.
    pub tokens: Option<u64>,
    /// Most US dollars.
    pub usd: Option<f64>,
}
