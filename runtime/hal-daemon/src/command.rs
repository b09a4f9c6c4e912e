//! The commands the CLI sends: one type, carried over the HTTP API when a daemon runs and applied to the repo
//! directly when none does, by the same [`apply`].

use hal_runner::record::fact;
use hal_store::{Appended, Home, MergeOutcome, NewStep, StepKind, ThreadRef, ThreadStatus, ThreadSummary};
use serde::{Deserialize, Serialize};

/// A change or question about the home repo's threads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    /// List every thread.
    ListThreads,
    /// Start a thread; with `help` and `input`, the input is its first message and asks for that help to run.
    NewThread {
        /// Whose thread (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Start from this thread, branch or commit instead of `main`.
        #[serde(default)]
        from: Option<String>,
        /// Its title.
        #[serde(default)]
        title: Option<String>,
        /// The help to run.
        #[serde(default)]
        help: Option<String>,
        /// The agent to run it as.
        #[serde(default)]
        agent: Option<String>,
        /// The request.
        #[serde(default)]
        input: Option<String>,
        /// Set when a run starts the thread (HAL's `threads.start`): how many starts and relays by runs led to
        /// it, recorded in HAL's local record (the thread's own commits are never believed about it). The request
        /// is then HAL's message, written for `actor`. Only HAL's own tools set it: it never crosses the API.
        #[serde(skip)]
        started_by_run: Option<u32>,
    },
    /// Add a person's message to a thread; a daemon answers it with the thread's next turn.
    Say {
        /// Who says it (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch; `backchat` means the actor's backchat (created if need be).
        thread: String,
        /// The message.
        text: String,
        /// Run this help on it instead of the thread's own.
        #[serde(default)]
        help: Option<String>,
        /// The agent to run it as.
        #[serde(default)]
        agent: Option<String>,
        /// Set when a run relays the text (`threads.say`): how many starts and relays by runs led to it. The step
        /// is then HAL's, written for `actor` (trailer `Hal-For`), never the person's own words, and the depth is
        /// recorded for its commit. Only HAL's own tools set it: it never crosses the API.
        #[serde(skip)]
        relayed: Option<u32>,
    },
    /// Merge a thread into `main`.
    Merge {
        /// Who merges (default: the repo's actor).
        #[serde(default)]
        actor: Option<String>,
        /// Thread id, unique prefix or branch.
        thread: String,
    },
}

/// What a [`Command`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    /// The threads.
    Threads {
        /// One summary per thread, by id.
        threads: Vec<ThreadSummary>,
    },
    /// A thread was started.
    Started {
        /// The new thread.
        thread: ThreadRef,
        /// Its first message, when there is one.
        message: Option<Appended>,
    },
    /// A message was added (or queued behind the turn in progress).
    Said {
        /// The thread.
        thread: ThreadRef,
        /// The message's step, unless it is queued.
        message: Option<Appended>,
        /// Whether it waits for the thread's current turn to end.
        queued: bool,
        /// What the daemon's turn-ended event carries for the turn that answers it (none without a daemon).
        #[serde(default)]
        ticket: Option<u64>,
    },
    /// The result of a merge.
    Merged {
        /// The thread.
        thread: ThreadRef,
        /// What happened.
        outcome: MergeOutcome,
    },
}

/// The thread a command names: `backchat` is the actor's backchat, created on first use.
pub fn thread_of(home: &Home, actor: &str, query: &str) -> hal_store::Result<ThreadRef> {
    if query == hal_store::BACKCHAT { home.backchat(actor) } else { home.resolve_thread(query) }
}

/// Who writes a message and its step: `who`'s own message, or, relayed from a run at the end of a chain of
/// `relayed` starts and relays, HAL's message for `who`; asking for `help` as `agent` when given.
pub fn message_step(
    who: &str,
    text: &str,
    help: Option<&str>,
    agent: Option<&str>,
    relayed: Option<u32>,
) -> (String, NewStep) {
    let mut step = NewStep::new(StepKind::Message, text, ThreadStatus::Open);
    let writer = if let Some(depth) = relayed {
        step = step.fact(fact::FOR, who);
        step.chain_depth = Some(depth);
        hal_store::identity::HAL_ACTOR.to_owned()
    } else {
        who.to_owned()
    };
    if let Some(help) = help {
        step = step.fact(fact::HELP, help);
    }
    if let Some(agent) = agent {
        step = step.fact(fact::AGENT, agent);
    }
    (writer, step)
}

/// Apply `command` to `home`. Nothing runs here: a daemon watching the repo runs the turns a message asks for.
pub fn apply(home: &Home, command: &Command) -> hal_store::Result<Response> {
    let actor = |explicit: &Option<String>| home.resolve_actor(explicit.as_deref());
    match command {
        Command::ListThreads => Ok(Response::Threads { threads: home.list_threads()? }),
        Command::NewThread { actor: who, from, title, help, agent, input, started_by_run } => {
            let who = actor(who)?;
            let thread = home.new_thread(&who, from.as_deref(), title.as_deref())?;
            // Recorded before the request is written: a daemon may start the turn as soon as it sees it.
            if let Some(depth) = started_by_run {
                home.record_depth(&thread.branch, *depth)?;
            }
            let message = match input.as_deref().filter(|text| !text.trim().is_empty()) {
                Some(text) => {
                    let (writer, step) = message_step(&who, text, help.as_deref(), agent.as_deref(), *started_by_run);
                    Some(home.append_step(&writer, &thread, &step)?)
                }
                None => None,
            };
            let thread = ThreadRef { tip: message.as_ref().map_or(thread.tip, |m| m.commit), ..thread };
            Ok(Response::Started { thread, message })
        }
        Command::Say { actor: who, thread, text, help, agent, relayed } => {
            if text.trim().is_empty() {
                return Err(hal_store::StoreError::InvalidText("the message is empty"));
            }
            let who = actor(who)?;
            let thread = thread_of(home, &who, thread)?;
            let (writer, step) = message_step(&who, text, help.as_deref(), agent.as_deref(), *relayed);
            let appended = home.append_step(&writer, &thread, &step)?;
            let thread = ThreadRef { tip: appended.commit, ..thread };
            Ok(Response::Said { thread, message: Some(appended), queued: false, ticket: None })
        }
        Command::Merge { actor: who, thread } => {
            let who = actor(who)?;
            let thread = home.resolve_thread(thread)?;
            let outcome = home.merge_thread(&who, &thread.branch)?;
            Ok(Response::Merged { thread, outcome })
        }
    }
}
