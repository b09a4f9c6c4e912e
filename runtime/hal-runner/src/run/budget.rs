//! Budgets (`budgets` in `hal.yaml`): before each model call the run asks the ledger ([`crate::ledger`]) whether
//! its thread, its help today or its actor today has spent what it may; then it ends waiting (`pending`) with a
//! budget request an owner answers with `hal approve --amount` (more of that budget) or `hal deny` (the run ends).
//! The check comes before the call, whose cost is known only after it: a run passes a budget by at most one reply,
//! and turns racing for a budget's last part by one reply each.

use hal_store::{NewStep, StepKind, ThreadStatus, identity::HAL_ACTOR};

use super::{Outcome, RunState, Runner, Waiting};
use crate::error::RunError;
use crate::ledger::Over;
use crate::record::{ApprovalData, BudgetRequest, StepData, fact};
use crate::status::Status;

impl Runner {
    /// The budget this run has reached, if any.
    pub(super) fn budget_reached(&self, state: &RunState<'_>) -> Result<Option<Over>, RunError> {
        let budgets = &self.catalog.settings.budgets;
        crate::ledger::over(&self.journal.handle(), budgets, &state.thread, &state.prepared.entry.name)
    }

    /// End the run at a budget: waiting for an owner to grant more (a sub-help's run cannot wait: it ends ERROR,
    /// and its caller reaches the same budget, or its own, at its next model call).
    pub(super) fn ask_budget(&self, state: &mut RunState<'_>, over: Over) -> Result<Outcome, RunError> {
        let (budget, spent, limit) = (over.label(), over.unit.show(over.spent), over.unit.show(over.limit));
        let thread = state.thread.id.clone();
        if state.depth > 0 {
            let reason = format!("stopped: {budget} is spent ({spent} of {limit}; `budgets` in hal.yaml)");
            return self.finish(state, Status::Error, &reason, None, None);
        }
        let unit = over.unit.as_str();
        let text = format!(
            "Waiting for an owner: {budget} is spent ({spent} of {limit}; `budgets` in hal.yaml). An owner grants \
             more with `hal approve {thread} --amount <{unit}>` (more than {} brings it back under), or ends the run \
             with `hal deny {thread} --reason \"…\"`.",
            over.unit.show(over.spent - over.limit)
        );
        let data = ApprovalData::Budget(BudgetRequest {
            budget: over.which.name(),
            unit: unit.to_owned(),
            spent: over.spent,
            limit: over.limit,
        });
        let mut step = NewStep::new(StepKind::Approval, text.as_str(), ThreadStatus::Pending)
            .fact(fact::HELP, &state.prepared.entry.name)
            .fact(fact::AGENT, &self.agent);
        data.put(&mut step)?;
        self.append(state, HAL_ACTOR, &step)?;
        if let Some(teller) = &self.teller {
            let help = &state.prepared.entry.name;
            teller(
                &state.thread.branch,
                &format!(
                    "thread {thread} (help {help}) waits: {budget} is spent ({spent} of {limit}). `hal approve {thread} \
                     --amount <{unit}>` grants more."
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
                budget: over.which.name(),
                unit: unit.to_owned(),
                spent: over.spent,
                limit: over.limit,
            }),
            routed: None,
        })
    }

    /// Who refused more budget and why, when the run's newest step is HAL's record of an owner doing so.
    pub(super) fn refused_more(&self, state: &RunState<'_>) -> Result<Option<(String, String)>, RunError> {
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
