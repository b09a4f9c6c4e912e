//! Before a run and at each model turn: the help checked and made ready (its model, its tools and sub-helps, as the
//! agent's lists and the policy allow), the system prompt and tool specs the model is given, and the next reply
//! asked for within the run's limits and budgets.

use std::sync::Arc;
use std::time::Instant;

use hal_model::{Reply, Request, ToolSpec};
use hal_spec::{Agent, Help};
use serde_json::json;

use super::{Event, FINISH, HELPS_PLACEHOLDER, Outcome, RunLimits, RunState, Runner};
use crate::catalog::HelpEntry;
use crate::conversation::Conversation;
use crate::error::RunError;
use crate::model::{Model, Models};
use crate::status::Status;
use crate::tools::Tool;

/// A help ready to run: checked, with its model and tools.
pub(super) struct Prepared {
    pub(super) entry: HelpEntry,
    pub(super) help: Help,
    pub(super) agent: Agent,
    pub(super) model: Arc<dyn Model>,
    pub(super) tools: Vec<Arc<dyn Tool>>,
    pub(super) helps: Vec<String>,
    pub(super) limits: RunLimits,
}

impl Runner {
    /// Check that help `name` can run with `models` (it exists, is valid, its commands exist, a model is
    /// configured for it), without writing anything.
    pub fn check(&self, models: &dyn Models, name: &str) -> Result<(), RunError> {
        self.prepare(models, name).map(drop)
    }

    /// Check that `help` can run and choose its model and tools, before anything is written.
    pub(super) fn prepare(&self, models: &dyn Models, name: &str) -> Result<Prepared, RunError> {
        let (entry, help) = self.catalog.help(name)?;
        let (_, agent) = self.catalog.agent(&self.agent)?;
        let policy = &self.catalog.settings.policy;
        if policy.is_disabled(name) {
            return Err(RunError::Disabled(name.to_owned()));
        }
        // The agent's file says what it may run and call: `helps` and `isolates` (everything when absent).
        let not_allowed = |what: String, list| RunError::NotAllowed { agent: self.agent.clone(), what, list };
        if !agent.may_run(name) {
            return Err(not_allowed(format!("run help `{name}`"), "helps"));
        }
        let mut tools = Vec::new();
        let mut helps = Vec::new();
        for command in &help.commands {
            let selected = self.toolbox.select(command);
            if !selected.is_empty() {
                // `files` offers the functions the agent may call; none at all is an error in the files.
                let allowed: Vec<_> = selected.into_iter().filter(|tool| agent.may_call(&tool.spec().name)).collect();
                if allowed.is_empty() {
                    return Err(not_allowed(format!("call `{command}`, which help `{name}` uses"), "isolates"));
                }
                // What the policy turns off is not offered at all (the help runs without it).
                // A rule may name the plugin version a tool runs (`wc@v2` for `wc.count`).
                let disabled = |tool: &std::sync::Arc<dyn crate::tools::Tool>| {
                    policy.is_disabled(&tool.spec().name) || tool.policy_names().iter().any(|n| policy.is_disabled(n))
                };
                tools.extend(allowed.into_iter().filter(|tool| !disabled(tool)));
            } else if self.catalog.entry(command).is_some() {
                if !agent.may_run(command) {
                    return Err(not_allowed(format!("run help `{command}`, which help `{name}` calls"), "helps"));
                }
                if !policy.is_disabled(command) {
                    helps.push(command.clone());
                }
            } else {
                return Err(RunError::UnknownCommand {
                    help: name.to_owned(),
                    command: command.clone(),
                    tools: self.toolbox.names(),
                });
            }
        }
        let model = if help.runner.model.is_some() || help.runner.task.is_some() {
            models.choose(help.runner.model.as_deref(), help.runner.task.as_deref())?
        } else {
            models.choose(agent.model.as_deref(), agent.task.as_deref())?
        };
        let limits = RunLimits::for_help(help, &self.catalog.settings.limits);
        Ok(Prepared { entry: entry.clone(), help: help.clone(), agent: agent.clone(), model, tools, helps, limits })
    }

    /// Ask the model for the next reply and record it; `Err` with the run's outcome when a limit, the deadline
    /// or the model ends the run instead.
    pub(super) async fn next_reply(
        &self,
        state: &mut RunState<'_>,
        conversation: &mut Conversation,
        system: &str,
        tools: &[ToolSpec],
    ) -> Result<Result<Reply, Outcome>, RunError> {
        let prepared = state.prepared;
        if let Some(reason) = self.limit_reached(state) {
            return self.finish(state, Status::Error, &reason, None, None).map(Err);
        }
        // Resumed from an owner's refusal of more budget: the run ends there, whatever the budgets say now.
        if let Some((by, reason)) = self.refused_more(state)? {
            let reason = format!("stopped: {by} did not grant more budget: {reason}");
            return self.finish(state, Status::Error, &reason, None, None).map(Err);
        }
        if let Some(over) = self.budget_reached(state)? {
            return self.ask_budget(state, over).map(Err);
        }
        let request = Request {
            system: system.to_owned(),
            messages: conversation.window(),
            tools: tools.to_vec(),
            temperature: prepared.help.runner.temperature,
        };
        let remaining = state.deadline.saturating_duration_since(Instant::now());
        let (thread_id, branch) = (state.thread.id.clone(), state.thread.branch.clone());
        let observer = self.observer.clone();
        let mut on_text = move |delta: &str| {
            if let Some(observer) = &observer {
                observer(&Event::Text { thread: &thread_id, branch: &branch, delta });
            }
        };
        let turn = match tokio::time::timeout(remaining, prepared.model.complete(&request, &mut on_text)).await {
            Err(_) => {
                let reason = format!(
                    "stopped: the run took longer than its limit of {} s (runner.max_seconds in the help, or \
                         limits.max_seconds in hal.yaml)",
                    prepared.limits.max_seconds
                );
                return self.finish(state, Status::Error, &reason, None, None).map(Err);
            }
            Ok(Err(error)) => return self.finish(state, Status::Error, &error.to_string(), None, None).map(Err),
            Ok(Ok(turn)) => turn,
        };
        state.turns += 1;
        state.usage.input = state.usage.input.saturating_add(turn.reply.usage.input);
        state.usage.output = state.usage.output.saturating_add(turn.reply.usage.output);
        if let Some(reason) = self.record_reply(state, &turn)? {
            return self.finish(state, Status::Error, &reason, None, None).map(Err);
        }
        let reply = turn.reply;
        conversation.push(reply.to_message());
        Ok(Ok(reply))
    }

    /// The system prompt: the agent's persona, the help's instructions (with the catalogue where it asks for
    /// it) and how to finish.
    pub(super) fn system_prompt(&self, agent: &Agent, help: &Help) -> String {
        let mut prompt = agent.persona.join("\n");
        let instructions = help.system_prompt();
        if !prompt.is_empty() && !instructions.is_empty() {
            prompt.push_str("\n\n");
        }
        prompt.push_str(&instructions);
        if prompt.contains(HELPS_PLACEHOLDER) {
            prompt = prompt.replace(HELPS_PLACEHOLDER, self.catalog.describe_helps().trim_end());
        }
        if !prompt.is_empty() {
            prompt.push_str("\n\n");
        }
        prompt.push_str(
            "When the job is done, answer with the result, or call `finish` with status DONE and the result. \
             If you need information only the person can give, call `finish` with status PENDING and one clear \
             question. If the job cannot be done with what you have, call `finish` with NOCANDO and say why; if \
             something failed, ERROR and what failed.",
        );
        prompt
    }

    pub(super) fn tool_specs(&self, prepared: &Prepared) -> Vec<ToolSpec> {
        let mut specs: Vec<ToolSpec> = prepared.tools.iter().map(|tool| tool.spec().clone()).collect();
        for name in &prepared.helps {
            let description = self
                .catalog
                .entry(name)
                .and_then(|e| e.spec.as_ref())
                .map(|h| h.description.trim().to_owned())
                .unwrap_or_default();
            specs.push(ToolSpec {
                name: name.clone(),
                description: format!(
                    "Run the help `{name}` on a sub-thread and get its status and output. When it ends PENDING with \
                     a question, answer it by calling `{name}` again with the `thread` it names and your `answer`. \
                     {description}"
                ),
                parameters: json!({"type": "object", "additionalProperties": false,
                    "properties": {
                        "input": {"type": "string", "description": "The request for the help"},
                        "thread": {"type": "string", "description": "The thread of a question the help asked"},
                        "answer": {"type": "string", "description": "Your answer to that question"}}}),
            });
        }
        specs.push(ToolSpec {
            name: FINISH.to_owned(),
            description: "End this run with a status and its output.".to_owned(),
            parameters: json!({"type": "object", "required": ["status", "output"],
                "properties": {
                    "status": {"enum": ["DONE", "PENDING", "ERROR", "NOCANDO"]},
                    "output": {"type": "string", "description": "The result, the question (PENDING) or the reason"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}),
        });
        specs
    }

    pub(super) fn limit_reached(&self, state: &RunState<'_>) -> Option<String> {
        let limits = state.prepared.limits;
        if state.turns >= limits.max_steps {
            return Some(format!(
                "stopped after {} model turns, the limit (runner.max_steps in the help, or limits.max_steps in hal.yaml)",
                state.turns
            ));
        }
        let used = state.usage.input.saturating_add(state.usage.output);
        if used >= limits.max_tokens {
            return Some(format!(
                "stopped after using {used} tokens, over the limit of {} (runner.max_tokens in the help, or \
                 limits.max_tokens in hal.yaml)",
                limits.max_tokens
            ));
        }
        if Instant::now() >= state.deadline {
            return Some(format!(
                "stopped: the run took longer than its limit of {} s (runner.max_seconds in the help, or \
                 limits.max_seconds in hal.yaml)",
                limits.max_seconds
            ));
        }
        None
    }
}
