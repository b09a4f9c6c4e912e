//! Budgets (`budgets` in `hal.yaml`): before each model call the run asks the ledger ([`crate::ledger`]) whether
//! its thread, its help today or its actor today has spent what it may; then it ends waiting (`pending`) with a
//! budget request an owner answers with `hal approve --amount` (more of that budget) or `hal deny`. The check
//! comes before the call, whose cost is known only after it: turns racing for a budget's last part each overrun it
//! by at most one reply.

use hal_store::{NewStep, StepKind, ThreadStatus, identity::HAL_ACTOR};

use super::{Outcome, RunState, Runner, Waiting};
use crate::error::RunError;
use crate::ledger::{Over, Unit};
use crate::record::{ApprovalData, BudgetRequest, StepData, fact};
use crate::status::Status;

impl Runner {
    /// The budget this run has reached, if any.
    pub(super) fn budget_reached(&self, state: &RunState<'_>) -> Result<Option<Over>, RunError> {
        let settings = &self.catalog.settings;
        let price = |model: &str| settings.models.get(model).and_then(|model| model.price);
        // On a handle of its own: the first check of a day reads the day's steps of every thread, and must not
        // hold the store's lock meanwhile.
        let home = self.journal.handle();
        // Read up to the run's newest step (the thread as the run began is long behind it).
        let thread = hal_store::ThreadRef { tip: state.tip, ..state.thread.clone() };
        self.ledger.over(&home, &settings.budgets, &price, &thread, &state.prepared.entry.name)
    }

    /// End the run at a budget: waiting for an owner to grant more (a sub-help's run cannot wait: it ends ERROR,
    /// and its caller reaches the same budget, or its own, at its next model call).
    pub(super) fn ask_budget(&self, state: &mut RunState<'_>, over: Over) -> Result<Outcome, RunError> {
        let shown = |amount: f64| match over.unit {
            Unit::Tokens => format!("{amount:.0} tokens"),
            Unit::Usd => format!("${amount:.2}"),
        };
        let (budget, spent, limit) = (over.which.name(), shown(over.spent), shown(over.limit));
        let thread = state.thread.id.clone();
        if state.depth > 0 {
            let reason = format!("stopped: the {budget} budget is spent ({spent} of {limit}; `budgets` in hal.yaml)");
            return self.finish(state, Status::Error, &reason, None, None);
        }
        // Resumed from an owner's refusal of more: the run ends there (asking again would wait forever).
        if let Some((by, reason)) = self.refused_more(state)? {
            let reason =
                format!("stopped: {by} did not grant more of the {budget} budget ({spent} of {limit}): {reason}");
            return self.finish(state, Status::Error, &reason, None, None);
        }
        let text = format!(
            "Waiting for an owner: the {budget} budget is spent ({spent} of {limit}; `budgets` in hal.yaml). An owner \
             grants more with `hal approve {thread} --amount <{}>`, or ends it with `hal deny {thread} --reason \"…\"`.",
            over.unit.as_str()
        );
        let data = ApprovalData::Budget(BudgetRequest {
            budget: budget.clone(),
            unit: over.unit.as_str().to_owned(),
            spent: over.spent,
            limit: over.limit,
        });
        let mut step = NewStep::new(StepKind::Approval, text.as_str(), ThreadStatus::Pending)
            .fact(fact::HELP, &state.prepared.entry.name)
            .fact(fact::AGENT, &self.agent);
        data.put(&mut step)?;
        self.append(state, HAL_ACTOR, &step)?;
        if let Some(teller) = &self.teller {
            teller(
                &state.thread.branch,
                &format!(
                    "thread {thread} (help {}) waits: the {budget} budget is spent ({spent} of {limit}). `hal approve \
                     {thread} --amount <{}>` grants more.",
                    state.prepared.entry.name,
                    over.unit.as_str()
                ),
            );
        }
        Ok(Outcome {
            status: Status::Pending,
            output: text,
            thread,
            commit: state.tip,
            turns: state.turns,
            usage: state.usage,
            confidence: None,
            waiting: Some(Waiting::Budget {
                budget,
                unit: over.unit.as_str().to_owned(),
                spent: over.spent,
                limit: over.limit,
            }),
        })
    }
}

impl Runner {
    /// Who refused more budget and why, when the run's newest step is HAL's record of an owner doing so.
    fn refused_more(&self, state: &RunState<'_>) -> Result<Option<(String, String)>, RunError> {
        let thread = hal_store::ThreadRef { tip: state.tip, ..state.thread.clone() };
        let home = self.journal.handle();
        let Some(step) = home.steps_back(&thread).next().transpose()? else { return Ok(None) };
        if step.kind != StepKind::Decision || !home.wrote_on(step.commit, &thread.branch)? {
            return Ok(None);
        }
        let Some(decision) = crate::record::DecisionData::of(&step)? else { return Ok(None) };
        let budget = matches!(decision.asked.subject, hal_trust::approval::Subject::Budget { .. });
        let reason = if decision.reason.is_empty() { "(no reason given)".to_owned() } else { decision.reason };
        Ok((budget && !decision.approve).then_some((decision.by, reason)))
    }
}
