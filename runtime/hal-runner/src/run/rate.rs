//! Rate limits (`rate_limits` in `hal.yaml`): before a tool call starts, its tool's, its help's and its actor's
//! buckets must each have room, counted from HAL's record of the calls it started ([`hal_store::spent`]: the last
//! hour's, in every process, so a restart forgets nothing). A short wait is waited; a long one ends the run
//! PENDING saying when it can go on, and the owner is told.

use std::time::Duration;

use hal_model::ToolCall;
use hal_spec::policy::names_tool;
use hal_spec::rate::wait_for_room;

use super::{Outcome, RunState, Runner, Waiting};
use crate::error::RunError;
use crate::status::Status;

/// Held while a call's turn is checked and recorded, by every runner of this process.
static GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether a call may start.
pub(super) enum Turn {
    /// Now (it was recorded as started).
    Go,
    /// Not before the run would wait too long: the run ends with this outcome.
    Later(Box<Outcome>),
}

impl Runner {
    /// Wait for `call`'s turn under the rate limits, and record it as started.
    pub(super) async fn take_turn(&self, state: &mut RunState<'_>, call: &ToolCall) -> Result<Turn, RunError> {
        let limits = &self.catalog.settings.rate_limits;
        let help = state.prepared.entry.name.clone();
        let (branch, actor) = (state.thread.branch.clone(), state.thread.actor.clone());
        let aliases = self.toolbox.policy_names(&call.name);
        loop {
            let (wait, limit) = {
                // Checked and recorded together: two runs of this process (whatever runner each holds, across
                // reloads of main) never both take the last room; one process at a time takes turns in a repo.
                let _gate = GATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let home = self.journal.handle();
                let mut longest = (0.0_f64, String::new());
                if limits.any() {
                    let now = hal_store::spent::now();
                    let recent = |call: &hal_store::spent::Call| call.time > now - 3_600;
                    let mut check = |per_hour: u32, name: String, counts: &dyn Fn(&hal_store::spent::Call) -> bool| {
                        let times = home.call_times(|call| recent(call) && counts(call))?;
                        let wait = wait_for_room(per_hour, &times, now);
                        if wait > longest.0 {
                            longest = (wait, format!("{name} allows {per_hour} calls an hour"));
                        }
                        Ok::<_, hal_store::StoreError>(())
                    };
                    // A limit naming any of the call's names (the plugin version it runs too) holds for it, and
                    // counts the calls made under any of theirs.
                    let names: Vec<&str> =
                        std::iter::once(call.name.as_str()).chain(aliases.iter().map(String::as_str)).collect();
                    let applies = |pattern: &str| names.iter().any(|name| names_tool(pattern, name));
                    for (pattern, per_hour) in limits.tools.iter().filter(|(p, _)| applies(p)) {
                        let name = format!("rate_limits.tools.{pattern}");
                        check(*per_hour, name, &|c| c.names().any(|n| names_tool(pattern, n)))?;
                    }
                    if let Some(per_hour) = limits.helps.get(&help) {
                        check(*per_hour, format!("rate_limits.helps.{help}"), &|c| c.help == help)?;
                    }
                    if let Some(per_hour) = limits.actors.get(&actor) {
                        check(*per_hour, format!("rate_limits.actors.{actor}"), &|c| c.actor() == actor)?;
                    }
                }
                if longest.0 <= 0.0 {
                    home.record_call(&branch, &help, &call.name, &aliases)?;
                    return Ok(Turn::Go);
                }
                longest
            };
            let remaining = state.deadline.saturating_duration_since(std::time::Instant::now()).as_secs_f64();
            if wait <= limits.wait() && wait < remaining {
                // In short sleeps: a halt meanwhile ends the run at once.
                let until = std::time::Instant::now() + Duration::from_secs_f64(wait.max(0.05));
                while std::time::Instant::now() < until {
                    if let Some(reason) = self.halted() {
                        return self
                            .finish(state, Status::Error, &reason, None, None)
                            .map(|outcome| Turn::Later(Box::new(outcome)));
                    }
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    tokio::time::sleep(left.min(Duration::from_millis(500))).await;
                }
                continue;
            }
            if state.depth > 0 || state.prepared.help.route.is_some() {
                // A help run by another help returns to its caller, which cannot wait for it; a router's pick is not
                // asked for again later: either ends here.
                let reason = format!("stopped: {limit} (hal.yaml), and `{}` may not be called before then", call.name);
                return self
                    .finish(state, Status::Error, &reason, None, None)
                    .map(|outcome| Turn::Later(Box::new(outcome)));
            }
            return self.later(state, call, wait, &limit).map(|outcome| Turn::Later(Box::new(outcome)));
        }
    }

    /// End the run waiting for `call`'s turn, `wait` seconds from now.
    fn later(&self, state: &mut RunState<'_>, call: &ToolCall, wait: f64, limit: &str) -> Result<Outcome, RunError> {
        let now = hal_store::spent::now();
        let until = now.saturating_add(wait.ceil().min(1e12) as i64);
        let at = jiff::Timestamp::from_second(until)
            .map(|time| time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|_| format!("{until}"));
        let thread = state.thread.id.clone();
        let text = format!(
            "Waiting: {limit} (hal.yaml), so `{}` may be called again at {at}. Answer this thread after that to go \
             on (the call is asked for again).",
            call.name
        );
        if let Some(teller) = &self.teller {
            let help = &state.prepared.entry.name;
            teller(
                &state.thread.branch,
                &format!("thread {thread} (help {help}) waits until {at}: {limit}, and it called {} again.", call.name),
            );
        }
        let mut outcome = self.finish(state, Status::Pending, &text, None, None)?;
        outcome.waiting = Some(Waiting::RateLimit { tool: call.name.clone(), until });
        Ok(outcome)
    }
}
