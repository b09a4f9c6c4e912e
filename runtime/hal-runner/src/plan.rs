//! What a thread needs next, read from its newest steps: the runner decides, the daemon (or a command taking
//! turns in process) performs it.

use std::collections::HashSet;

use gix::ObjectId;
use hal_model::Reply;
use hal_spec::{TrustSettings, UnsignedMessages};
use hal_store::{BACKCHAT, Home, Step, StepKind, ThreadRef, ThreadStatus};
use hal_trust::Verdict;

use crate::catalog::DEFAULT_AGENT;
use crate::conversation::{is_persons_message, is_persons_step, request_text};
use crate::error::RunError;
use crate::record::{ApprovalData, DecisionData, ReplyData, StepData, ToolData, fact};

/// The help that answers a message on a thread that never ran one, and every backchat message.
pub const DEFAULT_HELP: &str = "hal";

/// How far back the daemon looks for the help a thread runs.
const LOOK_BACK: usize = 200;

/// What to do with a thread whose tip changed.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Nothing: the thread is finished, idle, or someone else is writing it.
    Nothing,
    /// Run the next turn: answer the person's message at the tip, or continue an interrupted run. What the turn
    /// acts on is read when it starts ([`Turn::read`]): a scan only decides.
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
    /// A person's step at the tip that HAL does not answer (unsigned where `trust.unsigned_messages` says to
    /// ignore those, or signed wrongly): a system step says why.
    Ignore {
        /// Why, for the system step.
        reason: String,
    },
    /// The branch no longer holds the tip HAL left it at (it was reset back, or pointed at another line): HAL
    /// writes nothing on it, and acts on nothing of it, until a person looks (`hal thread unfreeze`).
    Frozen {
        /// The tip HAL left the branch at.
        left: ObjectId,
    },
}

/// What HAL believes of the people whose steps it plans turns for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admit {
    /// Whether an unsigned plain-git message is answered.
    pub unsigned: UnsignedMessages,
    /// Whether that comes from the default (no `trust.unsigned_messages` in `hal.yaml`).
    pub by_default: bool,
    /// `hal.yaml`'s `members`: when set, only they and the owners are answered.
    pub members: Option<std::sync::Arc<Vec<String>>>,
}

impl Admit {
    /// `settings`' rule, else the default: accept while the repo has no remote (one person talking to their own
    /// repo by plain `git commit`), ignore once it has one. The repo's configuration is read now: a remote added
    /// while a daemon runs counts at once.
    pub fn for_repo(home: &Home, settings: &TrustSettings) -> Admit {
        match settings.unsigned_messages {
            Some(unsigned) => Admit { unsigned, by_default: false, members: None },
            None => {
                let unsigned = match has_remote(home) {
                    true => UnsignedMessages::Ignore,
                    false => UnsignedMessages::Accept,
                };
                Admit { unsigned, by_default: true, members: None }
            }
        }
    }
}

impl Admit {
    /// Answer only `members` (and the owners), when `hal.yaml` names members.
    pub fn with_members(mut self, members: Option<&Vec<String>>) -> Admit {
        self.members = members.map(|members| std::sync::Arc::new(members.clone()));
        self
    }

    /// Why `actor` is not answered, when `hal.yaml` names members and they are neither one nor an owner.
    pub fn not_member(&self, keyring: &hal_trust::Keyring, actor: &str) -> Option<String> {
        let members = self.members.as_ref()?;
        let allowed = actor == hal_store::identity::HAL_ACTOR
            || keyring.owners.contains_key(actor)
            || members.iter().any(|member| member == actor);
        (!allowed).then(|| {
            format!("Not answered: {actor} is neither an owner nor one of the members hal.yaml names (`members`).")
        })
    }
}

/// Whether the repository's own configuration names a remote with a URL.
fn has_remote(home: &Home) -> bool {
    let path = home.repo().common_dir().join("config");
    let Ok(text) = std::fs::read(&path) else { return false };
    let Ok(config) = gix::config::File::from_bytes_no_includes(
        &text,
        gix::config::file::Metadata::from(gix::config::Source::Local),
        Default::default(),
    ) else {
        // A configuration git cannot read either: assume the stricter case.
        return true;
    };
    config.sections_by_name("remote").is_some_and(|mut sections| sections.any(|s| s.value("url").is_some()))
}

/// Why the person's step `tip` on `branch` is not answered, if it is not: steps this HAL wrote there (messages sent
/// through it) are; others by their signature's verdict.
pub fn refusal(home: &Home, branch: &str, tip: &Step, admit: &Admit) -> Result<Option<String>, RunError> {
    if home.wrote_on(tip.commit, branch)? && admit.members.is_none() {
        return Ok(None);
    }
    let keyring = hal_trust::Keyring::load(home).map_err(RunError::from_trust)?;
    refusal_with(home, &keyring, branch, tip, admit)
}

/// [`refusal`] with the keys that count already read (a caller judging many steps reads them once).
pub fn refusal_with(
    home: &Home,
    keyring: &hal_trust::Keyring,
    branch: &str,
    tip: &Step,
    admit: &Admit,
) -> Result<Option<String>, RunError> {
    // Written by this HAL for the person the step names (a message through `hal` or the API).
    if home.wrote_on(tip.commit, branch)? {
        return Ok(admit.not_member(keyring, &tip.actor));
    }
    let verdict = keyring.verdict(home, tip).map_err(RunError::from_trust)?;
    Ok(match verdict {
        Verdict::Signed { by } => admit.not_member(keyring, &by),
        Verdict::ByHal => admit.not_member(keyring, &tip.actor),
        // Once hal.yaml names members, an unsigned commit proves nobody's identity.
        Verdict::Unsigned if admit.members.is_some() => Some(format!(
            "Not answered: commit {} is not signed, and hal.yaml names members: only an owner's or a member's signed \
             message is answered.",
            tip.commit
        )),
        Verdict::Unsigned if admit.unsigned == UnsignedMessages::Accept => None,
        Verdict::Unsigned => {
            let why = match admit.by_default {
                true => "the repo has a remote and hal.yaml does not set trust.unsigned_messages",
                false => "hal.yaml sets trust.unsigned_messages to `ignore`",
            };
            Some(format!(
                "Not answered: commit {} is not signed, and {why}. Sign your commits (`git commit -S`, with the key \
                 `hal init` set up) or send messages with `hal thread say`; `trust: {{unsigned_messages: accept}}` \
                 in hal.yaml answers unsigned ones.",
                tip.commit
            ))
        }
        wrong => Some(format!("Not answered: commit {} is {}.", tip.commit, wrong.label())),
    })
}

/// A turn to run, with everything read of its thread when it starts: [`crate::Runner::run_turn`] acts on this and
/// does not read the tip again, so what runs is one reading of one tip.
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
    /// Approval requests for its calls written since, with their commits.
    pub requests: Vec<(ObjectId, ApprovalData)>,
    /// Owners' answers to those requests written since.
    pub decisions: Vec<DecisionData>,
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
pub fn plan_for(home: &Home, thread: &ThreadRef, startup: bool, admit: Admit) -> Result<Plan, RunError> {
    if let Some(left) = moved_from(home, thread)? {
        return Ok(Plan::Frozen { left });
    }
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
    // An owner answered the run's approval request (the daemon checked and wrote the answer): the run goes on.
    let decided = tip.kind == StepKind::Decision && home.is_tip_written(&thread.branch, tip.commit)?;
    if decided {
        let help = tip.fact(fact::HELP).unwrap_or(DEFAULT_HELP).to_owned();
        let agent = tip.fact(fact::AGENT).unwrap_or(DEFAULT_AGENT).to_owned();
        return Ok(Plan::Turn { help, agent, actor: thread.actor.clone() });
    }
    if !(is_persons_step(&tip) || (interrupted && startup)) {
        return Ok(Plan::Nothing);
    }
    if !interrupted && let Some(reason) = refusal(home, &thread.branch, &tip, &admit)? {
        return Ok(Plan::Ignore { reason });
    }
    // A person's step belongs where it was written: one that names another thread, or that a run answered on
    // another branch, is a copy (its signature would lend its author's authority to a second run).
    if !interrupted {
        if let Some(named) = tip.thread.as_deref()
            && named != thread.id
        {
            let reason = format!("Not answered: commit {} says it belongs to thread {named}: a copy.", tip.commit);
            return Ok(Plan::Ignore { reason });
        }
        if let Some(branch) = home.answered_on(tip.commit)?
            && branch != thread.branch
        {
            let reason = format!("Not answered: commit {} was answered on {branch} already: a copy.", tip.commit);
            return Ok(Plan::Ignore { reason });
        }
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
            // The newest agent named wins: a switch (`--agent`, `threads.switch`) names one without a help.
            agent = agent.or_else(|| step.fact(fact::AGENT).map(str::to_owned));
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
    Ok(Plan::Turn { help, agent, actor: thread.actor.clone() })
}

/// The tip HAL left `thread`'s branch at, when the branch no longer descends from it: reset back, pointed at
/// another line, or at a commit git cannot relate to it. `None` while the branch holds it or grew on top of it
/// (a person's commits after HAL's), or HAL never wrote on it.
pub fn moved_from(home: &Home, thread: &ThreadRef) -> Result<Option<ObjectId>, RunError> {
    let Some(left) = home.landed_tip(&thread.branch)? else { return Ok(None) };
    // Along first parents, as HAL reads a thread (a merge whose second parent is HAL's step is another line);
    // whatever git cannot answer (a missing commit) counts as moved: the safe side.
    let grows_from = |tip: ObjectId| home.grows_from(left, tip);
    if grows_from(thread.tip) {
        return Ok(None);
    }
    // `thread` may have been read before another writer's step landed (the record is read after it): judge by
    // where the branch is now, which is read after the record, so it is at or past every landed step.
    let now = home.resolve_thread(&thread.branch)?.tip;
    Ok((!grows_from(now)).then_some(left))
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
    let (mut requests, mut decisions) = (Vec::new(), Vec::new());
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
            // Nor does waiting for an owner's approval of one of its calls, or the answer.
            // (Read only when HAL wrote them: one pushed with any data makes the reply not HAL's to act on.)
            StepKind::Approval | StepKind::Decision => {
                let ours = home.wrote_on(step.commit, &thread.branch)?;
                hal_between = hal_between && ours;
                if ours && step.kind == StepKind::Approval {
                    requests.push((step.commit, ApprovalData::required(&step)?));
                } else if ours {
                    decisions.push(DecisionData::required(&step)?);
                }
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
                return Ok(Some(PendingReply { reply, answered, commit: step.commit, ours, requests, decisions }));
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}
