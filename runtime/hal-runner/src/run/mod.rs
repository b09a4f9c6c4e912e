//! The standard runner: one loop that executes any help.
//!
//! A run takes one text and ends with a [`Status`] and an output. Each model turn is a `reply` step, each tool
//! call a `tool` step (its file writes in the same commit), and the end a `finish` step; the request itself is a
//! `message` step. The model ends the run by calling the built-in `finish` tool, or by answering with plain text,
//! which means `DONE`. Helps named in `commands` run as sub-threads: a new branch started from the caller's
//! current step, whose `{status, output}` comes back as the tool result.
//!
//! Here is the loop; `builder` makes a runner, `prepare` readies a help and asks for each reply, `calls` runs a
//! call or a sub-help (`crossover` answers a sub-help's question), `autonomy`, `approval`, `budget` and `rate` hold
//! the owners' limits, `steps` writes steps, `resume` says what a resumed run refuses, `memory` keeps
//! conversations, `outcome` and `text` are what a run gives back and the texts it makes.

use std::sync::Arc;
use std::time::Instant;

use gix::ObjectId;
use hal_model::{Message, ToolCall, Usage};
use hal_spec::policy::Level;
use hal_store::{NewStep, StepKind, ThreadRef, ThreadStatus, identity::HAL_ACTOR};

use crate::catalog::Catalog;
use crate::conversation::{Conversation, finish_result};
use crate::error::RunError;
use crate::model::Models;
use crate::record::fact;
use crate::shared_home::SharedHome;
use crate::status::Status;
use crate::tools::{BoxFuture, RunScope, ToolResult, Toolbox};

mod approval;
mod autonomy;
mod budget;
mod builder;
mod calls;
mod crossover;
mod memory;
mod outcome;
mod prepare;
mod rate;
mod resume;
mod route;
mod steps;
mod text;
use crate::plan::{PendingReply, Start, Turn};
use hal_store::files::first_line;
pub use outcome::{DEFAULT_LIMITS, Event, Observer, Outcome, Routed, RunLimits, Waiting};
use prepare::Prepared;
use resume::chain_scope;
use text::{
    cut_to_step, deadline_after, missing_secrets, parse_finish, plain_reply, reply_text, tool_message, without_nul,
};

pub use crate::record::FINISH;
/// The placeholder in a help's instructions replaced by the catalogue of helps.
pub const HELPS_PLACEHOLDER: &str = "{{helps}}";

/// Tool calls run from one model reply; further calls in the same reply get an error result instead.
pub const MAX_CALLS_PER_REPLY: usize = 32;

/// How many threads' conversations a runner keeps in memory between runs.
const CACHED_CONVERSATIONS: usize = 64;

/// Runs helps on threads of one home repo.
#[derive(Clone)]
pub struct Runner {
    journal: SharedHome,
    catalog: Arc<Catalog>,
    toolbox: Toolbox,
    observer: Option<Observer>,
    /// The agent runs work as.
    agent: String,
    /// Conversations of recent runs by branch, with the tip they are current at: the next run on the same
    /// thread continues from memory instead of reading its steps again.
    conversations: Arc<std::sync::Mutex<Vec<(String, ObjectId, Conversation)>>>,
    /// Asked before every model call and tool call: `Some(why)` when an owner halted HAL, and the run ends there.
    halt: Option<HaltCheck>,
    /// Tells the owner what ran at autonomy level AL2 (their backchat, when a daemon runs).
    teller: Option<Teller>,
}

/// Tells the owner, in their backchat, what a run on the branch (first argument) did.
pub type Teller = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Whether HAL is halted, and why (`halted by <owner>: <reason>`).
pub type HaltCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What a run starts from.
#[derive(Clone, Copy)]
enum Begin<'a> {
    /// A new request: appended to the thread as a message first.
    Input(&'a str),
    /// What is committed, as a plan read it.
    Turn(&'a Start),
}

/// One run's moving parts.
struct RunState<'a> {
    prepared: &'a Prepared,
    models: Arc<dyn Models>,
    thread: ThreadRef,
    actor: String,
    depth: u32,
    deadline: Instant,
    tip: ObjectId,
    turns: u32,
    usage: Usage,
    /// What this run's tool calls share.
    scope: RunScope,
    /// The reply whose calls are being made (what a call's model saw is what came before it).
    reply: ObjectId,
    /// The request this run answers (its message), when there is one.
    request: Option<ObjectId>,
    /// Facts and files the `finish` step adds.
    ending: Ending,
}

/// What a run's `finish` step carries besides its status and output.
#[derive(Default)]
struct Ending {
    facts: Vec<(String, String)>,
    writes: Vec<(String, Vec<u8>)>,
    routed: Option<Routed>,
}

impl Runner {
    /// Run help `help` on `thread` with `input`, asked by `actor`. The input is appended to the thread as a
    /// message; a thread waiting on `PENDING` is resumed with its whole history.
    pub async fn run(
        &self,
        models: Arc<dyn Models>,
        thread: &ThreadRef,
        actor: &str,
        help: &str,
        input: &str,
    ) -> Result<Outcome, RunError> {
        let prepared = self.prepare(models.as_ref(), help)?;
        let deadline = deadline_after(prepared.limits.max_seconds);
        self.execute(&prepared, models, thread.clone(), actor, Begin::Input(input), 0, None, deadline).await
    }

    /// Run the turn a plan decided on ([`crate::plan::plan_for`]), as its agent, from what the plan read: the tip is
    /// a person's message (a `message` step, or a plain git commit whose message is the text) or a step of a run
    /// that was interrupted. Tool calls of the newest reply that have no result yet are run first; a reply that
    /// ended the run without its `finish` step is finished. A resumed run gets fresh limits.
    pub async fn run_turn(&self, models: Arc<dyn Models>, turn: &Turn) -> Result<Outcome, RunError> {
        let with_agent;
        let runner = match self.agent == turn.agent {
            true => self,
            false => {
                with_agent = self.clone().with_agent(&turn.agent);
                &with_agent
            }
        };
        let prepared = runner.prepare(models.as_ref(), &turn.help)?;
        let deadline = deadline_after(prepared.limits.max_seconds);
        let begin = Begin::Turn(&turn.start);
        runner.execute(&prepared, models, turn.thread.clone(), &turn.actor, begin, 0, None, deadline).await
    }

    /// Continue help `help` on `thread` from what is already committed, as [`Runner::run_turn`] does with the turn
    /// read from `thread`'s tip now, as this runner's agent.
    pub async fn resume(
        &self,
        models: Arc<dyn Models>,
        thread: &ThreadRef,
        actor: &str,
        help: &str,
    ) -> Result<Outcome, RunError> {
        let turn = self.journal.with(|home| Turn::read(home, thread, help, &self.agent, actor))?;
        self.run_turn(models, &turn).await
    }

    #[allow(clippy::too_many_arguments)]
    fn execute<'a>(
        &'a self,
        prepared: &'a Prepared,
        models: Arc<dyn Models>,
        thread: ThreadRef,
        actor: &'a str,
        begin: Begin<'a>,
        depth: u32,
        scope: Option<RunScope>,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Outcome, RunError>> {
        Box::pin(async move {
            let context_tokens = prepared.model.context_tokens();
            let (thread, mut conversation, pending, request) = match begin {
                Begin::Input(input) => {
                    let mut request = NewStep::new(StepKind::Message, input, ThreadStatus::Running)
                        .fact(fact::HELP, &prepared.entry.name)
                        .fact(fact::HELP_BLOB, prepared.entry.blob)
                        .fact(fact::AGENT, &self.agent);
                    // A sub-help's request is the calling model's text: HAL's message, for the person.
                    let writer = if depth > 0 {
                        request = request.fact(fact::DEPTH, depth).fact(fact::FOR, actor);
                        // On exactly the tip checked (a new sub-thread's start, or the question answered): a step
                        // written there meanwhile makes the call fail rather than stack two runs on one branch.
                        request.on_tip = Some(thread.tip);
                        HAL_ACTOR
                    } else {
                        actor
                    };
                    let appended = self.journal.with(|home| home.append_step(writer, &thread, &request))?;
                    let caller = scope.as_ref().and_then(|scope| scope.root.as_deref()).filter(|_| depth > 0);
                    self.step_event(&thread, &StepKind::Message, input, depth, &request.facts, caller);
                    let parent = self.journal.with(|home| {
                        let commit = home.repo().find_commit(appended.commit).ok();
                        commit.and_then(|c| c.parent_ids().next().map(|p| p.detach()))
                    });
                    let thread = ThreadRef { tip: appended.commit, ..thread };
                    let mut conversation = match self.cached_conversation(&thread.branch, parent) {
                        Some(mut conversation) => {
                            let text = match depth {
                                0 => input.to_owned(),
                                _ => crate::conversation::relayed(actor, input),
                            };
                            conversation.push(Message::User { text });
                            conversation
                        }
                        None => self
                            .journal
                            .with(|home| Conversation::load(home, &thread, context_tokens, self.admit(home)))?,
                    };
                    conversation.pin_last();
                    (thread, conversation, None, Some(appended.commit))
                }
                Begin::Turn(start) => {
                    // A person's message on top of the tip a kept conversation is current at continues it.
                    let cached = match &start.message {
                        Some((text, parent)) => {
                            self.cached_conversation(&thread.branch, *parent).map(|mut conversation| {
                                conversation.push(Message::User { text: text.clone() });
                                conversation.pin_last();
                                conversation
                            })
                        }
                        None => self.cached_conversation(&thread.branch, Some(thread.tip)),
                    };
                    let conversation = match cached {
                        Some(conversation) => conversation,
                        None => self
                            .journal
                            .with(|home| Conversation::load(home, &thread, context_tokens, self.admit(home)))?,
                    };
                    (thread, conversation, start.pending.clone(), start.request)
                }
            };
            // Answered here, and so on no other branch (a copy of it elsewhere is refused by the plan).
            if let Some(request) = request
                && !self.journal.with(|home| home.record_answered(request, &thread.branch))?
            {
                return Err(RunError::Trust(format!(
                    "the request {request} was answered on another branch: this is a copy of it, not answered again"
                )));
            }
            // A reply this run resumes gets its results from the run (or, not HAL's, from `distrust`).
            if pending.is_none() {
                conversation.close_open_calls();
            }
            let mut scope = match scope {
                Some(scope) => scope,
                None => {
                    let mut scope =
                        self.journal.with(|home| chain_scope(home, prepared.limits, &thread.branch, request))?;
                    // The top of this turn's helps: what helps run by it do is its progress.
                    scope.root = Some(thread.branch.clone());
                    scope
                }
            };
            scope.help.clone_from(&prepared.entry.name);
            let mut state = RunState {
                prepared,
                models,
                tip: thread.tip,
                thread,
                actor: actor.to_owned(),
                depth,
                deadline,
                turns: 0,
                usage: Usage::default(),
                scope,
                reply: ObjectId::null(gix::hash::Kind::Sha1),
                request,
                ending: Ending::default(),
            };
            let outcome = self.run_loop(&mut state, &mut conversation, pending).await?;
            self.cache_conversation(&state.thread.branch, state.tip, conversation);
            Ok(outcome)
        })
    }

    /// Model turns and tool calls until the run ends. `pending` is a committed reply (with the ids of its calls
    /// already answered) that is processed before the model is asked again.
    async fn run_loop(
        &self,
        state: &mut RunState<'_>,
        conversation: &mut Conversation,
        mut pending: Option<PendingReply>,
    ) -> Result<Outcome, RunError> {
        let prepared = state.prepared;
        // A run resumed mid-reply answers that reply's calls first (a reply without its results breaks the thread).
        if pending.as_ref().is_none_or(|pending| !pending.ours)
            && let Some(question) = missing_secrets(&prepared.tools)
        {
            // Only a person can set a secret: a help run by another help ends, its caller hears why.
            let status = if state.depth > 0 { Status::Error } else { Status::Pending };
            return self.finish(state, status, &question, None, None);
        }
        // An answer to the question a help run by this router asked goes on to that help's run.
        if prepared.help.route.is_some()
            && pending.is_none()
            && let Some(outcome) = self.answer_routed(state).await?
        {
            return Ok(outcome);
        }
        let system = self.system_prompt(&prepared.agent, &prepared.help);
        let tools = self.tool_specs(prepared);
        let mut answers = approval::Answers::default();
        loop {
            let (reply, answered, reply_commit) = match pending.take() {
                Some(pending) if !pending.ours => {
                    self.distrust(state, conversation, &pending)?;
                    continue;
                }
                Some(pending) => {
                    answers.requests = pending.requests;
                    answers.decisions = pending.decisions;
                    (pending.reply, pending.answered, pending.commit)
                }
                None if let Some(reason) = self.halted() => {
                    return self.finish(state, Status::Error, &reason, None, None);
                }
                None => match self.next_reply(state, conversation, &system, &tools).await? {
                    // The reply is the step just written.
                    Ok(reply) => {
                        answers.requests.clear();
                        answers.decisions.clear();
                        (reply, std::collections::HashSet::new(), state.tip)
                    }
                    Err(ended) => return Ok(ended),
                },
            };
            state.reply = reply_commit;
            let is_answered = |call: &&ToolCall| answered.contains(&call.id);
            let finishes: Vec<&ToolCall> = reply.tool_calls.iter().filter(|call| call.name == FINISH).collect();
            let calls = reply.tool_calls.iter().enumerate().filter(|(_, call)| call.name != FINISH);
            let mut over_limit = Vec::new();
            // An owner denied a call of this reply: its `finish` does not end the run, so the model hears why.
            let mut denied = false;
            for (n, (index, call)) in calls.enumerate() {
                if is_answered(&call) {
                    continue;
                }
                if let Some(reason) = self.halted() {
                    return self.finish(state, Status::Error, &reason, None, None);
                }
                if n < MAX_CALLS_PER_REPLY {
                    // Journalled before it runs: a call runs at most once, even if HAL stops before its result is
                    // committed, or the branch is later put back to this reply.
                    // How far HAL may act on its own here: AL0 records the call and runs nothing (unless it started
                    // before, under another level: then it is answered as not run again, below).
                    let (level, rule) = self.autonomy(state, &call.name);
                    let started = self
                        .journal
                        .with(|home| home.call_started(reply_commit, u32::try_from(index).unwrap_or(u32::MAX)))?;
                    if level == Level::Propose && !started {
                        let text = format!("proposed, not executed: {rule} sets {} (propose only)", level.as_str());
                        let proposed = ToolResult { content: text, is_error: false };
                        let (step, result) = self.tool_step(state, call, proposed, Vec::new(), None)?;
                        self.append(state, HAL_ACTOR, &step.fact(fact::AUTONOMY, level.as_str()))?;
                        conversation.push(tool_message(call, result));
                        continue;
                    }
                    let index = u32::try_from(index).unwrap_or(u32::MAX);
                    // AL1: an owner approves this exact call first; until then the run waits (PENDING).
                    if level == Level::ApproveEach && !started && state.depth > 0 {
                        // A sub-help's run returns to its caller: it cannot wait for an owner (an approval would
                        // resume it on its own, its result lost to the caller and its limits started afresh).
                        let reason = format!(
                            "not run: {rule} sets AL1 (approve each) for `{}`, and a help run by another help cannot \
                             wait for an owner's approval",
                            call.name
                        );
                        self.refuse(state, conversation, call, reason)?;
                        continue;
                    }
                    if level == Level::ApproveEach && !started {
                        match self.answer(state, &mut answers, reply_commit, index, call)? {
                            approval::Answer::Approved => {}
                            approval::Answer::Denied(reason) => {
                                self.refuse(state, conversation, call, reason)?;
                                denied = true;
                                continue;
                            }
                            approval::Answer::Ask(problem) => {
                                return self.ask_approval(state, &reply, reply_commit, index, call, &rule, problem);
                            }
                        }
                    }
                    // Its turn under the rate limits (a call started before was counted then; a tool the help does
                    // not offer is answered so, below, and counts nothing).
                    let offered = state.prepared.helps.contains(&call.name)
                        || state.prepared.tools.iter().any(|tool| tool.spec().name == call.name);
                    if !started
                        && offered
                        && let rate::Turn::Later(outcome) = self.take_turn(state, call).await?
                    {
                        return Ok(*outcome);
                    }
                    if !self.journal.with(|home| home.claim_call(reply_commit, index))? {
                        let reason =
                            "not run again: HAL started this call before (it stopped, or the branch was put back, \
                                      before its result was recorded); a call runs at most once, so whether it \
                                      took effect is unknown"
                                .to_owned();
                        self.refuse(state, conversation, call, reason)?;
                        continue;
                    }
                    let result = self.call_tool(state, call).await?;
                    if level == Level::ActAndTell {
                        self.tell(state, call, &result, &rule);
                    }
                    conversation.push(tool_message(call, result));
                } else {
                    over_limit.push(call);
                }
            }
            // Calls over the limit are answered together, in one step: a reply with thousands of calls makes one
            // commit, not thousands.
            let reason = format!("not run: a reply may make at most {MAX_CALLS_PER_REPLY} tool calls");
            self.refuse_all(state, Some(conversation), &over_limit, reason)?;
            // Every call needs an answer in the conversation: a second `finish` in one reply is refused.
            let extra: Vec<&ToolCall> = finishes.iter().skip(1).filter(|call| !is_answered(call)).copied().collect();
            let reason = "only the first `finish` of a reply counts; this one was ignored".to_owned();
            self.refuse_all(state, Some(conversation), &extra, reason)?;
            if denied && let Some(call) = finishes.first().filter(|call| !is_answered(call)) {
                let reason = "not accepted: an owner denied a call of the same reply; the run goes on".to_owned();
                self.refuse(state, conversation, call, reason)?;
                continue;
            }
            let ending = match finishes.first() {
                // A finish that was refused (malformed, or failing the completion check) has its answer.
                Some(call) if is_answered(call) => None,
                Some(call) => Some(parse_finish(call)),
                None if reply.tool_calls.is_empty() => Some(plain_reply(&reply)),
                None => None,
            };
            let Some(ending) = ending else { continue };
            let (status, output, confidence, call_id) = match ending {
                Ok(ending) => ending,
                Err(problem) => {
                    // A malformed finish goes back to the model like any failing tool call.
                    self.refuse(state, conversation, finishes[0], problem)?;
                    continue;
                }
            };
            // A router's answer names the help to run (or that none fits): the route goes on from there.
            if prepared.help.route.is_some() && matches!(status, Status::Done | Status::Nocando) {
                match self.route(state, conversation, &reply, reply_commit, status, &output).await? {
                    Some(outcome) => return Ok(outcome),
                    None => continue,
                }
            }
            if status == Status::Done
                && let Some(problem) = self.completion_problem(state, &output)?
            {
                if state.turns < prepared.limits.max_steps {
                    let note = format!(
                        "The result does not pass this help's completion check: {problem}. Fix it, then finish again."
                    );
                    match call_id {
                        Some(_) => self.refuse(state, conversation, finishes[0], note)?,
                        None => {
                            self.note(state, &note)?;
                            conversation.push(Message::User { text: note });
                        }
                    }
                    continue;
                }
                let reason = format!("the result does not pass the completion check: {problem}");
                if let Some(call_id) = &call_id {
                    conversation.push(finish_result(call_id.clone(), Status::Error.as_str(), &reason));
                }
                return self.finish(state, Status::Error, &reason, None, call_id);
            }
            if let Some(call_id) = &call_id {
                conversation.push(finish_result(call_id.clone(), status.as_str(), &output));
            }
            return self.finish(state, status, &output, confidence, call_id);
        }
    }
}
