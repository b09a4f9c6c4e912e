//! Whether a router may run a help now, and running it: never a router (it would loop), within the run's depth and
//! time, under the owners' policy and rate limits for it as for any call of it.

use hal_model::ToolCall;
use hal_spec::Route;
use hal_spec::policy::{Level, Rule};
use serde_json::json;

use super::super::{Outcome, RunState, Runner, first_line};
use crate::error::RunError;
use crate::status::Status;
use crate::tools::ToolResult;

/// Whether a help may run for the route now.
pub(super) enum Gate {
    /// Yes; the call to tell the owner of when it ran (AL2), with the rule that says so.
    Go(Option<(ToolCall, Rule)>),
    /// No, and why (the router's model hears it).
    Refused(String),
    /// Not before the rate limits allow: the run ends with this outcome.
    Later(Box<Outcome>),
}

impl Runner {
    /// Why the route cannot run another help now (too deep, out of time), if it cannot.
    pub(super) fn room_for_route(&self, state: &RunState<'_>) -> Result<(), String> {
        let limits = state.prepared.limits;
        if state.depth + 1 > limits.max_depth {
            return Err(format!(
                "the help a router runs would be more than {} deep (limits.max_depth in hal.yaml)",
                limits.max_depth
            ));
        }
        if std::time::Instant::now() >= state.deadline {
            return Err("stopped: the router's run is out of time".to_owned());
        }
        Ok(())
    }

    /// Why the router may not run `help` for a request, if it may not.
    pub(super) fn routable(&self, state: &RunState<'_>, route: &Route, help: &str) -> Result<(), String> {
        if help.is_empty() {
            return Err("name the help to run (its name alone, or {\"help\": <name>, \"request\": <text>}), or \
                        finish NOCANDO"
                .to_owned());
        }
        if self.catalog.entry(help).is_none() {
            return Err(format!("there is no help `{help}` here: pick one of the catalogue, or finish NOCANDO"));
        }
        if help == route.stuck_finder() {
            return Err(format!("`{help}` is the stuck-finder, not a help for requests: pick another"));
        }
        self.runnable(state, help)
    }

    /// Why a route may not run `help` at all: a router (itself, or another) would loop.
    pub(super) fn runnable(&self, state: &RunState<'_>, help: &str) -> Result<(), String> {
        let spec = self.catalog.entry(help).and_then(|entry| entry.spec.as_ref());
        match help == state.prepared.entry.name || spec.is_some_and(|spec| spec.route.is_some()) {
            true => Err(format!("`{help}` is a router: pick the help that does the job")),
            false => Ok(()),
        }
    }

    /// Whether the owners let `help` run for the route now, as they would a call of it: AL0 and AL1 refuse it (a
    /// router cannot wait for an approval), the rate limits may make it wait, AL2 tells the owner.
    pub(super) async fn gate(&self, state: &mut RunState<'_>, help: &str, input: &str) -> Result<Gate, RunError> {
        let (level, rule) = self.autonomy(state, help);
        match level {
            Level::Propose => {
                return Ok(Gate::Refused(format!("not run: {rule} sets AL0 (propose only) for `{help}`")));
            }
            Level::ApproveEach => {
                return Ok(Gate::Refused(format!(
                    "not run: {rule} sets AL1 (approve each) for `{help}`, and a router cannot wait for an owner's \
                     approval: start it on a thread of its own instead"
                )));
            }
            _ => {}
        }
        let call =
            ToolCall { id: String::new(), name: help.to_owned(), arguments: json!({"input": input}).to_string() };
        if let super::super::rate::Turn::Later(outcome) = self.take_turn(state, &call).await? {
            return Ok(Gate::Later(outcome));
        }
        Ok(Gate::Go((level == Level::ActAndTell).then_some((call, rule))))
    }

    pub(super) fn tell_routed(&self, state: &RunState<'_>, tell: Option<(ToolCall, Rule)>, outcome: &Outcome) {
        if let Some((call, rule)) = tell {
            let result = ToolResult { content: outcome.output.clone(), is_error: outcome.status == Status::Error };
            self.tell(state, &call, &result, &rule);
        }
    }

    /// Run `help` with `input` on a new sub-thread of the router's, as a part of its run: its outcome and thread,
    /// or why it could not start (nothing written then).
    pub(super) async fn run_for_route(
        &self,
        state: &mut RunState<'_>,
        help: &str,
        input: &str,
    ) -> Result<Result<(Outcome, String), String>, RunError> {
        if let Err(why) = self.room_for_route(state).and_then(|()| self.runnable(state, help)) {
            return Ok(Err(why));
        }
        let models = state.models.subrun();
        let prepared = match self.prepare(models.as_ref(), help) {
            Ok(prepared) => prepared,
            Err(error) => return Ok(Err(error.to_string())),
        };
        let title = format!("{help}: {}", first_line(input));
        let from = format!("thread {}", state.thread.id);
        let sub = self.journal.with(|home| home.start_thread_at(&state.actor, state.tip, Some(&title), &from, None))?;
        let id = sub.id.clone();
        let outcome = self.sub_run(state, &prepared, models, sub, input).await?;
        Ok(Ok((outcome, id)))
    }
}
