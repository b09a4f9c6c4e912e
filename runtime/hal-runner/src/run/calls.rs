//! A call the model makes: a tool of the help's, or a sub-help run on a thread of its own, recorded as one step.

use std::time::Instant;

use hal_model::ToolCall;
use hal_store::{NewStep, StepKind, ThreadStatus, identity::HAL_ACTOR};
use serde_json::{Value, json};

use super::{Begin, FINISH, Prepared, RunState, Runner, cut_to_step, deadline_after, without_nul};
use crate::error::RunError;
use crate::record::{StepData, ToolData, fact};
use crate::status::Status;
use crate::tools::{ToolContext, ToolResult};

/// The sub-thread a call ran a help on, and the step where that run asks a question (when it ended PENDING).
pub(super) struct Sub {
    pub id: String,
    pub asks: Option<gix::ObjectId>,
}

impl Runner {
    pub(super) async fn call_tool(&self, state: &mut RunState<'_>, call: &ToolCall) -> Result<ToolResult, RunError> {
        let mut subthread = None;
        let result = if state.prepared.helps.contains(&call.name) {
            let (result, thread) = self.call_help(state, call).await?;
            subthread = thread;
            result
        } else if state.prepared.tools.iter().any(|tool| tool.spec().name == call.name) {
            let mut context = ToolContext::new(self.journal.clone(), &state.thread.id, state.tip)
                .with_actor(&state.actor)
                .with_config(&state.prepared.help.config)
                .with_branch(&state.thread.branch)
                .with_run(state.scope.clone());
            if let Some(observer) = self.observer.clone() {
                let (thread, branch) = (state.thread.id.clone(), state.thread.branch.clone());
                let caller = state.scope.root.clone().unwrap_or_else(|| branch.clone());
                let tool = call.name.clone();
                context = context.with_progress(std::sync::Arc::new(move |done, total, message: &str| {
                    let (thread, branch, caller, tool) = (&thread, &branch, &caller, &tool);
                    observer(&super::Event::Progress { thread, branch, caller, tool, done, total, message });
                }));
            }
            let remaining = state.deadline.saturating_duration_since(Instant::now());
            let result = tokio::time::timeout(remaining, self.toolbox.call(&call.name, &call.arguments, &mut context))
                .await
                .unwrap_or_else(|_| ToolResult::error("the tool did not finish before the run's time limit"));
            let writes = context.into_writes();
            let (step, result) = self.tool_step(state, call, result, writes, None)?;
            self.append_writes(state, HAL_ACTOR, step).await?;
            return Ok(result);
        } else {
            let mut offered: Vec<&str> = state.prepared.tools.iter().map(|t| t.spec().name.as_str()).collect();
            offered.extend(state.prepared.helps.iter().map(String::as_str));
            offered.push(FINISH);
            ToolResult::error(format!("there is no tool `{}`; this help offers: {}", call.name, offered.join(", ")))
        };
        self.record_tool(state, call, result, subthread)
    }

    /// Run a help named in `commands` on a new sub-thread started from the caller's current step.
    pub(super) async fn call_help(
        &self,
        state: &mut RunState<'_>,
        call: &ToolCall,
    ) -> Result<(ToolResult, Option<Sub>), RunError> {
        if Instant::now() >= state.deadline {
            return Ok((ToolResult::error("not started: the run is out of time"), None));
        }
        if state.depth + 1 > state.prepared.limits.max_depth {
            let reason = format!(
                "helps may call helps only {} deep (limits.max_depth in hal.yaml)",
                state.prepared.limits.max_depth
            );
            return Ok((ToolResult::error(reason), None));
        }
        let args = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(args) => args,
            Err(error) => return Ok((ToolResult::error(format!("the arguments are not valid JSON: {error}")), None)),
        };
        let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
        let models = state.models.subrun();
        // Checked before anything is written: a help that cannot run leaves no thread behind.
        let prepared = match self.prepare(models.as_ref(), &call.name) {
            Ok(prepared) => prepared,
            Err(error) => return Ok((ToolResult::error(error.to_string()), None)),
        };
        // An answer to the question a run of this help asked on its own thread: that run goes on there.
        if args.get("thread").is_some() || args.get("answer").is_some() {
            let (Some(thread), Some(answer), None) = (text("thread"), text("answer"), args.get("input")) else {
                let reason = "to answer a help's question, give both `thread` (as its result named it) and `answer` \
                              (and no `input`)";
                return Ok((ToolResult::error(reason), None));
            };
            let sub = match self.asking_thread(state, &call.name, thread)? {
                Ok(sub) => sub,
                Err(reason) => return Ok((ToolResult::error(reason), None)),
            };
            // What the resumed run meets in the repository (a step written on its thread meanwhile, a frozen
            // branch) is this call's failure, not the caller's.
            return match self.run_sub(state, call, &prepared, models, sub, answer).await {
                Err(error) => Ok((ToolResult::error(format!("not answered: {error}")), None)),
                done => done,
            };
        }
        let Some(input) = text("input") else {
            return Ok((ToolResult::error("the arguments need a non-empty `input` text"), None));
        };
        let title = format!("{}: {}", call.name, input.lines().next().unwrap_or_default());
        let from = format!("thread {}", state.thread.id);
        let sub = self.journal.with(|home| home.start_thread_at(&state.actor, state.tip, Some(&title), &from, None))?;
        self.run_sub(state, call, &prepared, models, sub, input).await
    }

    /// Run help `call.name` (`prepared`) on `sub` (a new sub-thread, or one whose run asked a question) with
    /// `input`, and give back its ending as the call's result.
    async fn run_sub(
        &self,
        state: &mut RunState<'_>,
        call: &ToolCall,
        prepared: &Prepared,
        models: std::sync::Arc<dyn crate::model::Models>,
        sub: hal_store::ThreadRef,
        input: &str,
    ) -> Result<(ToolResult, Option<Sub>), RunError> {
        let outcome = self.sub_run(state, prepared, models, sub.clone(), input).await?;
        let mut content = json!({"status": outcome.status, "output": outcome.output, "thread": sub.id});
        // A router's ending is the help's it ran: where that help's work is.
        if let Some(routed) = &outcome.routed {
            content["routed"] = json!(routed);
        }
        // A sub-run ends PENDING only with the model's question (what waits for a person ends it ERROR): it crosses
        // over, and the calling model may answer it, or ask the person in turn.
        let asks = (outcome.status == Status::Pending).then_some(outcome.commit);
        if asks.is_some() {
            content["to_answer"] = json!(format!(
                "call `{}` again with this `thread` and your `answer`; if only the person can answer, end your run \
                 PENDING with the question (their answer comes back to you)",
                call.name
            ));
        }
        let result = ToolResult { content: content.to_string(), is_error: outcome.status == Status::Error };
        Ok((result, Some(Sub { id: sub.id, asks })))
    }

    /// Run `prepared` on `sub` with `input` as a part of this run: one deeper, within its time, its spending
    /// counted against this run's token limit too.
    pub(super) async fn sub_run(
        &self,
        state: &mut RunState<'_>,
        prepared: &Prepared,
        models: std::sync::Arc<dyn crate::model::Models>,
        sub: hal_store::ThreadRef,
        input: &str,
    ) -> Result<super::Outcome, RunError> {
        models.ran_on(&sub.id);
        let own_deadline = deadline_after(prepared.limits.max_seconds);
        let deadline = own_deadline.min(state.deadline);
        // A sub-run is part of its caller's run: the same chain, the same count of threads started, and the
        // caller's own policy rules.
        let mut scope = state.scope.clone();
        scope.callers.push(state.prepared.entry.name.clone());
        let scope = Some(scope);
        let depth = state.depth + 1;
        let begin = Begin::Input(input);
        let outcome = self.execute(prepared, models, sub, &state.actor, begin, depth, scope, deadline).await?;
        state.usage.input = state.usage.input.saturating_add(outcome.usage.input);
        state.usage.output = state.usage.output.saturating_add(outcome.usage.output);
        Ok(outcome)
    }

    pub(super) fn record_tool(
        &self,
        state: &mut RunState<'_>,
        call: &ToolCall,
        result: ToolResult,
        subthread: Option<Sub>,
    ) -> Result<ToolResult, RunError> {
        let (step, result) = self.tool_step(state, call, result, Vec::new(), subthread)?;
        self.append(state, HAL_ACTOR, &step)?;
        Ok(result)
    }

    /// The tool step answering `call` with `result` and the call's file `writes`, and the result as the model gets
    /// it.
    pub(super) fn tool_step(
        &self,
        state: &RunState<'_>,
        call: &ToolCall,
        result: ToolResult,
        writes: Vec<(String, Vec<u8>)>,
        subthread: Option<Sub>,
    ) -> Result<(NewStep, ToolResult), RunError> {
        // A commit message cannot hold NUL, nor may a step grow past what HAL reads back: the model and the record
        // both get the same, replaced and cut, text.
        let result = ToolResult { content: cut_to_step(without_nul(result.content)), is_error: result.is_error };
        let mut step = NewStep::new(StepKind::Tool, result.content.clone(), ThreadStatus::Running)
            .fact(fact::HELP, &state.prepared.entry.name)
            .fact(fact::TOOL, &call.name)
            .fact(fact::CALL, &call.id)
            .fact(fact::OUTCOME, if result.is_error { "error" } else { "ok" });
        if let Some(sub) = subthread {
            step = step.fact(fact::SUBTHREAD, sub.id);
            if let Some(asks) = sub.asks {
                step = step.fact(fact::SUBTHREAD_ASKS, asks);
            }
        }
        ToolData { call: call.clone(), also: Vec::new() }.put(&mut step)?;
        step.writes = writes;
        Ok((step, result))
    }
}
