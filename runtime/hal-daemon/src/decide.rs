//! An owner's answer to a run's approval request ([`Command::Decide`]): a tool call (autonomy level AL1) or more
//! of a budget. Checked against the request the thread waits on and the owners in force, then written by HAL as a
//! `decision` step on the thread's tip. The run goes on from it ([`hal_runner::plan::plan_for`] plans the turn);
//! the runner checks the answer again before it acts on it.

use gix::ObjectId;
use hal_runner::record::{ApprovalData, DecisionData, StepData, fact};
use hal_store::identity::HAL_ACTOR;
use hal_store::{Home, NewStep, StepKind, ThreadRef, ThreadStatus};
use hal_trust::approval::Scope;

use crate::error::DaemonError;
use crate::protocol::{Command, Response};

/// The longest reason a denial may give (the model reads it).
const MAX_REASON: usize = 4_000;
/// How many of HAL's notes (written beside a waiting run, such as what it tells an owner in their backchat) may
/// sit on top of the request the thread waits on.
const NOTES_ON_TOP: usize = 1_000;
/// How far back from a thread's tip an answer sent again is looked for (a run goes on after an answer, and may
/// write many steps before the client tries again).
const ANSWERED_LOOK_BACK: usize = 1_000;

/// The approval request a thread waits on.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The request step's commit.
    pub request: ObjectId,
    /// What it asks.
    pub data: ApprovalData,
    /// The help whose run waits.
    pub help: Option<String>,
    /// As which agent.
    pub agent: Option<String>,
}

/// Apply a [`Command::Decide`].
pub(crate) fn decide(home: &Home, command: &Command) -> Result<Response, DaemonError> {
    let Command::Decide { actor, thread, request, approve, scope, reason, amount, signature } = command else {
        return Err(DaemonError::BadArguments(format!("{command:?} is not an answer to an approval request")));
    };
    let who = home.resolve_actor(actor.as_deref())?;
    let thread = crate::command::thread_of(home, &who, thread)?;
    crate::command::refuse_frozen(home, &thread)?;
    if reason.len() > MAX_REASON || reason.contains('\0') {
        return Err(DaemonError::BadArguments(format!(
            "the reason must be text of at most {MAX_REASON} bytes, without NUL"
        )));
    }
    // The same answer sent again (its response was lost, say) gets the step it made, not a refusal, and makes none.
    if let Some(response) = repeated(home, &thread, command, &who)? {
        return Ok(response);
    }
    let waiting = waiting_request(home, &thread)?;
    // An answer to an older request (answered, or one the run moved past), or to a commit that is none, answers
    // nothing now: a replayed approval lands here.
    let expected = ObjectId::from_hex(request.as_bytes()).unwrap_or_else(|_| ObjectId::null(gix::hash::Kind::Sha1));
    if expected != waiting.request {
        return Err(
            hal_store::StoreError::Moved { branch: thread.branch.clone(), expected, found: waiting.request }.into()
        );
    }
    let amount = match (&waiting.data, approve, amount) {
        (ApprovalData::Budget(_), true, Some(amount)) if *amount > 0 => *amount,
        (ApprovalData::Budget(budget), true, _) => {
            return Err(DaemonError::BadArguments(format!(
                "approving more of the {} budget needs the amount granted (`--amount`, in {})",
                budget.budget, budget.unit
            )));
        }
        (ApprovalData::Call(_), _, Some(_)) => {
            return Err(DaemonError::BadArguments("an approval of a call takes no amount".to_owned()));
        }
        _ => 0,
    };
    if matches!(waiting.data, ApprovalData::Budget(_)) && *scope != Scope::Once {
        return Err(DaemonError::BadArguments("more of a budget is granted once, by an amount".to_owned()));
    }
    let asked = waiting.data.asked(&thread.id, &waiting.request.to_string(), amount);
    let decision = DecisionData {
        asked,
        approve: *approve,
        scope: *scope,
        reason: reason.clone(),
        by: who.clone(),
        signature: signature.clone(),
    };
    let keyring = hal_trust::Keyring::load(home)?;
    if let Some(problem) = decision.problem(&keyring) {
        tracing::warn!(target: "hal_daemon", thread = %thread.id, %who, %problem, "an approval was refused");
        let word = if *approve { "approval" } else { "denial" };
        return Err(DaemonError::NotOwner(format!(
            "the {word} of {} on {} is refused: {problem} (`hal approve` and `hal deny` sign with your key)",
            waiting.data.summary(),
            thread.id
        )));
    }
    let reason_text = if reason.is_empty() { "(no reason given)" } else { reason };
    let text = match (&waiting.data, *approve, scope) {
        (_, false, _) => format!("denied by {who}: {reason_text}"),
        (ApprovalData::Budget(budget), true, _) => {
            format!("approved by {who}: {} more of the budget {}", shown_amount(amount, &budget.unit), budget.budget)
        }
        (ApprovalData::Call(call), true, Scope::Once) => format!("approved by {who}: this call to {}", call.call.name),
        (ApprovalData::Call(call), true, Scope::Thread) => {
            format!("approved by {who}: every call to {} by help {} on this thread", call.call.name, call.help)
        }
        (ApprovalData::Call(call), true, Scope::Always) => format!(
            "approved by {who}: this call to {}, and later ones by the change of hal.yaml's policy they commit to main",
            call.call.name
        ),
    };
    let mut step = NewStep::new(StepKind::Decision, text, ThreadStatus::Open)
        .fact(fact::DECISION, if *approve { "approve" } else { "deny" })
        .fact(fact::SCOPE, scope.as_str())
        .fact(fact::DECIDED_BY, &who);
    if let ApprovalData::Call(call) = &waiting.data {
        step = step.fact(fact::TOOL, &call.call.name);
    }
    for (key, value) in [(fact::HELP, &waiting.help), (fact::AGENT, &waiting.agent)] {
        if let Some(value) = value {
            step = step.fact(key, value);
        }
    }
    decision.put(&mut step)?;
    // On exactly the tip checked: an answer never lands after something else.
    step.on_tip = Some(thread.tip);
    // A grant counts from the record HAL keeps of what runs spent (`hal_store::spent`), for the budget and day asked.
    let grant = match (&waiting.data, *approve) {
        (ApprovalData::Budget(budget), true) => {
            let Some(which) = hal_store::spent::Budget::parse(&budget.budget) else {
                return Err(DaemonError::NoApproval(format!(
                    "the request names no budget HAL knows: {}",
                    budget.budget
                )));
            };
            let (tokens, usd) = if budget.unit == "usd" { (0, amount as f64 / 100.0) } else { (amount, 0.0) };
            Some((which, tokens, usd))
        }
        _ => None,
    };
    let appended = home.append_step(HAL_ACTOR, &thread, &step)?;
    if let Some((which, tokens, usd)) = grant {
        home.record_grant(&thread.branch, &which, tokens, usd)?;
    }
    let thread = ThreadRef { tip: appended.commit, ..thread };
    Ok(Response::Decided { thread, step: appended, ticket: None, repeated: false })
}

/// The response to `command` when it is an answer HAL wrote on `thread` before ([`answered_before`]): the step it
/// made, marked repeated, with no ticket (no turn goes on from it again).
pub(crate) fn repeated(
    home: &Home,
    thread: &ThreadRef,
    command: &Command,
    who: &str,
) -> Result<Option<Response>, DaemonError> {
    let found = answered_before(home, thread, command, who)?;
    Ok(found.map(|step| Response::Decided { thread: thread.clone(), step, ticket: None, repeated: true }))
}

/// The `decision` step HAL wrote on `thread` for exactly this answer (the same request, answer, scope, reason,
/// amount, owner and signature), among its newest [`ANSWERED_LOOK_BACK`] steps: a client that sends an answer again
/// because it never heard back finds its answer landed. A decision step someone pushed is not HAL's and is passed
/// over, as is any answer that differs in anything.
fn answered_before(
    home: &Home,
    thread: &ThreadRef,
    command: &Command,
    who: &str,
) -> Result<Option<hal_store::Appended>, DaemonError> {
    let Command::Decide { request, approve, scope, reason, amount, signature, .. } = command else { return Ok(None) };
    for step in home.steps_back(thread).take(ANSWERED_LOOK_BACK) {
        // A step HAL cannot read (a pushed commit too large, say) ends the look: the answer is then met as new.
        let Ok(step) = step else { break };
        if step.kind != StepKind::Decision || step.fact(fact::DECIDED_BY) != Some(who) {
            continue;
        }
        let Ok(Some(decision)) = DecisionData::of(&step) else { continue };
        let granted = match &decision.asked.subject {
            hal_trust::approval::Subject::Budget { amount, .. } => Some(*amount),
            _ => None,
        };
        let same = decision.asked.request == *request
            && decision.asked.thread == thread.id
            && decision.approve == *approve
            && decision.scope == *scope
            && decision.reason == *reason
            && decision.signature == *signature
            && (granted.is_none() || !*approve || granted == *amount);
        if same && home.wrote_on(step.commit, &thread.branch)? {
            let number = step.number.unwrap_or_default();
            return Ok(Some(hal_store::Appended { thread: thread.id.clone(), step: number, commit: step.commit }));
        }
    }
    Ok(None)
}

/// `amount` (tokens, or US cents) as a person reads it.
fn shown_amount(amount: u64, unit: &str) -> String {
    let amount = if unit == "usd" { amount as f64 / 100.0 } else { amount as f64 };
    hal_runner::ledger::show(amount, unit)
}

/// The approval request `thread` waits on: the newest step HAL wrote there, or under only notes HAL wrote beside
/// it (what it tells an owner in their backchat, a merge), with HAL's mark on the tip.
pub fn waiting_request(home: &Home, thread: &ThreadRef) -> Result<Waiting, DaemonError> {
    let none = |why: String| DaemonError::NoApproval(format!("{} waits for no approval: {why}", thread.id));
    if !home.is_tip_written(&thread.branch, thread.tip)? {
        return Err(none("its newest step is not one HAL left it at".to_owned()));
    }
    for step in home.steps_back(thread).take(NOTES_ON_TOP + 1) {
        let step = step?;
        if !home.wrote_on(step.commit, &thread.branch)? {
            return Err(none(format!("step {} is not HAL's", step.commit)));
        }
        match step.kind {
            StepKind::Approval => {
                let data = ApprovalData::required(&step).map_err(|error| none(error.to_string()))?;
                let (help, agent) = (step.fact(fact::HELP), step.fact(fact::AGENT));
                let (help, agent) = (help.map(str::to_owned), agent.map(str::to_owned));
                return Ok(Waiting { request: step.commit, data, help, agent });
            }
            StepKind::System | StepKind::Merged => {}
            _ => return Err(none("its newest step is not an approval request".to_owned())),
        }
    }
    Err(none(format!("no approval request among its newest {NOTES_ON_TOP} steps")))
}
