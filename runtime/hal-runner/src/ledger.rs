//! Budgets against what was spent: every reply HAL commits carries its tokens in its trailers, and HAL indexes
//! them as it writes them, with each owner's grant, in its local record ([`hal_store::spent`]): per thread over
//! its life, and per help and per actor on each UTC day. A check reads only what was appended since the last one,
//! in any process, so it costs the same on any step and a restart or a reload forgets nothing.

use hal_spec::budget::{Budget, Budgets};
use hal_store::spent::{Account, Budget as Which, DAY};
use hal_store::{Home, ThreadRef};

use crate::error::RunError;

/// A budget's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Tokens.
    Tokens,
    /// US dollars.
    Usd,
}

impl Unit {
    /// Its name: `tokens` or `usd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Tokens => "tokens",
            Unit::Usd => "usd",
        }
    }

    /// `amount` as a person reads it.
    pub fn show(self, amount: f64) -> String {
        show(amount, self.as_str())
    }
}

/// A budget a run has reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Over {
    /// Which.
    pub which: Which,
    /// In which unit.
    pub unit: Unit,
    /// What was spent.
    pub spent: f64,
    /// The budget, with what owners granted.
    pub limit: f64,
}

impl Over {
    /// The budget as a person reads it: `the thread's budget`, `help writer's budget for 2026-12-05`.
    pub fn label(&self) -> String {
        match &self.which {
            Which::Thread => "the thread's budget".to_owned(),
            Which::HelpPerDay(help, day) => format!("help {help}'s budget for {}", date(*day)),
            Which::ActorPerDay(actor, day) => format!("{actor}'s budget for {}", date(*day)),
        }
    }
}

/// Dollars as a person reads them: cents, or up to six decimals below a dollar (`$0.50`, `$0.000125`).
pub fn usd(amount: f64) -> String {
    if amount.abs() >= 1.0 {
        return format!("${amount:.2}");
    }
    let text = format!("{amount:.6}");
    let (whole, decimals) = text.split_once('.').unwrap_or((&text, ""));
    let decimals = decimals.trim_end_matches('0');
    format!("${whole}.{decimals:0<2}")
}

/// `amount` in `unit` (`tokens`, `usd`, or another word a record holds) as a person reads it: the one way amounts
/// are shown, in requests, answers and errors alike.
pub fn show(amount: f64, unit: &str) -> String {
    match unit {
        "usd" => usd(amount),
        unit => format!("{amount:.0} {unit}"),
    }
}

/// The UTC date of day `day` (days since the Unix epoch).
fn date(day: i64) -> String {
    jiff::Timestamp::from_second(day.saturating_mul(DAY))
        .map(|time| time.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| format!("day {day}"))
}

/// The first budget of `budgets` that a run of `help` on `thread` has reached, if any.
pub fn over(home: &Home, budgets: &Budgets, thread: &ThreadRef, help: &str) -> Result<Option<Over>, RunError> {
    if budgets.thread.is_none() && budgets.help_per_day.is_none() && budgets.actor_per_day.is_none() {
        return Ok(None);
    }
    let day = hal_store::spent::now().div_euclid(DAY);
    let accounts = home.accounts(&thread.branch, help, day)?;
    let checks = [
        (budgets.thread, Which::Thread, accounts.thread),
        (budgets.help_per_day, Which::HelpPerDay(help.to_owned(), day), accounts.help),
        (budgets.actor_per_day, Which::ActorPerDay(thread.actor.clone(), day), accounts.actor),
    ];
    Ok(checks.into_iter().find_map(|(budget, which, account)| reached(which, budget?, account)))
}

/// Whether `account` reached `budget` with its grants added, in either of its units.
fn reached(which: Which, budget: Budget, account: Account) -> Option<Over> {
    let Account { spent, granted } = account;
    if let Some(tokens) = budget.tokens {
        let limit = tokens.saturating_add(granted.tokens);
        if spent.tokens >= limit {
            return Some(Over { which, unit: Unit::Tokens, spent: spent.tokens as f64, limit: limit as f64 });
        }
    }
    if let Some(usd) = budget.usd {
        let limit = usd + granted.usd;
        if spent.usd >= limit {
            return Some(Over { which, unit: Unit::Usd, spent: spent.usd, limit });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_a_person_writes_them() {
        assert_eq!(usd(12.5), "$12.50");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.000125), "$0.000125");
        assert_eq!(show(1500.0, "tokens"), "1500 tokens");
        assert_eq!(Unit::Usd.show(0.25), "$0.25");
    }
}
