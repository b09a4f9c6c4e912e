//! Writing a run's steps: the model's replies, notes, the finish, each appended after the run's newest step and
//! reported to the observer.

use gix::ObjectId;
use hal_store::{NewStep, StepKind, ThreadRef, ThreadStatus, identity::HAL_ACTOR};

use super::{Event, Outcome, RunState, Runner, first_line, reply_text, without_nul};
use crate::error::RunError;
use crate::record::{FinishData, MAX_KEPT_RESPONSE, ReplyData, StepData, fact};
use crate::status::Status;

impl Runner {
    /// Commit the reply step; `Some(reason)` (and nothing written) when it is too large to be read back.
    pub(super) fn record_reply(
        &self,
        state: &mut RunState<'_>,
        turn: &crate::model::ModelTurn,
    ) -> Result<Option<String>, RunError> {
        let reply = &turn.reply;
        let response = turn
            .response
            .as_ref()
            .filter(|bytes| bytes.len() <= MAX_KEPT_RESPONSE)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        let data = ReplyData { reply: reply.clone(), response, request_bytes: turn.request_bytes };
        let mut step = NewStep::new(StepKind::Reply, without_nul(reply_text(reply)), ThreadStatus::Running)
            .fact(fact::HELP, &state.prepared.entry.name)
            .fact(fact::HELP_BLOB, state.prepared.entry.blob)
            .fact(fact::MODEL, state.prepared.model.name())
            .fact(fact::TOKENS_IN, reply.usage.input)
            .fact(fact::TOKENS_OUT, reply.usage.output)
            .fact(fact::LATENCY_MS, turn.latency.as_millis());
        data.put(&mut step)?;
        // A step HAL could not read back would stop every later run on the thread: refuse to write one.
        let size = step.text.len() + step.data.as_ref().map_or(0, String::len);
        let most = usize::try_from(hal_store::MAX_STEP_BYTES / 2).unwrap_or(usize::MAX);
        if size > most {
            return Ok(Some(format!(
                "the model's reply takes {size} bytes to record, more than the {most} a step may hold; lower \
                 limits.reply in hal.yaml"
            )));
        }
        self.append(state, HAL_ACTOR, &step)?;
        // What it spent, indexed for the budgets as it is written (at the model's price now: a later change of
        // price or name does not change what was spent).
        let model = self.catalog.settings.models.get(state.prepared.model.name());
        let price = model.and_then(|model| model.price);
        let cost = price.map_or(0.0, |price| price.cost(reply.usage.input, reply.usage.output));
        let tokens = reply.usage.input.saturating_add(reply.usage.output);
        let (branch, help) = (&state.thread.branch, &state.prepared.entry.name);
        self.journal.with(|home| home.record_spend(branch, help, tokens, cost))?;
        Ok(None)
    }

    /// A runner note to the model (a failed completion check, a refused finish), recorded as a message.
    pub(super) fn note(&self, state: &mut RunState<'_>, text: &str) -> Result<(), RunError> {
        let step =
            NewStep::new(StepKind::Message, text, ThreadStatus::Running).fact(fact::HELP, &state.prepared.entry.name);
        self.append(state, HAL_ACTOR, &step)
    }

    pub(super) fn completion_problem(&self, state: &RunState<'_>, output: &str) -> Result<Option<String>, RunError> {
        let Some(done) = &state.prepared.help.done else { return Ok(None) };
        let mut problems = Vec::new();
        if let Some(pattern) = &done.output_matches {
            match regex::Regex::new(pattern) {
                Ok(regex) if regex.is_match(output) => {}
                Ok(_) => problems.push(format!("the output does not match /{pattern}/")),
                Err(error) => problems.push(format!("done.output_matches is not a valid pattern: {error}")),
            }
        }
        for path in &done.files {
            let exists = self.journal.with(|home| home.has_file(state.tip, path))?;
            if !exists {
                problems.push(format!("the file {path} does not exist in the thread"));
            }
        }
        Ok((!problems.is_empty()).then(|| problems.join("; ")))
    }

    pub(super) fn finish(
        &self,
        state: &mut RunState<'_>,
        status: Status,
        output: &str,
        confidence: Option<f64>,
        call_id: Option<String>,
    ) -> Result<Outcome, RunError> {
        let output = &without_nul(output.to_owned());
        let mut step = NewStep::new(StepKind::Finish, output.as_str(), status.thread_status())
            .fact(fact::HELP, &state.prepared.entry.name)
            .fact(fact::AGENT, &self.agent)
            .fact(fact::HELP_BLOB, state.prepared.entry.blob)
            .fact(fact::RESULT, status)
            .fact(fact::TURNS, state.turns)
            .fact(fact::TOKENS_IN, state.usage.input)
            .fact(fact::TOKENS_OUT, state.usage.output);
        if let Some(confidence) = confidence {
            step = step.fact(fact::CONFIDENCE, confidence);
        }
        if call_id.is_some() {
            FinishData { call_id }.put(&mut step)?;
        }
        // What the run's own logic adds to its ending (a router's round, the stuck it records).
        let extra = std::mem::take(&mut state.ending);
        step.facts.extend(extra.facts);
        step.writes = extra.writes;
        let routed = extra.routed;
        self.append(state, HAL_ACTOR, &step)?;
        Ok(Outcome {
            status,
            output: output.to_owned(),
            thread: state.thread.id.clone(),
            commit: state.tip,
            turns: state.turns,
            usage: state.usage,
            confidence,
            waiting: None,
            routed,
        })
    }

    /// Append `step` after the run's newest step (or on what people pushed on top of it; never on a branch moved
    /// back or sideways under the run: [`hal_store::StoreError::Moved`] ends the run instead).
    pub(super) fn append(&self, state: &mut RunState<'_>, actor: &str, step: &NewStep) -> Result<(), RunError> {
        let step = NewStep { descends_from: Some(state.tip), ..step.clone() };
        let appended = self.journal.with(|home| home.append_step(actor, &state.thread, &step))?;
        self.appended(state, &step, appended.commit);
        Ok(())
    }

    /// [`Runner::append`] for a step that writes files. A call may write thousands: the step is built on a handle
    /// of its own, so the store's lock, which every other run and the API need, stays free, and on a blocking
    /// thread, so the runtime's workers stay free too.
    pub(super) async fn append_writes(
        &self,
        state: &mut RunState<'_>,
        actor: &str,
        step: NewStep,
    ) -> Result<(), RunError> {
        if step.writes.is_empty() {
            return self.append(state, actor, &step);
        }
        let step = NewStep { descends_from: Some(state.tip), ..step };
        let (home, actor, thread) = (self.journal.handle(), actor.to_owned(), state.thread.clone());
        let (step, appended) = tokio::task::spawn_blocking(move || {
            let appended = home.append_step(&actor, &thread, &step);
            (step, appended)
        })
        .await
        .unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic()));
        self.appended(state, &step, appended?.commit);
        Ok(())
    }

    /// What follows a committed step: the run's tip moves, observers hear of it.
    pub(super) fn appended(&self, state: &mut RunState<'_>, step: &NewStep, commit: ObjectId) {
        state.tip = commit;
        let summary = match step.kind {
            StepKind::Tool => format!(
                "{} → {}",
                step.facts.iter().find(|(k, _)| k == fact::TOOL).map_or("", |(_, v)| v),
                first_line(&step.text)
            ),
            StepKind::Finish => format!(
                "{} {}",
                step.facts.iter().find(|(k, _)| k == fact::RESULT).map_or("", |(_, v)| v),
                first_line(&step.text)
            ),
            _ => first_line(&step.text).to_owned(),
        };
        let caller = state.scope.root.as_deref().filter(|_| state.depth > 0);
        self.step_event(&state.thread, &step.kind, &summary, state.depth, &step.facts, caller);
    }

    pub(super) fn step_event(
        &self,
        thread: &ThreadRef,
        kind: &StepKind,
        summary: &str,
        depth: u32,
        facts: &[(String, String)],
        caller: Option<&str>,
    ) {
        if let Some(observer) = &self.observer {
            let (thread, branch) = (&thread.id, &thread.branch);
            observer(&Event::Step { thread, branch, kind, summary, depth, facts, caller });
        }
    }
}
