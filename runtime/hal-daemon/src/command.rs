//! Applying a [`Command`] to the home repo: the store-side half of every command, used by the daemon (which adds
//! the turn-taking around it) and by a handle that has no turns to run.

use hal_runner::record::fact;
use hal_store::identity::HAL_ACTOR;
use hal_store::{Appended, BACKCHAT, Home, Keyed, NewStep, Step, StepKind, ThreadRef, ThreadStatus};

use crate::error::DaemonError;
use crate::protocol::{Command, FromRun, Response, Status, TurnEnd};

/// Most steps one `log` command answers with (the newest): each may hold up to 16 MiB of data.
pub const MAX_LOG: usize = 10_000;

/// The thread a command names: `backchat` is the actor's backchat, created on first use.
pub fn thread_of(home: &Home, actor: &str, query: &str) -> hal_store::Result<ThreadRef> {
    if query == hal_store::BACKCHAT { home.backchat(actor) } else { home.resolve_thread(query) }
}

/// Whether `command` starts work (a turn, a tool call): refused while an owner halted HAL.
pub(crate) fn starts_work(command: &Command) -> bool {
    match command {
        Command::NewThread { input, .. } => input.as_deref().is_some_and(|text| !text.trim().is_empty()),
        Command::Say { .. }
        | Command::CallIsolate { .. }
        | Command::Replay { .. }
        | Command::HelpTests { .. }
        | Command::Decide { .. }
        | Command::BuildIsolates => true,
        Command::ListThreads
        | Command::Stucks { .. }
        | Command::Log { .. }
        | Command::Verify { .. }
        | Command::AllowedSigners
        | Command::Halt { .. }
        | Command::Fork { .. }
        | Command::Write { .. }
        | Command::Unfreeze { .. }
        | Command::Merge { .. }
        | Command::Catalogue
        | Command::Status => false,
    }
}

/// An owner's act on a thread at its tip.
#[derive(Debug, Clone, Copy)]
enum Act {
    Merge,
    Unfreeze,
}

/// Refuse an owner's act that no owner signed, once `hal.yaml` names owners (before, nobody can prove to be one,
/// and it stays as it was): the owner `who`'s signature of exactly this act on this thread at its tip now.
fn check_owner_act(
    home: &Home,
    act: Act,
    who: &str,
    thread: &ThreadRef,
    signature: Option<&crate::protocol::TipSignature>,
) -> Result<(), DaemonError> {
    let keyring = hal_trust::Keyring::load(home)?;
    // Before any owner was named, nobody can prove to be one. A main rewritten around another root (or one too
    // long to read) believes no owner either, and then nothing is an owner's act.
    if keyring.owners.is_empty() && keyring.rewritten.is_none() {
        return Ok(());
    }
    let (word, namespace, command) = match act {
        Act::Merge => ("merge", hal_trust::MERGE_NAMESPACE, "hal thread merge"),
        Act::Unfreeze => ("unfreeze", hal_trust::UNFREEZE_NAMESPACE, "hal thread unfreeze"),
    };
    let Some(signature) = signature else {
        return Err(DaemonError::NotOwner(format!(
            "the {word} of {} is an owner's act and needs an owner's signature (`{command}` signs with your key)",
            thread.id
        )));
    };
    let statement = match act {
        Act::Merge => hal_trust::merge_statement(who, &thread.id, &signature.tip),
        Act::Unfreeze => hal_trust::unfreeze_statement(who, &thread.id, &signature.tip),
    };
    hal_trust::check_owner_statement(&keyring, who, namespace, &statement, &signature.signature)
        .map_err(|why| DaemonError::NotOwner(format!("the {word} of {} by {who} is refused: {why}", thread.id)))?;
    if *signature.tip != thread.tip {
        // Not a refusal of who asked: the thread moved on since they looked (409 `moved`).
        let expected = gix::ObjectId::from_hex(signature.tip.as_bytes())
            .unwrap_or_else(|_| gix::ObjectId::null(gix::hash::Kind::Sha1));
        return Err(hal_store::StoreError::Moved { branch: thread.branch.clone(), expected, found: thread.tip }.into());
    }
    Ok(())
}

/// The word for a halt command.
fn halt_word(on: bool) -> &'static str {
    if on { "a halt" } else { "a resume" }
}

/// Refuse to write on `thread` while it is frozen ([`hal_runner::plan::moved_from`]).
pub(crate) fn refuse_frozen(home: &Home, thread: &ThreadRef) -> Result<(), DaemonError> {
    match hal_runner::plan::moved_from(home, thread)? {
        Some(left) => Err(hal_store::StoreError::Frozen { thread: thread.id.clone(), left, found: thread.tip }.into()),
        None => Ok(()),
    }
}

/// What a message asks to run: a help (with the blob of the exact version in force, when known) as an agent; and
/// the idempotency key of the command that sends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asks<'a> {
    /// The command's idempotency key.
    pub idempotency_key: Option<&'a str>,
    /// The help.
    pub help: Option<&'a str>,
    /// The git blob of the help's text in force when the message was written.
    pub help_blob: Option<gix::ObjectId>,
    /// The agent.
    pub agent: Option<&'a str>,
}

/// Who writes a message and its step: `who`'s own message, or, relayed from a run at the end of a chain of
/// `relayed` starts and relays, HAL's message for `who`; asking for what `asks` says.
pub fn message_step(who: &str, text: &str, asks: Asks<'_>, relayed: Option<&FromRun>) -> (String, NewStep) {
    let mut step = NewStep::new(StepKind::Message, text, ThreadStatus::Open);
    let writer = if let Some(from) = relayed {
        step = step.fact(fact::FOR, who);
        step.chain_depth = Some(from.depth);
        step.held_by.clone_from(&from.held_by);
        hal_store::identity::HAL_ACTOR.to_owned()
    } else {
        who.to_owned()
    };
    if let Some(help) = asks.help {
        step = step.fact(fact::HELP, help);
        if let Some(blob) = asks.help_blob {
            step = step.fact(fact::HELP_BLOB, blob);
        }
    }
    if let Some(agent) = asks.agent {
        step = step.fact(fact::AGENT, agent);
    }
    step.idempotency_key = asks.idempotency_key.map(str::to_owned);
    (writer, step)
}

/// Refuse a message whose signature does not check out: it must be `who`'s by a key that counts, over this text on
/// this thread, signed after the thread's tip or a step shortly before it, and not written already
/// ([`hal_trust::check_placement`]: an old signature copied from the log cannot be sent again). A message queued
/// behind a turn still lands after the step it was signed after.
pub(crate) fn check_signature(
    home: &Home,
    who: &str,
    thread: &ThreadRef,
    text: &str,
    signature: &crate::protocol::MessageSignature,
) -> Result<(), DaemonError> {
    let refused = |reason: String| DaemonError::BadSignature(reason);
    let keyring = hal_trust::Keyring::load(home)?;
    hal_trust::check_message(&keyring, who, &thread.id, &signature.after, text, &signature.signature)
        .map_err(refused)?;
    hal_trust::check_placement(home, thread.tip, &signature.after, &signature.signature).map_err(refused)
}

/// `step` with the person's signature of its message in it.
pub(crate) fn signed(step: NewStep, signature: Option<&crate::protocol::MessageSignature>) -> NewStep {
    match signature {
        Some(signature) => {
            step.fact(hal_trust::AFTER_FACT, &signature.after).fact(hal_trust::SIGNATURE_FACT, &signature.signature)
        }
        None => step,
    }
}

/// The idempotency key `command` carries.
pub fn idempotency_key(command: &Command) -> Option<&str> {
    match command {
        Command::NewThread { idempotency_key, .. }
        | Command::Say { idempotency_key, .. }
        | Command::CallIsolate { idempotency_key, .. }
        | Command::Replay { idempotency_key, .. } => idempotency_key.as_deref(),
        Command::ListThreads
        | Command::Stucks { .. }
        | Command::Log { .. }
        | Command::Verify { .. }
        | Command::AllowedSigners
        | Command::Fork { .. }
        | Command::Write { .. }
        | Command::Halt { .. }
        | Command::Unfreeze { .. }
        | Command::Decide { .. }
        | Command::Merge { .. }
        | Command::Catalogue
        | Command::BuildIsolates
        | Command::Status
        | Command::HelpTests { .. } => None,
    }
}

/// What the first command with `command`'s idempotency key did, when one came before and its message landed: then
/// nothing is written again. The response carries the answer when a run answered the message since; without one,
/// a turn-taker sees to it that a turn answers it ([`crate::daemon`]). The same key for another request (another
/// text, thread, actor, help or agent) is refused.
pub fn repeated(home: &Home, command: &Command) -> Result<Option<Response>, DaemonError> {
    let Some(key) = idempotency_key(command) else { return Ok(None) };
    let (actor, text, help, agent) = match command {
        Command::NewThread { actor, input, help, agent, .. } => {
            (actor, input.as_deref().unwrap_or_default(), help, agent)
        }
        Command::Say { actor, text, help, agent, .. } => (actor, text.as_str(), help, agent),
        _ => return Ok(None),
    };
    if text.trim().is_empty() {
        return Err(DaemonError::KeyWithoutMessage);
    }
    let Some(Keyed { thread, step, answer }) = home.keyed_step(key)? else { return Ok(None) };
    let who = home.resolve_actor(actor.as_deref())?;
    // A help or agent that both tries name must be the same (a try may leave them to the thread).
    let differs = |asked: &Option<String>, name: &str| {
        asked.as_deref().is_some_and(|asked| step.fact(name).is_some_and(|first| first != asked))
    };
    let same_thread = match command {
        Command::Say { thread: query, .. } if query == BACKCHAT => thread.branch == format!("threads/{who}/{BACKCHAT}"),
        Command::Say { thread: query, .. } => home.resolve_thread(query).is_ok_and(|t| t.branch == thread.branch),
        // A new thread's message is its second step, after the start (and a backchat is no new thread).
        _ => step.number == Some(2) && thread.id != BACKCHAT,
    };
    if step.text != text
        || step.actor != who
        || differs(help, fact::HELP)
        || differs(agent, fact::AGENT)
        || !same_thread
    {
        return Err(DaemonError::KeyReused(key.to_owned()));
    }
    let answer = answer.as_ref().and_then(|step| run_end(&thread.id, step));
    let message =
        Some(Appended { thread: thread.id.clone(), step: step.number.unwrap_or_default(), commit: step.commit });
    Ok(Some(match command {
        Command::NewThread { .. } => Response::Started { thread, message, ticket: None, repeated: true, answer },
        _ => Response::Said { thread, message, queued: false, ticket: None, repeated: true, answer },
    }))
}

/// The end of a run that `step` (found by [`Home::keyed_step`]: HAL's, ending a run) is.
fn run_end(thread: &str, step: &Step) -> Option<TurnEnd> {
    if step.actor != HAL_ACTOR {
        return None;
    }
    let status = match step.status.as_ref()? {
        ThreadStatus::Done => Status::Done,
        ThreadStatus::Pending => Status::Pending,
        ThreadStatus::Error => Status::Error,
        ThreadStatus::Nocando => Status::Nocando,
        _ => return None,
    };
    let status = step.fact(fact::RESULT).and_then(Status::parse).unwrap_or(status);
    Some(TurnEnd { commit: Some(step.commit), ..TurnEnd::without_run(status, thread, step.text.clone()) })
}

/// Apply `command` to `home`. Nothing runs here: a daemon watching the repo runs the turns a message asks for.
pub fn apply(home: &Home, command: &Command) -> Result<Response, DaemonError> {
    apply_with(home, command, None)
}

/// [`apply`], recording `help_blob` as the version of the help a message asks for.
pub(crate) fn apply_with(
    home: &Home,
    command: &Command,
    help_blob: Option<gix::ObjectId>,
) -> Result<Response, DaemonError> {
    let actor = |explicit: &Option<String>| home.resolve_actor(explicit.as_deref());
    match command {
        Command::ListThreads => Ok(Response::Threads { threads: home.list_threads()? }),
        Command::Stucks { all } => Ok(Response::Stucks { stucks: crate::stucks::list(home, *all)? }),
        Command::NewThread {
            actor: who,
            from,
            title,
            help,
            agent,
            input,
            purpose,
            idempotency_key,
            started_by_run,
        } => {
            let who = actor(who)?;
            let thread = home.new_thread_for(&who, from.as_deref(), title.as_deref(), *purpose)?;
            // Recorded before the request is written: a daemon may start the turn as soon as it sees it.
            if let Some(from) = started_by_run {
                home.record_depth(&thread.branch, from.depth, &from.held_by)?;
            }
            let message = match input.as_deref().filter(|text| !text.trim().is_empty()) {
                Some(text) => {
                    let key = idempotency_key.as_deref();
                    let asks = Asks { help: help.as_deref(), help_blob, agent: agent.as_deref(), idempotency_key: key };
                    let (writer, step) = message_step(&who, text, asks, started_by_run.as_ref());
                    Some(home.append_step(&writer, &thread, &step)?)
                }
                None => None,
            };
            let thread = ThreadRef { tip: message.as_ref().map_or(thread.tip, |m| m.commit), ..thread };
            Ok(Response::Started { thread, message, ticket: None, repeated: false, answer: None })
        }
        Command::Say { actor: who, thread, text, help, agent, idempotency_key, relayed, signature } => {
            if text.trim().is_empty() {
                return Err(hal_store::StoreError::InvalidText("the message is empty").into());
            }
            let who = actor(who)?;
            let thread = thread_of(home, &who, thread)?;
            let key = idempotency_key.as_deref();
            let asks = Asks { help: help.as_deref(), help_blob, agent: agent.as_deref(), idempotency_key: key };
            refuse_frozen(home, &thread)?;
            let (writer, step) = message_step(&who, text, asks, relayed.as_ref());
            if let Some(signature) = signature {
                check_signature(home, &who, &thread, text, signature)?;
            }
            let step = signed(step, signature.as_ref());
            let appended = home.append_step(&writer, &thread, &step)?;
            let thread = ThreadRef { tip: appended.commit, ..thread };
            Ok(Response::Said {
                thread,
                message: Some(appended),
                queued: false,
                ticket: None,
                repeated: false,
                answer: None,
            })
        }
        Command::Log { thread, count } => {
            let count = count.unwrap_or(MAX_LOG).min(MAX_LOG);
            let keyring = hal_trust::Keyring::load(home)?;
            Ok(Response::Steps { steps: hal_trust::check_thread(home, &keyring, thread, Some(count))? })
        }
        Command::Verify { thread } => {
            let keyring = hal_trust::Keyring::load(home)?;
            let ids = match thread {
                Some(thread) => vec![thread.clone()],
                None => home.list_threads()?.into_iter().map(|t| t.id).collect(),
            };
            let threads =
                ids.iter().map(|id| hal_trust::verify_thread(home, &keyring, id)).collect::<Result<Vec<_>, _>>()?;
            Ok(Response::Verified { threads, problems: keyring.problems })
        }
        Command::AllowedSigners => {
            let keyring = hal_trust::Keyring::load(home)?;
            Ok(Response::AllowedSigners { text: keyring.allowed_signers(), problems: keyring.problems })
        }
        Command::Fork { actor: who, thread, at } => {
            let thread = home.fork_thread(&actor(who)?, thread, at.as_deref())?;
            Ok(Response::Started { thread, message: None, ticket: None, repeated: false, answer: None })
        }
        Command::Write { actor: who, thread, path, content, message, keep_status } => {
            let bytes = content.bytes().ok_or(hal_store::StoreError::InvalidText("content.base64 is not base64"))?;
            let target = home.resolve_thread(thread)?;
            refuse_frozen(home, &target)?;
            let status = match keep_status {
                true => home
                    .steps_back(&target)
                    .next()
                    .transpose()?
                    .and_then(|tip| tip.status)
                    .filter(|status| *status != ThreadStatus::Running),
                false => None,
            };
            let status = status.unwrap_or(ThreadStatus::Open);
            let step = home.write_file_with_status(&actor(who)?, thread, path, &bytes, message.as_deref(), status)?;
            Ok(Response::Appended { step })
        }
        Command::Halt { actor: who, on, reason, after, signature } => {
            let who = actor(who)?;
            let after = match after {
                Some(after) => Some(
                    gix::ObjectId::from_hex(after.as_bytes())
                        .map_err(|_| DaemonError::BadSignature(format!("`after` is not a commit id: {after:?}")))?,
                ),
                None => None,
            };
            let keyring = hal_trust::Keyring::load(home)?;
            hal_trust::halt::check_halt(&keyring, &who, *on, reason, after, signature)
                .map_err(|why| DaemonError::BadSignature(format!("{} by {who}: {why}", halt_word(*on))))?;
            // After the halt commit believed last (judged first: one pushed from elsewhere is followed, never
            // dropped), wherever someone moved the ref meanwhile.
            hal_trust::halt::halt_state(home)?;
            let believed = hal_trust::halt::believed(home);
            if after != believed {
                return Err(DaemonError::BadSignature(format!(
                    "{} signed after {}, and the halt commit believed last is {}: sign again",
                    halt_word(*on),
                    after.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                    believed.map_or_else(|| "none".to_owned(), |c| c.to_string())
                )));
            }
            let commit = home.write_halt(after, home.halt_tip()?, *on, &who, reason, signature)?;
            let state = hal_trust::halt::halt_state(home)?;
            if let Some(problem) = state.problem {
                return Err(DaemonError::BadSignature(format!(
                    "{} was written and is not believed: {problem}",
                    halt_word(*on)
                )));
            }
            Ok(Response::Halted { halt: state.halt, commit: commit.to_string() })
        }
        Command::Unfreeze { actor: who, thread, signature } => {
            let who = actor(who)?;
            let thread = thread_of(home, &who, thread)?;
            let Some(left) = hal_runner::plan::moved_from(home, &thread)? else {
                return Err(DaemonError::NotFrozen(thread.id));
            };
            check_owner_act(home, Act::Unfreeze, &who, &thread, signature.as_ref())?;
            let text = format!(
                "unfrozen by {who}: the branch had been moved from {left}, where HAL left it, to {}; HAL goes on \
                 from here",
                thread.tip
            );
            // On exactly the tip the person looked at: one moved again since is still frozen.
            let step = NewStep {
                on_tip: Some(thread.tip),
                unfreezes: true,
                ..NewStep::new(StepKind::System, text, ThreadStatus::Open)
            };
            Ok(Response::Appended { step: home.append_step(HAL_ACTOR, &thread, &step)? })
        }
        Command::Decide { .. } => crate::decide::decide(home, command),
        Command::Merge { actor: who, thread, signature } => {
            let who = actor(who)?;
            let thread = home.resolve_thread(thread)?;
            refuse_frozen(home, &thread)?;
            check_owner_act(home, Act::Merge, &who, &thread, signature.as_ref())?;
            // A published plugin version never changes: the sandbox's rule, passed to the store as the merge's guard.
            // Exactly the tip checked (and signed): a commit pushed meanwhile is not merged with it.
            let published = &hal_sandbox::plugins::Published;
            let outcome = home.merge_thread_at(&who, &thread.branch, published, Some(thread.tip))?;
            Ok(Response::Merged { thread, outcome })
        }
        // Answered from what an engine loaded from `main` (`crate::answer`), not from the store alone.
        Command::Catalogue
        | Command::BuildIsolates
        | Command::Status
        | Command::CallIsolate { .. }
        | Command::HelpTests { .. }
        | Command::Replay { .. } => {
            Err(DaemonError::NoAnswer(format!("{command:?} needs what is loaded from main, not the store alone")))
        }
    }
}
