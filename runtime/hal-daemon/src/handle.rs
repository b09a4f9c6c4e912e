//! One way for any client to work with a home repo: a [`Handle`]. [`open`] gives the daemon's, reached over its
//! HTTP API, when a daemon runs; otherwise one that applies commands to the repo itself and, for a command that
//! waits for its answer ([`Handle::talk`]), and for an isolate called by hand, a help's tests and a replay, uses
//! the daemon's own engine in this process (holding `.git/hal/daemon.lock` while it does). A client holds a `Box<dyn Handle>` and never asks which it has, except
//! to say so to a person ([`Handle::place`]).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hal_runner::SharedHome;
use hal_store::{Home, NewStep, ThreadRef};

use crate::answer;
use crate::backchat;
use crate::client::Client;
use crate::daemon::DaemonOptions;
use crate::engine::{self, Engine};
use crate::error::DaemonError;
use crate::follow::Follower;
use crate::loaded::{self, Loaded, ModelSource};
use crate::protocol::{Command, DaemonInfo, Response, ThreadEvent, TurnEnd};

/// Where a handle's turns are taken.
#[derive(Debug, Clone)]
pub enum Place {
    /// By the daemon described.
    Daemon(DaemonInfo),
    /// In this process, for the turns this handle asks for.
    InProcess,
}

/// Working with a home repo.
pub trait Handle {
    /// Where turns are taken.
    fn place(&self) -> Place;

    /// Apply `command`. A daemon answers a message with the thread's next turn; in process it only waits.
    fn command(&self, command: &Command) -> Result<Response, DaemonError>;

    /// Apply `command` (a message: [`Command::Say`], or [`Command::NewThread`] with an input) and wait for the
    /// turn that answers it, showing each of the thread's events to `on_event` as it happens.
    fn talk(
        &self,
        command: &Command,
        actor: &str,
        on_event: &mut dyn FnMut(&ThreadEvent),
    ) -> Result<TurnEnd, DaemonError>;

    /// Show `thread`'s events to `on_event` (its steps after `after` first, default its tip; `backchat` is the
    /// backchat of `actor`) until `on_event` breaks, or turns stop being taken.
    fn follow(
        &self,
        thread: &str,
        after: Option<gix::ObjectId>,
        actor: &str,
        on_event: &mut dyn FnMut(&ThreadEvent) -> ControlFlow<()>,
    ) -> Result<(), DaemonError>;
}

/// The handle for the home repo at `path` (a directory in it).
pub fn open(path: &Path) -> Result<Box<dyn Handle>, DaemonError> {
    let home = Home::open(path)?;
    match Client::for_repo(home.repo().common_dir())? {
        Some(client) => Ok(Box::new(Remote::new(client)?)),
        None => Ok(Box::new(Local {
            root: home.path().to_owned(),
            home,
            engine: Mutex::new(None),
            loaded: Mutex::new(None),
        })),
    }
}

/// The ticket a response carries for the turn that answers its message.
fn ticket_of(response: &Response) -> Result<Option<u64>, DaemonError> {
    match response {
        Response::Said { ticket, .. } | Response::Decided { ticket, .. } => Ok(*ticket),
        Response::Started { message: Some(_), ticket, .. } => Ok(*ticket),
        Response::Started { message: None, .. } => {
            Err(DaemonError::NoAnswer("the new thread has no message to answer: give it an input".to_owned()))
        }
        other => Err(DaemonError::NoAnswer(format!("only a message has an answer to wait for, not {other:?}"))),
    }
}

/// How `response` ends the wait right away: the answer a repeated command's first try got, or the reason there
/// will be none (a repeated command whose message nothing answers).
fn answered(response: &Response) -> Option<Result<TurnEnd, DaemonError>> {
    match response {
        Response::Started { answer: Some(end), .. } | Response::Said { answer: Some(end), .. } => Some(Ok(end.clone())),
        Response::Started { repeated: true, ticket: None, .. }
        | Response::Said { repeated: true, ticket: None, .. } => Some(Err(DaemonError::NoAnswer(
            "a message was sent with this idempotency key before, and nothing answered it or is left to run on \
                 its thread: send it again with a new key"
                .to_owned(),
        ))),
        Response::Decided { repeated: true, thread, step, .. } => Some(Err(DaemonError::NoAnswer(format!(
            "this answer had landed before (step {} of {}): the turn that went on from it is not waited for again; \
             `hal thread log {}` shows it",
            step.step, thread.id, thread.id
        )))),
        _ => None,
    }
}

/// Why `response` has no turn to wait for.
fn nothing_to_answer(response: &Response) -> DaemonError {
    match ticket_of(response) {
        Err(error) => error,
        Ok(_) => DaemonError::NoAnswer(format!("{response:?} has no answer to wait for")),
    }
}

/// The end of the turn that answers the message `response` says was sent: at once when the response carries it
/// (a repeated command), else read from events with `next` until the turn with the message's ticket ends
/// (without a ticket: the first turn that starts after it); `stopped` says why when the events end first.
fn wait_for_end(
    response: &Response,
    stopped: &str,
    next: &mut dyn FnMut() -> Result<Option<ThreadEvent>, DaemonError>,
    on_event: &mut dyn FnMut(&ThreadEvent),
) -> Result<TurnEnd, DaemonError> {
    if let Some(end) = answered(response) {
        return end;
    }
    let ticket = ticket_of(response)?;
    let answers = |tickets: &[u64], started: bool| match ticket {
        Some(ticket) => tickets.contains(&ticket),
        None => started,
    };
    let mut started = false;
    while let Some(event) = next()? {
        on_event(&event);
        match event {
            ThreadEvent::TurnStarted { tickets, .. } => started |= answers(&tickets, true),
            ThreadEvent::TurnEnded(end) if answers(&end.tickets, started) => return Ok(end),
            _ => {}
        }
    }
    Err(DaemonError::NoAnswer(stopped.to_owned()))
}

/// A running daemon, over its HTTP API.
pub struct Remote {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// A handle on the daemon `client` talks to.
    pub fn new(client: Client) -> Result<Remote, DaemonError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DaemonError::start("cannot start the async runtime", e))?;
        Ok(Remote { client, runtime })
    }
}

impl Handle for Remote {
    fn place(&self) -> Place {
        Place::Daemon(self.client.info().clone())
    }

    fn command(&self, command: &Command) -> Result<Response, DaemonError> {
        self.runtime.block_on(self.client.command(command))
    }

    fn talk(
        &self,
        command: &Command,
        actor: &str,
        on_event: &mut dyn FnMut(&ThreadEvent),
    ) -> Result<TurnEnd, DaemonError> {
        // A message to a thread: follow it first, so nothing of the turn is missed. A new thread: start it, then
        // follow it from its first message on; a turn that ended meanwhile is reported first.
        let (mut events, response) = match command {
            Command::Say { thread, .. } | Command::Decide { thread, .. } => {
                let events = self.runtime.block_on(self.client.follow(thread, None, actor))?;
                (events, self.command(command)?)
            }
            Command::NewThread { .. } => {
                let response = self.command(command)?;
                let Response::Started { thread, message: Some(message), .. } = &response else {
                    return Err(nothing_to_answer(&response));
                };
                let after = message.commit.to_string();
                (self.runtime.block_on(self.client.follow(&thread.branch, Some(&after), actor))?, response)
            }
            other => return Err(DaemonError::NoAnswer(format!("{other:?} has no answer to wait for"))),
        };
        let stopped = "the daemon stopped before the turn ended (it resumes the turn when it starts again)";
        wait_for_end(&response, stopped, &mut || self.runtime.block_on(events.next()), on_event)
    }

    fn follow(
        &self,
        thread: &str,
        after: Option<gix::ObjectId>,
        actor: &str,
        on_event: &mut dyn FnMut(&ThreadEvent) -> ControlFlow<()>,
    ) -> Result<(), DaemonError> {
        let after = after.map(|id| id.to_string());
        let mut events = self.runtime.block_on(self.client.follow(thread, after.as_deref(), actor))?;
        while let Some(event) = self.runtime.block_on(events.next())? {
            if on_event(&event).is_break() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// This process: commands apply to the repo; a turn a command waits for is taken here by the daemon's engine,
/// started on first need and stopped when the handle is dropped. A command answered from what `main` holds (the
/// catalogue, the status) loads it as the engine does (`loaded::load`), without the engine's lock: it writes
/// nothing.
pub struct Local {
    root: PathBuf,
    home: Home,
    engine: Mutex<Option<Engine>>,
    /// What `main` holds, loaded on first need for the catalogue and the status.
    loaded: Mutex<Option<Arc<Loaded>>>,
}

/// Where a [`Local`] handle takes a turn.
enum Taker<'a> {
    /// Its engine, in this process.
    Engine(MutexGuard<'a, Option<Engine>>),
    /// A daemon that started since the handle was opened.
    Daemon(Remote),
}

impl Local {
    /// The engine, started if need be (this takes the repo's lock and loads what `main` holds); or the daemon, when
    /// one started since this handle was opened.
    fn taker(&self) -> Result<Taker<'_>, DaemonError> {
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        if engine.is_none() {
            let options = DaemonOptions { workers: 2, ..DaemonOptions::default() };
            match Engine::start(&self.root, &options, engine::runtime(options.workers)?, None) {
                Ok(started) => *engine = Some(started),
                Err(DaemonError::AlreadyRunning { pid }) => {
                    let client =
                        Client::for_repo(self.home.repo().common_dir())?.ok_or(DaemonError::AlreadyRunning { pid })?;
                    return Ok(Taker::Daemon(Remote::new(client)?));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(Taker::Engine(engine))
    }
}

impl Local {
    /// Answer a command from what `main` holds. The catalogue and the status are read from the engine's version
    /// when this handle runs one, else from `main` loaded here without the lock (they write nothing, and must
    /// answer while another process takes turns), never building what the cache lacks; a build on request loads
    /// it here again, building. The others write (an isolate's step, a replay's thread) or come before turns (a
    /// help's tests): they go through the engine, which holds the repo's lock, so `main` is loaded once and no
    /// other process runs a turn meanwhile.
    fn answer(&self, command: &Command) -> Result<Response, DaemonError> {
        let read_only = matches!(command, Command::Catalogue | Command::Status | Command::BuildIsolates);
        if !read_only {
            return match self.taker()? {
                Taker::Daemon(daemon) => daemon.command(command),
                // Through `Shared::command`, as the daemon's API does: a keyed call is serialised with the others.
                Taker::Engine(guard) => match guard.as_ref() {
                    Some(engine) => engine.shared.command(command),
                    None => Err(DaemonError::start("the in-process engine", "it did not start")),
                },
            };
        }
        if let Some(engine) = self.engine.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return engine.shared.answer(command);
        }
        let mut slot = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let build = matches!(command, Command::BuildIsolates);
        if slot.is_none() || build {
            let journal = SharedHome::new(self.home.clone());
            let observer: hal_runner::Observer = Arc::new(|_: &hal_runner::Event<'_>| {});
            let secrets = hal_runner::secrets::lookup();
            let models = ModelSource::Fixed(loaded::empty(&journal).models);
            let dispatch = backchat::direct();
            let builds = if build { hal_sandbox::Builds::Retry } else { hal_sandbox::Builds::CachedOnly };
            let loaded = loaded::load(&self.root, &journal, None, &models, dispatch, observer, &secrets, builds)?;
            *slot = Some(Arc::new(loaded));
        }
        let Some(loaded) = slot.as_ref() else {
            return Err(DaemonError::start("loading main", "it did not load"));
        };
        let refuse = |_: &str, _: &ThreadRef, _: &NewStep| {
            Err(DaemonError::NoAnswer("the catalogue and the status write nothing".to_owned()))
        };
        let cx = answer::Context {
            home: &self.home,
            loaded,
            secrets: &hal_runner::secrets::lookup(),
            runtime: None,
            daemon: None,
            running: Vec::new(),
            append: &refuse,
        };
        answer::answer(command, cx)
    }
}

impl Handle for Local {
    fn place(&self) -> Place {
        Place::InProcess
    }

    fn command(&self, command: &Command) -> Result<Response, DaemonError> {
        if crate::command::starts_work(command)
            && let Some(reason) = hal_trust::halt::halt_state(&self.home)?.halt.reason()
        {
            return Err(DaemonError::Halted(reason));
        }
        if answer::is_answered_here(command) {
            return self.answer(command);
        }
        if let Some(response) = crate::command::repeated(&self.home, command)? {
            return Ok(response);
        }
        crate::command::apply(&self.home, command)
    }

    fn talk(
        &self,
        command: &Command,
        actor: &str,
        on_event: &mut dyn FnMut(&ThreadEvent),
    ) -> Result<TurnEnd, DaemonError> {
        let guard = match self.taker()? {
            Taker::Engine(guard) => guard,
            Taker::Daemon(daemon) => return daemon.talk(command, actor, on_event),
        };
        let Some(engine) = guard.as_ref() else {
            return Err(DaemonError::start("the in-process engine", "it did not start"));
        };
        let shared = engine.shared.clone();
        // Subscribed before the message is written: every event of the turn that answers it is seen.
        let notices = shared.notices.subscribe();
        let (mut follower, response) = match command {
            Command::Say { thread, .. } | Command::Decide { thread, .. } => {
                let follower = Follower::new(shared.clone(), notices, actor, thread, None)?;
                (follower, shared.command(command)?)
            }
            Command::NewThread { .. } => {
                let response = shared.command(command)?;
                let Response::Started { thread, message: Some(message), .. } = &response else {
                    return Err(nothing_to_answer(&response));
                };
                (Follower::new(shared.clone(), notices, actor, &thread.branch, Some(message.commit))?, response)
            }
            other => return Err(DaemonError::NoAnswer(format!("{other:?} has no answer to wait for"))),
        };
        let stopped = "turns stopped being taken in this process before the turn ended";
        wait_for_end(&response, stopped, &mut || Ok(engine.runtime.block_on(follower.next())), on_event)
    }

    fn follow(
        &self,
        thread: &str,
        after: Option<gix::ObjectId>,
        actor: &str,
        on_event: &mut dyn FnMut(&ThreadEvent) -> ControlFlow<()>,
    ) -> Result<(), DaemonError> {
        let guard = match self.taker()? {
            Taker::Engine(guard) => guard,
            Taker::Daemon(daemon) => return daemon.follow(thread, after, actor, on_event),
        };
        let Some(engine) = guard.as_ref() else {
            return Err(DaemonError::start("the in-process engine", "it did not start"));
        };
        let notices = engine.shared.notices.subscribe();
        let mut follower = Follower::new(engine.shared.clone(), notices, actor, thread, after)?;
        while let Some(event) = engine.runtime.block_on(follower.next()) {
            if on_event(&event).is_break() {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let engine = self.engine.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(engine) = engine {
            engine.stop(DaemonOptions::default().grace);
        }
    }
}
