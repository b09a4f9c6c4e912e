//! The standard runner: one loop that executes any help.
//!
//! A run takes one text and ends with a [`Status`] and an output. Each model turn is a `reply` step, each tool
//! call a `tool` step (its file writes in the same commit), and the end a `finish` step; the request itself is a
//! `message` step. The model ends the run by calling the built-in `finish` tool, or by answering with plain text,
//! which means `DONE`. Helps named in `commands` run as sub-threads: a new branch started from the caller's
//! current step, whose `{status, output}` comes back as the tool result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gix::ObjectId;
use hal_model::{Message, Reply, Request, ToolCall, ToolSpec, Usage};
use hal_spec::policy::Level;
use hal_spec::{Agent, Help};
use hal_store::{NewStep, StepKind, ThreadRef, ThreadStatus, identity::HAL_ACTOR};
use serde_json::{Value, json};

use crate::catalog::{Catalog, HelpEntry};
use crate::conversation::{Conversation, finish_result};
use crate::error::RunError;
use crate::journal::Journal;
use crate::model::{Model, Models};
use crate::record::fact;
use crate::status::Status;
use crate::tools::{BoxFuture, RunScope, Tool, ToolResult, Toolbox};

mod approval;
mod autonomy;
mod budget;
mod calls;
mod rate;
mod resume;
mod steps;
use crate::plan::{PendingReply, Start, Turn};
use resume::chain_scope;

pub use crate::record::FINISH;
/// The placeholder in a help's instructions replaced by the catalogue of helps.
pub const HELPS_PLACEHOLDER: &str = "{{helps}}";

/// Limits of one run when neither the help nor `hal.yaml` sets them.
pub const DEFAULT_LIMITS: Limits =
    Limits { max_steps: 30, max_tokens: 200_000, max_seconds: 600.0, max_depth: 4, max_starts: 8 };

/// How far one run may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Model turns.
    pub max_steps: u32,
    /// Tokens in and out.
    pub max_tokens: u64,
    /// Wall time in seconds.
    pub max_seconds: f64,
    /// Depth of helps calling helps, and length of a chain of threads started by runs.
    pub max_depth: u32,
    /// Threads one run may start.
    pub max_starts: u32,
}

impl Limits {
    /// The help's limits, else `hal.yaml`'s, else the defaults.
    pub fn for_help(help: &Help, settings: &hal_spec::Limits) -> Limits {
        Limits {
            max_steps: help.runner.max_steps.or(settings.max_steps).unwrap_or(DEFAULT_LIMITS.max_steps),
            max_tokens: help.runner.max_tokens.or(settings.max_tokens).unwrap_or(DEFAULT_LIMITS.max_tokens),
            max_seconds: help.runner.max_seconds.or(settings.max_seconds).unwrap_or(DEFAULT_LIMITS.max_seconds),
            max_depth: settings.max_depth.unwrap_or(DEFAULT_LIMITS.max_depth),
            max_starts: settings.max_starts.unwrap_or(DEFAULT_LIMITS.max_starts),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Its status.
    pub status: Status,
    /// The result, the question (`PENDING`) or the reason (`ERROR`, `NOCANDO`).
    pub output: String,
    /// The thread it ran on.
    pub thread: String,
    /// The commit of its `finish` step.
    #[serde(serialize_with = "hal_store::serialize_id")]
    pub commit: ObjectId,
    /// Model turns taken.
    pub turns: u32,
    /// Tokens used by its own model turns.
    pub usage: Usage,
    /// The confidence the model gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// What a `PENDING` run waits for, when it is not an answer to its question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// What a `PENDING` run waits for besides a person's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "for", rename_all = "kebab-case")]
pub enum Waiting {
    /// An owner's approval of one tool call (`hal approve`, `hal deny`).
    Approval {
        /// The tool.
        tool: String,
        /// The call's index in its reply.
        call: u32,
    },
    /// Its turn under a rate limit (`rate_limits` in `hal.yaml`): a person's answer after `until` goes on.
    RateLimit {
        /// The tool it would call.
        tool: String,
        /// When the call may be made, in seconds since the Unix epoch.
        until: i64,
    },
    /// More of a budget the run reached (`hal approve --amount`).
    Budget {
        /// Which (`thread`, `help-per-day <help>`, `actor-per-day <actor>`).
        budget: String,
        /// `tokens` or `usd`.
        unit: String,
        /// What was spent.
        spent: f64,
        /// The budget, with what owners granted.
        limit: f64,
    },
}

/// What a run reports while it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Text of a model reply as it streams in.
    Text {
        /// The thread's id.
        thread: &'a str,
        /// Its branch.
        branch: &'a str,
        /// The new text.
        delta: &'a str,
    },
    /// A step was committed.
    Step {
        /// The thread's id.
        thread: &'a str,
        /// Its branch.
        branch: &'a str,
        /// Its kind.
        kind: &'a StepKind,
        /// One line about it.
        summary: &'a str,
        /// How deep in sub-helps.
        depth: u32,
        /// Its `Hal-*` facts (help, model, tokens, latency, tool, outcome…).
        facts: &'a [(String, String)],
    },
}

/// Receives [`Event`]s.
pub type Observer = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// Tool calls run from one model reply; further calls in the same reply get an error result instead.
pub const MAX_CALLS_PER_REPLY: usize = 32;

/// How many threads' conversations a runner keeps in memory between runs.
const CACHED_CONVERSATIONS: usize = 64;

/// Runs helps on threads of one home repo.
#[derive(Clone)]
pub struct Runner {
    journal: Journal,
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

/// A help ready to run: checked, with its model and tools.
struct Prepared {
    entry: HelpEntry,
    help: Help,
    agent: Agent,
    model: Arc<dyn Model>,
    tools: Vec<Arc<dyn Tool>>,
    helps: Vec<String>,
    limits: Limits,
}

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
}

impl Runner {
    /// A runner over `journal` with the helps and settings of `catalog` and the tools of `toolbox`.
    pub fn new(journal: Journal, catalog: Arc<Catalog>, toolbox: Toolbox) -> Runner {
        Runner {
            journal,
            catalog,
            toolbox,
            observer: None,
            agent: crate::catalog::DEFAULT_AGENT.to_owned(),
            conversations: Arc::default(),
            halt: None,
            teller: None,
        }
    }

    /// Tell the owner through `teller` what ran at autonomy level AL2.
    pub fn with_teller(mut self, teller: Teller) -> Runner {
        self.teller = Some(teller);
        self
    }

    /// Ask `halt` before every model call and tool call; a run ends with ERROR and its reason when it answers.
    pub fn with_halt(mut self, halt: HaltCheck) -> Runner {
        self.halt = Some(halt);
        self
    }

    /// Why nothing may start now, when an owner halted HAL.
    fn halted(&self) -> Option<String> {
        self.halt.as_ref().and_then(|halt| halt())
    }

    /// Work as the agent `name` (default: `hal`): its persona opens the system prompt, and its model or task
    /// class is used by helps that name none.
    pub fn with_agent(mut self, name: &str) -> Runner {
        name.clone_into(&mut self.agent);
        self
    }

    /// Report events to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Runner {
        self.observer = Some(observer);
        self
    }

    /// The home repo.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The catalogue in force.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The names of the tools a help's commands may select (`files.read`; `files` selects every `files.*`).
    pub fn tools(&self) -> Vec<String> {
        self.toolbox.names()
    }

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

    /// Check that help `name` can run with `models` (it exists, is valid, its commands exist, a model is
    /// configured for it), without writing anything.
    pub fn check(&self, models: &dyn Models, name: &str) -> Result<(), RunError> {
        self.prepare(models, name).map(drop)
    }

    /// Check that `help` can run and choose its model and tools, before anything is written.
    fn prepare(&self, models: &dyn Models, name: &str) -> Result<Prepared, RunError> {
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
                tools.extend(allowed.into_iter().filter(|tool| !policy.is_disabled(&tool.spec().name)));
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
        let limits = Limits::for_help(help, &self.catalog.settings.limits);
        Ok(Prepared { entry: entry.clone(), help: help.clone(), agent: agent.clone(), model, tools, helps, limits })
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
                        HAL_ACTOR
                    } else {
                        actor
                    };
                    let appended = self.journal.with(|home| home.append_step(writer, &thread, &request))?;
                    self.step_event(&thread, &StepKind::Message, input, depth, &request.facts);
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
            let scope = match scope {
                Some(scope) => scope,
                None => self.journal.with(|home| chain_scope(home, prepared.limits, &thread.branch, request))?,
            };
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
            };
            let outcome = self.run_loop(&mut state, &mut conversation, pending).await?;
            self.cache_conversation(&state.thread.branch, state.tip, conversation);
            Ok(outcome)
        })
    }

    /// Forget the conversation kept for `branch`: its thread changed in a way the runner did not see (a commit
    /// pushed in the middle of a run), so the next run reads it back from the commits.
    pub fn forget(&self, branch: &str) {
        let mut cache = self.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|(b, _, _)| b != branch);
    }

    /// The cached conversation of `branch`, if it is current at `tip`.
    fn cached_conversation(&self, branch: &str, tip: Option<ObjectId>) -> Option<Conversation> {
        let mut cache = self.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let position = cache.iter().position(|(b, _, _)| b == branch)?;
        let (_, cached_tip, conversation) = cache.remove(position);
        (Some(cached_tip) == tip).then_some(conversation)
    }

    fn cache_conversation(&self, branch: &str, tip: ObjectId, conversation: Conversation) {
        let mut cache = self.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|(b, _, _)| b != branch);
        if cache.len() >= CACHED_CONVERSATIONS {
            cache.remove(0);
        }
        cache.push((branch.to_owned(), tip, conversation));
    }

    /// Which people's steps HAL answers, by the `hal.yaml` in force and the repo's remotes now.
    fn admit(&self, home: &hal_store::Home) -> crate::plan::Admit {
        let settings = &self.catalog.settings;
        crate::plan::Admit::for_repo(home, &settings.trust).with_members(settings.members.as_ref())
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
            return self.finish(state, Status::Pending, &question, None, None);
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
                             wait for an owner's approval; call it from the help the person asked for",
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
                        return Ok(outcome);
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

    /// Ask the model for the next reply and record it; `Err` with the run's outcome when a limit, the deadline
    /// or the model ends the run instead.
    async fn next_reply(
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
    fn system_prompt(&self, agent: &Agent, help: &Help) -> String {
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

    fn tool_specs(&self, prepared: &Prepared) -> Vec<ToolSpec> {
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
                    "Run the help `{name}` on a sub-thread and get its status and output. {description}"
                ),
                parameters: json!({"type": "object", "required": ["input"], "additionalProperties": false,
                    "properties": {"input": {"type": "string", "description": "The request for the help"}}}),
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

    fn limit_reached(&self, state: &RunState<'_>) -> Option<String> {
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

/// What to ask when a tool the run offers needs secrets that are not set: each name once, with the tools that
/// need it and the command that sets it (secrets are typed in a terminal, never sent in a chat).
fn missing_secrets(tools: &[Arc<dyn Tool>]) -> Option<String> {
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    for tool in tools {
        for name in tool.needs_secrets() {
            if crate::secrets::get(&name).is_some() {
                continue;
            }
            match missing.iter_mut().find(|(n, _)| *n == name) {
                Some((_, users)) => users.push(tool.spec().name.clone()),
                None => missing.push((name, vec![tool.spec().name.clone()])),
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let mut text = String::from("This help needs secrets that are not set:\n");
    for (name, users) in &missing {
        text.push_str(&format!("- {name} (for {})\n", users.join(", ")));
    }
    text.push_str("Set each in a terminal, never in a chat:\n");
    for (name, _) in &missing {
        text.push_str(&format!("  hal secret set {name}\n"));
    }
    text.push_str("then answer this thread to go on.");
    Some(text)
}

/// `text` with NUL characters (which a commit message cannot hold) replaced by U+FFFD.
fn without_nul(text: String) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// `text` cut (at a character boundary, saying so) to a quarter of the largest step HAL reads back, so that a
/// huge tool result never makes a step the thread cannot be read past.
fn cut_to_step(text: String) -> String {
    let most = usize::try_from(hal_store::MAX_STEP_BYTES / 4).unwrap_or(usize::MAX);
    if text.len() <= most {
        return text;
    }
    let mut end = most;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… {} more bytes cut: a step holds at most {most}]", &text[..end], text.len() - end)
}

/// A deadline `seconds` from now; absurdly large values mean "no deadline" rather than an overflow.
fn deadline_after(seconds: f64) -> Instant {
    let now = Instant::now();
    let far = now + Duration::from_secs(100 * 365 * 24 * 3600);
    Duration::try_from_secs_f64(seconds).ok().and_then(|d| now.checked_add(d)).map_or(far, |d| d.min(far))
}

/// The conversation message answering `call` with `result`.
fn tool_message(call: &ToolCall, result: ToolResult) -> Message {
    Message::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: result.content,
        is_error: result.is_error,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default()
}

/// The text of a reply step: what the model said, or the calls it made.
fn reply_text(reply: &Reply) -> String {
    let mut text = reply.text.clone();
    for call in &reply.tool_calls {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("calls {} {}", call.name, call.arguments));
    }
    if text.is_empty() { "(an empty reply)".to_owned() } else { text }
}

type Ending = (Status, String, Option<f64>, Option<String>);

/// The ending a `finish` call asks for, or why it is refused.
fn parse_finish(call: &ToolCall) -> Result<Ending, String> {
    let args: Value = serde_json::from_str(&call.arguments)
        .map_err(|e| format!("the arguments of finish are not valid JSON: {e}"))?;
    let status = args
        .get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
        .ok_or_else(|| "finish needs `status`: one of DONE, PENDING, ERROR, NOCANDO".to_owned())?;
    let output = match args.get("output") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let confidence = args.get("confidence").and_then(Value::as_f64).filter(|c| (0.0..=1.0).contains(c));
    Ok((status, output, confidence, Some(call.id.clone())))
}

/// A reply without tool calls: its text is the result.
fn plain_reply(reply: &Reply) -> Result<Ending, String> {
    if matches!(reply.stop_reason.as_deref(), Some("length" | "max_tokens")) {
        let reason = "the model's answer was cut off at its output limit (max_output_tokens in hal.yaml)";
        return Ok((Status::Error, reason.to_owned(), None, None));
    }
    if reply.text.trim().is_empty() {
        return Ok((Status::Error, "the model replied with nothing".to_owned(), None, None));
    }
    Ok((Status::Done, reply.text.clone(), None, None))
}
