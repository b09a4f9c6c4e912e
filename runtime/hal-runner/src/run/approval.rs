//! Calls at autonomy level AL1 (approve each): the run stops at the first call no owner approved, with an
//! `approval` step that shows the exact call, and the thread waits (`pending`). An owner's signed answer, checked
//! and written by the daemon as a `decision` step, plans the next turn ([`crate::plan::plan_for`]); the resumed
//! run finds the answer among the steps since the reply ([`crate::plan::PendingReply`]) and runs the call, or
//! gives the model the owner's reason. An approval for the whole thread covers later calls of the same tool there.

use gix::ObjectId;
use hal_model::{Reply, ToolCall};
use hal_store::{NewStep, StepKind, ThreadStatus, identity::HAL_ACTOR};
use hal_trust::approval::{Scope, Subject, sha256_hex};

use super::{Outcome, RunState, Runner, Waiting};
use crate::error::RunError;
use crate::record::{ApprovalData, CallRequest, DecisionData, StepData, fact};
use crate::status::Status;

/// How far back a run looks on its thread for approvals that cover the whole thread.
const LOOK_BACK: usize = 10_000;

/// What an owner said of one call.
pub(super) enum Answer {
    /// It may run.
    Approved,
    /// It may not: the model hears why.
    Denied(String),
    /// Nobody answered yet (or no answer counts: then why not).
    Ask(Option<String>),
}

/// The approval requests and answers written since a reply, as the plan read them.
#[derive(Default)]
pub(super) struct Answers {
    pub requests: Vec<(ObjectId, ApprovalData)>,
    pub decisions: Vec<DecisionData>,
    /// The thread's approvals for a whole tool, read when the first AL1 call needs them.
    pub for_thread: Option<Vec<DecisionData>>,
}

impl Runner {
    /// The owner's answer to `call`, the `index`th tool call of the reply at `reply`.
    pub(super) fn answer(
        &self,
        state: &RunState<'_>,
        answers: &mut Answers,
        reply: ObjectId,
        index: u32,
        call: &ToolCall,
    ) -> Result<Answer, RunError> {
        let args_sha256 = sha256_hex(call.arguments.as_bytes());
        let thread = &state.thread;
        let help = &state.prepared.entry.name;
        let keyring = self.journal.with(hal_trust::Keyring::load).map_err(RunError::from_trust)?;
        let mut problem = None;
        // An answer to this very call: to a request for it written since its reply, over exactly what was asked.
        for (commit, request) in &answers.requests {
            let ApprovalData::Call(asked_for) = request else { continue };
            let fits = ObjectId::from_hex(asked_for.reply.as_bytes()).ok() == Some(reply)
                && asked_for.index == index
                && asked_for.call.name == call.name
                && asked_for.args_sha256 == args_sha256
                && asked_for.help == *help;
            if !fits {
                continue;
            }
            let asked = request.asked(&thread.id, &commit.to_string(), 0);
            for decision in answers.decisions.iter().filter(|decision| decision.asked == asked) {
                match decision.problem(&keyring) {
                    None if decision.approve => return Ok(Answer::Approved),
                    None => {
                        let reason = format!(
                            "denied by {}, an owner: {}",
                            decision.by,
                            if decision.reason.is_empty() { "(no reason given)" } else { &decision.reason }
                        );
                        return Ok(Answer::Denied(reason));
                    }
                    Some(why) => problem = Some(format!("the answer of {} no longer counts: {why}", decision.by)),
                }
            }
        }
        // An approval of this tool for the whole thread, given while this help ran. Read on a handle of its own:
        // a long thread never holds the store's lock, which every run needs.
        if answers.for_thread.is_none() {
            answers.for_thread = Some(thread_approvals(&self.journal.handle(), thread)?);
        }
        let for_thread = answers.for_thread.as_deref().unwrap_or_default();
        let covers = |decision: &&DecisionData| matches!(&decision.asked.subject, Subject::Call { tool, help: by, .. } if *tool == call.name && by == help);
        for decision in for_thread.iter().filter(covers) {
            match decision.problem(&keyring) {
                None => return Ok(Answer::Approved),
                Some(why) => problem = Some(format!("the approval of {} no longer counts: {why}", decision.by)),
            }
        }
        Ok(Answer::Ask(problem))
    }

    /// End the run waiting for an owner's approval of `call` (the `index`th call of `reply`, at `reply_commit`):
    /// an `approval` step shows the exact call, the thread is `pending`, the owner is told.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ask_approval(
        &self,
        state: &mut RunState<'_>,
        reply: &Reply,
        reply_commit: ObjectId,
        index: u32,
        call: &ToolCall,
        rule: &hal_spec::policy::Rule,
        problem: Option<String>,
    ) -> Result<Outcome, RunError> {
        let data = ApprovalData::Call(CallRequest {
            call: call.clone(),
            reply: reply_commit.to_string(),
            index,
            args_sha256: sha256_hex(call.arguments.as_bytes()),
            help: state.prepared.entry.name.clone(),
            aliases: self.toolbox.policy_names(&call.name),
            callers: state.scope.callers.clone(),
        });
        let arguments = shown(&call.arguments);
        // The model's words, escaped too: they must not pass for lines of HAL's own text.
        let why = shown(reply.text.trim());
        let thread = state.thread.id.clone();
        let mut text = format!(
            "Waiting for an owner's approval: {rule} sets AL1 (approve each) for `{}`.\nThe call (number {index} of \
             its reply) and its arguments, escaped, as the model gave them: {} {arguments}\n",
            call.name, call.name
        );
        if !reply.text.trim().is_empty() {
            text.push_str(&format!("The model's words with it (not instructions): {why}\n"));
        }
        if let Some(problem) = problem {
            text.push_str(&format!("Asked again: {problem}\n"));
        }
        text.push_str(&format!(
            "An owner answers with `hal approve {thread}` (add `--scope thread` to approve every `{}` call on this \
             thread) or `hal deny {thread} --reason \"…\"`.",
            call.name
        ));
        let mut step = NewStep::new(StepKind::Approval, text.as_str(), ThreadStatus::Pending)
            .fact(fact::HELP, &state.prepared.entry.name)
            .fact(fact::AGENT, &self.agent)
            .fact(fact::TOOL, &call.name)
            .fact(fact::CALL, &call.id)
            .fact(fact::AUTONOMY, "AL1");
        data.put(&mut step)?;
        self.append(state, HAL_ACTOR, &step)?;
        if let Some(teller) = &self.teller {
            teller(
                &state.thread.branch,
                &format!(
                    "thread {thread} (help {}) waits for an owner's approval to call {}: see `hal thread log {thread}`, \
                     then `hal approve {thread}` or `hal deny {thread} --reason \"…\"`",
                    state.prepared.entry.name, call.name
                ),
            );
        }
        Ok(Outcome {
            status: Status::Pending,
            output: text,
            thread: state.thread.id.clone(),
            commit: state.tip,
            turns: state.turns,
            usage: state.usage,
            confidence: None,
            waiting: Some(Waiting::Approval { tool: call.name.clone(), call: index }),
            routed: None,
        })
    }
}

/// The approvals for a whole tool on `thread` that HAL wrote there (its newest [`LOOK_BACK`] steps).
fn thread_approvals(home: &hal_store::Home, thread: &hal_store::ThreadRef) -> Result<Vec<DecisionData>, RunError> {
    let mut found = Vec::new();
    for step in home.steps_back(thread).take(LOOK_BACK) {
        let step = step?;
        if step.kind != StepKind::Decision || step.fact(fact::SCOPE) != Some(Scope::Thread.as_str()) {
            continue;
        }
        if !home.wrote_on(step.commit, &thread.branch)? {
            continue;
        }
        if let Some(decision) = DecisionData::of(&step)?
            && decision.approve
            && decision.scope == Scope::Thread
            && decision.asked.thread == thread.id
        {
            found.push(decision);
        }
    }
    Ok(found)
}

/// Text from a model as a JSON string (quotes, control characters and newlines escaped, so it cannot pass for lines
/// of HAL's), cut at 2,000 characters with its whole size and SHA-256 when longer.
fn shown(text: &str) -> String {
    const MOST: usize = 2_000;
    let escaped = serde_json::to_string(text).unwrap_or_default();
    if escaped.chars().count() <= MOST {
        return escaped;
    }
    let cut: String = escaped.chars().take(MOST).collect();
    format!("{cut}… (cut: {} bytes in all, SHA-256 {})", text.len(), sha256_hex(text.as_bytes()))
}
