//! What a thread needs next, read from its newest steps: the runner decides, the daemon (or a command taking
//! turns in process) performs it.

use crate::catalog::DEFAULT_AGENT;
use crate::conversation::is_persons_step;
use crate::record::fact;
use hal_store::{BACKCHAT, Home, StepKind, ThreadRef, ThreadStatus};

/// The help that answers a message on a thread that never ran one, and every backchat message.
pub const DEFAULT_HELP: &str = "hal";

/// How far back the daemon looks for the help a thread runs.
const LOOK_BACK: usize = 200;

/// What to do with a thread whose tip changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: the thread is finished, idle, or someone else is writing it.
    Nothing,
    /// Run the next turn: answer the person's message at the tip, or continue an interrupted run.
    Turn {
        /// The help to run.
        help: String,
        /// As which agent.
        agent: String,
        /// On whose behalf (the thread's actor).
        actor: String,
    },
    /// A sub-help's thread whose run was cut off: its caller runs the help again when it resumes, so this one
    /// is only marked.
    Abandon,
}

/// The plan for `thread`. Runs left `running` are continued only at `startup` (later, a `running` tip belongs to
/// whoever is writing it).
pub fn plan_for(home: &Home, thread: &ThreadRef, startup: bool) -> hal_store::Result<Plan> {
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
    Ok(Plan::Turn {
        help: help.unwrap_or_else(|| DEFAULT_HELP.to_owned()),
        agent: agent.unwrap_or_else(|| DEFAULT_AGENT.to_owned()),
        actor: thread.actor.clone(),
    })
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
