//! What a thread needs next, read from its newest steps: the runner decides, the daemon (or a command taking
//! turns in process) performs it.

use std::collections::HashSet;

use gix::ObjectId;
use hal_model::Reply;
use hal_store::{BACKCHAT, Home, StepKind, ThreadRef, ThreadStatus};

use crate::catalog::DEFAULT_AGENT;
use crate::conversation::{is_persons_message, is_persons_step, request_text};
use crate::error::RunError;
use crate::record::{ReplyData, StepData, ToolData, fact};

/// The help that answers a message on a thread that never ran one, and every backchat message.
pub const DEFAULT_HELP: &str = "hal";

/// How far back the daemon looks for the help a thread runs.
const LOOK_BACK: usize = 200;

/// What to do with a thread whose tip changed.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Nothing: the thread is finished, idle, or someone else is writing it.
    Nothing,
    /// Run the next turn: answer the person's message at the tip, or continue an interrupted run.
    Turn(Box<Turn>),
    /// A sub-help's thread whose run was cut off: its caller runs the help again when it resumes, so this one
    /// is only marked.
    Abandon,
}

/// A turn to run, with everything the plan read of its thread: [`crate::Runner::run_turn`] acts on this and does
/// not read the tip again, so what was decided and what runs are the same reading of one tip.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The thread as the plan read it: `thread.tip` is the tip it decided on.
    pub thread: ThreadRef,
    /// The help to run.
    pub help: String,
    /// As which agent.
    pub agent: String,
    /// On whose behalf (the thread's actor).
    pub actor: String,
    /// Where the run picks up.
    pub(crate) start: Start,
}

/// Where a turn picks up, read from the newest steps of its thread.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    /// The person's message at the tip (its text as the model sees it), and the commit before it: a conversation
    /// kept in memory at that commit is continued with the text instead of being read back.
    pub message: Option<(String, Option<ObjectId>)>,
    /// The newest reply, if the run stopped before acting on all of it.
    pub pending: Option<PendingReply>,
    /// The request whose chain this run continues: the message at the tip, or, for an interrupted run, the request
    /// it was answering (so a restart does not start its chain afresh).
    pub request: Option<ObjectId>,
}

/// A committed reply a resumed run still has to act on.
#[derive(Debug, Clone)]
pub(crate) struct PendingReply {
    pub reply: Reply,
    /// Ids of its tool calls that already have a result step.
    pub answered: HashSet<String>,
    /// Its commit.
    pub commit: ObjectId,
    /// Whether this HAL wrote it (its local record says so): only then are its calls run and its ending taken.
    pub ours: bool,
}

impl Turn {
    /// The turn that runs `help` as `agent` for `actor` on `thread` from what is committed at `thread.tip`.
    pub fn read(home: &Home, thread: &ThreadRef, help: &str, agent: &str, actor: &str) -> Result<Turn, RunError> {
        let tip = home.steps_back(thread).next().transpose()?;
        // A plain commit with no text is no message (the conversation read back skips it too).
        let text = tip
            .filter(|step| is_persons_step(step) && (step.number.is_some() || !step.text.trim().is_empty()))
            .map(|step| request_text(&step));
        let (message, request) = match text {
            Some(text) => {
                let parent = home.repo().find_commit(thread.tip).ok().and_then(|c| c.parent_ids().next());
                (Some((text, parent.map(|p| p.detach()))), Some(thread.tip))
            }
            None => (None, interrupted_request(home, thread)?),
        };
        let pending = unanswered_reply(home, thread)?;
        Ok(Turn {
            thread: thread.clone(),
            help: help.to_owned(),
            agent: agent.to_owned(),
            actor: actor.to_owned(),
            start: Start { message, pending, request },
        })
    }
}

/// The plan for `thread`. Runs left `running` are continued only at `startup` (later, a `running` tip belongs to
/// whoever is writing it).
pub fn plan_for(home: &Home, thread: &ThreadRef, startup: bool) -> Result<Plan, RunError> {
    let mut steps = home.steps_back(thread).take(LOOK_BACK);
    let Some(tip) = steps.next().transpose()? else { return Ok(Plan::Nothing) };
    let plain_commit = tip.number.is_none();
    // A tip claiming a run is under way is believed only if this HAL wrote it: anyone can push a commit whose
    // trailers say `running`, and resuming it would act on whatever that run's record holds.
    let interrupted = tip.status == Some(ThreadStatus::Running) && home.is_tip_written(&thread.branch, tip.commit)?;
    if tip.status == Some(ThreadStatus::Running) && !interrupted && startup {
        tracing::warn!(target: "hal_runner", branch = %thread.branch, commit = %tip.commit,
            "a step claims a run is under way, but this HAL did not write it: not resumed");
    }
    if !(is_persons_step(&tip) || (interrupted && startup)) {
        return Ok(Plan::Nothing);
    }
    let mut help = tip.fact(fact::HELP).map(str::to_owned);
    let mut agent = tip.fact(fact::AGENT).map(str::to_owned);
    let mut depth = tip.fact(fact::DEPTH).and_then(|d| d.parse::<u32>().ok());
    let backchat = thread.id == BACKCHAT;
    // The help in force is the one of the newest run (or request); the backchat always talks to HAL.
    // An interrupted run reads back to its request, which says how deep in sub-helps it is; a person's
    // message reads back to the newest run.
    if (help.is_none() && !backchat) || interrupted {
        for step in steps {
            let step = step?;
            let is_message = step.kind == StepKind::Message;
            if interrupted && is_message && step.status != Some(ThreadStatus::Running) {
                // A person's message before the run's request: the run answered it, depth 0.
                break;
            }
            if let Some(name) = step.fact(fact::HELP) {
                help = help.or_else(|| Some(name.to_owned()));
                agent = agent.or_else(|| step.fact(fact::AGENT).map(str::to_owned));
                if is_message {
                    depth = depth.or_else(|| step.fact(fact::DEPTH).and_then(|d| d.parse().ok()));
                    break;
                }
            }
        }
    }
    if interrupted && !plain_commit && depth.is_some_and(|d| d > 0) {
        return Ok(Plan::Abandon);
    }
    let help = help.unwrap_or_else(|| DEFAULT_HELP.to_owned());
    let agent = agent.unwrap_or_else(|| DEFAULT_AGENT.to_owned());
    Ok(Plan::Turn(Box::new(Turn::read(home, thread, &help, &agent, &thread.actor)?)))
}

/// The turn that answers what landed on `thread` while its previous turn ran (a person's commit the turn did not
/// see): the help and agent of [`next_turn`], from what is committed now.
pub fn follow_up(home: &Home, thread: &ThreadRef) -> Result<Turn, RunError> {
    let (help, agent) = next_turn(home, thread)?;
    Turn::read(home, thread, &help, &agent, &thread.actor)
}

/// The help and agent a new message on `thread` would run: the backchat's are HAL's; elsewhere, those of the
/// newest run or request on the thread, else HAL's.
pub fn next_turn(home: &Home, thread: &ThreadRef) -> hal_store::Result<(String, String)> {
    let mut help = None;
    let mut agent = None;
    if thread.id != BACKCHAT {
        for step in home.steps_back(thread).take(LOOK_BACK) {
            let step = step?;
            help = help.or_else(|| step.fact(fact::HELP).map(str::to_owned));
            agent = agent.or_else(|| step.fact(fact::AGENT).map(str::to_owned));
            if help.is_some() && agent.is_some() {
                break;
            }
        }
    }
    Ok((help.unwrap_or_else(|| DEFAULT_HELP.to_owned()), agent.unwrap_or_else(|| DEFAULT_AGENT.to_owned())))
}

/// The request of the run that `thread`'s tip continues (an interrupted run resumed): the newest message of a
/// person or relayed by HAL since the last finished run, looked for among the newest steps only.
fn interrupted_request(home: &hal_store::Home, thread: &ThreadRef) -> Result<Option<ObjectId>, RunError> {
    const LOOK_BACK: usize = 1000;
    for step in home.steps_back(thread).take(LOOK_BACK) {
        let step = step?;
        match &step.kind {
            StepKind::Finish => return Ok(None),
            _ if is_persons_message(&step) => return Ok(Some(step.commit)),
            _ => {}
        }
    }
    Ok(None)
}

/// The newest reply of `thread` if the run stopped before acting on all of it: some of its tool calls have no
/// result step, or it ended the run (plain text, or a `finish` call) without a `finish` step.
fn unanswered_reply(home: &hal_store::Home, thread: &ThreadRef) -> Result<Option<PendingReply>, RunError> {
    let mut answered = HashSet::new();
    // Whether every step between the tip and the reply is HAL's, written on this branch.
    let mut hal_between = true;
    for step in home.steps_back(thread) {
        let step = step?;
        match &step.kind {
            StepKind::Tool => {
                hal_between = hal_between && home.wrote_on(step.commit, &thread.branch)?;
                match ToolData::of(&step) {
                    Ok(Some(data)) => answered.extend(data.call_ids().map(str::to_owned)),
                    _ => answered.extend(step.fact(fact::CALL).map(str::to_owned)),
                }
            }
            // Notes written beside a run (a runtime note, a merge) do not end it.
            StepKind::System | StepKind::Merged => {
                hal_between = hal_between && home.wrote_on(step.commit, &thread.branch)?;
            }
            StepKind::Reply => {
                let reply = ReplyData::required(&step)?.reply;
                let open = reply.tool_calls.is_empty() || reply.tool_calls.iter().any(|c| !answered.contains(&c.id));
                if !open {
                    return Ok(None);
                }
                // HAL acts on a reply only when it wrote it on this branch, every step since is HAL's on this
                // branch, and it left the branch at the tip it has now: a branch rewound to an old reply of HAL's,
                // or another branch pointed at one (even with a step of HAL's written on top), replays nothing.
                let ours = home.wrote_on(step.commit, &thread.branch)?
                    && home.is_tip_written(&thread.branch, thread.tip)?
                    && hal_between;
                return Ok(Some(PendingReply { reply, answered, commit: step.commit, ours }));
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}
