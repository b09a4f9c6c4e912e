//! An owner's answer to a run's approval request ([`Command::Decide`]): checked against the request at the
//! thread's tip and the owners in force, then written by HAL as a `decision` step on exactly that tip. The run
//! goes on from it ([`hal_runner::plan::plan_for`] plans the turn); the runner checks the answer again before
//! it acts on it.

use hal_runner::record::{ApprovalData, DecisionData, StepData, fact};
use hal_store::identity::HAL_ACTOR;
use hal_store::{Home, NewStep, StepKind, ThreadRef, ThreadStatus};
use hal_trust::approval::Scope;

use crate::error::DaemonError;
use crate::protocol::{Command, Response};

/// The longest reason a denial may give (the model reads it).
const MAX_REASON: usize = 4_000;

/// Apply a [`Command::Decide`].
pub(crate) fn decide(home: &Home, command: &Command) -> Result<Response, DaemonError> {
    let Command::Decide { actor, thread, request, approve, scope, reason, signature } = command else {
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
    let (tip, data) = waiting_request(home, &thread)?;
    // An answer to an older request (answered, or one the run moved past), or to a commit that is none, answers
    // nothing now: a replayed approval lands here.
    let expected =
        gix::ObjectId::from_hex(request.as_bytes()).unwrap_or_else(|_| gix::ObjectId::null(gix::hash::Kind::Sha1));
    if expected != tip {
        return Err(hal_store::StoreError::Moved { branch: thread.branch.clone(), expected, found: tip }.into());
    }
    let asked = data.asked(&thread.id, &tip.to_string());
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
            "the {word} of the call to {} on {} is refused: {problem} (`hal approve` and `hal deny` sign with your \
             key)",
            data.call.name, thread.id
        )));
    }
    let text = match (*approve, scope) {
        (true, Scope::Once) => format!("approved by {who}: this call to {}", data.call.name),
        (true, Scope::Thread) => format!("approved by {who}: every call to {} on this thread", data.call.name),
        (true, Scope::Always) => format!(
            "approved by {who}: this call to {}, and later ones by the change of hal.yaml's policy they commit to main",
            data.call.name
        ),
        (false, _) => format!("denied by {who}: {}", if reason.is_empty() { "(no reason given)" } else { reason }),
    };
    let request_step = home.steps_back(&thread).next().transpose()?;
    let fact_of = |key: &str| request_step.as_ref().and_then(|step| step.fact(key)).map(str::to_owned);
    let mut step = NewStep::new(StepKind::Decision, text, ThreadStatus::Open)
        .fact(fact::TOOL, &data.call.name)
        .fact(fact::DECISION, if *approve { "approve" } else { "deny" })
        .fact(fact::SCOPE, scope.as_str())
        .fact(fact::DECIDED_BY, &who);
    for key in [fact::HELP, fact::AGENT] {
        if let Some(value) = fact_of(key) {
            step = step.fact(key, value);
        }
    }
    decision.put(&mut step)?;
    // On exactly the request: an answer never lands after something else.
    step.on_tip = Some(tip);
    let appended = home.append_step(HAL_ACTOR, &thread, &step)?;
    let thread = ThreadRef { tip: appended.commit, ..thread };
    Ok(Response::Decided { thread, step: appended, ticket: None })
}

/// The approval request HAL wrote at `thread`'s tip, with its commit: the run there waits for an answer.
pub fn waiting_request(home: &Home, thread: &ThreadRef) -> Result<(gix::ObjectId, ApprovalData), DaemonError> {
    let tip = home.steps_back(thread).next().transpose()?;
    let Some(tip) = tip.filter(|step| step.kind == StepKind::Approval) else {
        return Err(DaemonError::NoApproval(format!(
            "{} waits for no approval: its newest step is not an approval request",
            thread.id
        )));
    };
    if !home.is_tip_written(&thread.branch, tip.commit)? {
        return Err(DaemonError::NoApproval(format!(
            "{}'s newest step {} claims to be an approval request, but this HAL did not write it there",
            thread.id, tip.commit
        )));
    }
    let data = ApprovalData::required(&tip).map_err(|error| DaemonError::NoApproval(error.to_string()))?;
    Ok((tip.commit, data))
}

/// The help whose run waits on the approval request at `thread`'s tip.
pub fn request_help(home: &Home, thread: &ThreadRef) -> Result<String, DaemonError> {
    let tip = home.steps_back(thread).next().transpose()?;
    let help = tip.as_ref().and_then(|step| step.fact(fact::HELP));
    Ok(help.unwrap_or(hal_runner::plan::DEFAULT_HELP).to_owned())
}
