//! Whether a router may run a help now, and running it: never a router (it would loop), within the run's depth and
//! time, under the owners' policy and rate limits for it as for any call of it.

use hal_model::ToolCall;
use hal_spec::Route;
use std::sync::Arc;

use hal_spec::policy::{Level, Rule};
use serde_json::json;

use super::super::{Outcome, Prepared, RunState, Runner, first_line};
use crate::error::RunError;
use crate::model::Models;
use crate::status::Status;
use crate::tools::ToolResult;

/// A help the owners let run for the route now, ready.
pub(super) struct Admitted {
    prepared: Prepared,
    models: Arc<dyn Models>,
    /// The call to tell the owner of when it ran (AL2), with the rule that says so.
    tell: Option<(ToolCall, Rule)>,
}

/// Whether a help may run for the route now.
pub(super) enum Admit {
    /// Yes.
    Go(Box<Admitted>),
    /// No, and why (nothing written; the router's model may hear it).
    Refused(String),
    /// The run ended before it could start (a halt while waiting out the rate limits, or a wait too long for a
    /// router): this is its outcome.
    Ended(Box<Outcome>),
}

/// How running a help for the route went.
pub(super) enum Ran {
    /// It ran: its outcome, and the thread it ran on.
    Done(Box<Outcome>, String),
    /// It did not start, and why (nothing written; the router's model may hear it).
    Refused(String),
    /// The run ended before it could start (a halt while waiting out the rate limits, or a wait too long for a
    /// router, which cannot wait for later): this is its outcome.
    Ended(Box<Outcome>),
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

    /// Whether `help` may run with `input` for the route now, as the owners let any call of it run: AL0 and AL1
    /// refuse it (a router cannot wait for an approval), the rate limits may make it wait (and a wait too long ends
    /// the run ERROR: a router cannot be asked again later for the same pick). Nothing is written when refused.
    pub(super) async fn admit_for_route(
        &self,
        state: &mut RunState<'_>,
        help: &str,
        input: &str,
    ) -> Result<Admit, RunError> {
        if let Err(why) = self.room_for_route(state).and_then(|()| self.runnable(state, help)) {
            return Ok(Admit::Refused(why));
        }
        let models = state.models.subrun();
        let prepared = match self.prepare(models.as_ref(), help) {
            Ok(prepared) => prepared,
            Err(error) => return Ok(Admit::Refused(error.to_string())),
        };
        let (level, rule) = self.autonomy(state, help);
        match level {
            Level::Propose => {
                return Ok(Admit::Refused(format!("not run: {rule} sets AL0 (propose only) for `{help}`")));
            }
            Level::ApproveEach => {
                return Ok(Admit::Refused(format!(
                    "not run: {rule} sets AL1 (approve each) for `{help}`, and a router cannot wait for an owner's \
                     approval: start it on a thread of its own instead"
                )));
            }
            _ => {}
        }
        let call =
            ToolCall { id: String::new(), name: help.to_owned(), arguments: json!({"input": input}).to_string() };
        if let super::super::rate::Turn::Later(outcome) = self.take_turn(state, &call).await? {
            return Ok(Admit::Ended(outcome));
        }
        let tell = (level == Level::ActAndTell).then_some((call, rule));
        Ok(Admit::Go(Box::new(Admitted { prepared, models, tell })))
    }

    /// Run an admitted help on `sub` with `input`, as a part of the router's run; AL2 tells the owner what it did.
    pub(super) async fn run_admitted(
        &self,
        state: &mut RunState<'_>,
        admitted: Box<Admitted>,
        sub: hal_store::ThreadRef,
        input: &str,
    ) -> Result<Outcome, RunError> {
        let Admitted { prepared, models, tell } = *admitted;
        let outcome = self.sub_run(state, &prepared, models, sub, input).await?;
        if let Some((call, rule)) = tell {
            let result = ToolResult { content: outcome.output.clone(), is_error: outcome.status == Status::Error };
            self.tell(state, &call, &result, &rule);
        }
        Ok(outcome)
    }

    /// [`Runner::admit_for_route`] `help`, and run it with `input` on a new sub-thread started at `base` (the router's newest
    /// step, or main's for a help to propose).
    pub(super) async fn run_for_route(
        &self,
        state: &mut RunState<'_>,
        help: &str,
        input: &str,
        base: gix::ObjectId,
    ) -> Result<Ran, RunError> {
        let admitted = match self.admit_for_route(state, help, input).await? {
            Admit::Go(admitted) => admitted,
            Admit::Refused(why) => return Ok(Ran::Refused(why)),
            Admit::Ended(outcome) => return Ok(Ran::Ended(outcome)),
        };
        let title = format!("{help}: {}", first_line(input));
        let from = format!("thread {}", state.thread.id);
        let sub = self.journal.with(|home| home.start_thread_at(&state.actor, base, Some(&title), &from, None))?;
        let id = sub.id.clone();
        let outcome = self.run_admitted(state, admitted, sub, input).await?;
        Ok(Ran::Done(Box::new(outcome), id))
    }
}
