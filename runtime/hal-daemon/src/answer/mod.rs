//! The commands answered from what an engine has loaded (`crate::loaded`): the catalogue, the status, an isolate
//! called by hand, a help's tests, a replay. The daemon answers them from what it has in force; a command
//! without a daemon loads `main` the same way (`loaded::load`) and answers with these same functions, so a client
//! never builds a runner or a sandbox of its own.

use hal_runner::model::SecretLookup;
use hal_runner::tools::{ToolContext, Tree};
use hal_sandbox::CallContext;
use hal_sandbox::catalog::IsolateEntry;
use hal_store::{Appended, Home, NewStep, StepKind, ThreadRef, ThreadStatus};

use crate::error::DaemonError;
use crate::loaded::Loaded;
use crate::protocol::{Called, Command, DaemonInfo, FileKind, ReplayReport, Response};

mod report;
pub(crate) use report::{catalogue, status};

/// The isolate entry named `name`, loaded.
fn find<'a>(loaded: &'a Loaded, name: &str) -> Result<&'a IsolateEntry, DaemonError> {
    let entry = loaded.isolates.iter().find(|e| e.name == name).ok_or_else(|| DaemonError::UnknownIsolate {
        name: name.to_owned(),
        known: loaded.isolates.iter().map(|e| e.name.clone()).collect(),
    })?;
    match &entry.error {
        Some(error) if entry.isolate.is_none() => {
            Err(DaemonError::UnusableIsolate { name: name.to_owned(), error: error.clone() })
        }
        _ => Ok(entry),
    }
}

/// The fields of [`crate::protocol::Command::CallIsolate`].
pub(crate) struct Call<'a> {
    pub(crate) actor: Option<&'a str>,
    pub(crate) isolate: &'a str,
    pub(crate) function: &'a str,
    pub(crate) arguments: &'a str,
    pub(crate) thread: Option<&'a str>,
    pub(crate) idempotency_key: Option<&'a str>,
}

/// Call an isolate of `loaded` by hand, on `home`'s thread when one is named: its writes become one `write` step
/// (a person's change to the tree, not a model's tool call: a `tool` step answers a model's call, and a thread
/// holding one without it could not be resumed). `append` commits that step.
pub(crate) fn call_isolate(
    home: &Home,
    loaded: &Loaded,
    secrets: &SecretLookup,
    call: Call<'_>,
    append: &dyn Fn(&str, &ThreadRef, &NewStep) -> Result<Appended, DaemonError>,
) -> Result<Response, DaemonError> {
    let Some(sandbox) = &loaded.sandbox else {
        let problem = loaded.problems.iter().find(|p| p.file == crate::loaded::SANDBOX_PROBLEM);
        return Err(DaemonError::NoSandbox(problem.map_or("see the log", |p| p.error.as_str()).to_owned()));
    };
    let entry = find(loaded, call.isolate)?;
    let Some(isolate) = &entry.isolate else {
        let error = entry.error.clone().unwrap_or_else(|| "it did not load".to_owned());
        return Err(DaemonError::UnusableIsolate { name: call.isolate.to_owned(), error });
    };
    match serde_json::from_str::<serde_json::Value>(call.arguments) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => return Err(DaemonError::BadArguments("the arguments must be a JSON object".to_owned())),
        Err(error) => return Err(DaemonError::BadArguments(format!("the arguments are not JSON: {error}"))),
    }
    let thread = call.thread.map(|id| home.resolve_thread(id)).transpose()?;
    if let Some(key) = call.idempotency_key {
        let Some(thread) = &thread else {
            let why = "an idempotency key goes with a thread: a call on none writes nothing to remember it by";
            return Err(DaemonError::BadArguments(why.to_owned()));
        };
        if let Some(keyed) = home.keyed_step(key)? {
            return repeated_call(key, &keyed, thread, &home.resolve_actor(call.actor)?, &call);
        }
    }
    let tree = thread.as_ref().map(|thread| {
        Box::new(ToolContext::new(loaded.runner.journal().clone(), &thread.id, thread.tip)) as Box<dyn Tree>
    });
    let context = CallContext { tree, http: true, secret: secrets.clone(), progress: None };
    let output = match sandbox.call(isolate, call.function, call.arguments, context) {
        Ok(output) => output,
        Err(error) => {
            return Ok(Response::Called { called: Called::Failed { error: error.to_string() }, repeated: false });
        }
    };
    let mut commit = None;
    if let (Some(thread), Some(tree)) = (&thread, output.tree) {
        let writes = tree.into_writes();
        // A keyed call is recorded even when it wrote nothing: the record is what a retry finds.
        if !writes.is_empty() || call.idempotency_key.is_some() {
            let actor = home.resolve_actor(call.actor)?;
            let text = format!("called {}.{} by hand: {}", call.isolate, call.function, output.result);
            let mut step = NewStep::new(StepKind::Write, text, ThreadStatus::Open)
                .fact(hal_runner::record::fact::TOOL, format!("{}.{}", call.isolate, call.function))
                .fact(hal_runner::record::fact::OUTCOME, "ok");
            step.writes = writes;
            // The isolate read the thread at its tip then: its writes change that tree, and would undo whatever
            // was committed since (the store refuses the step if the thread moved on).
            step.on_tip = Some(thread.tip);
            if let Some(key) = call.idempotency_key {
                step.idempotency_key = Some(key.to_owned());
                let record = CallRecord {
                    isolate: call.isolate.to_owned(),
                    function: call.function.to_owned(),
                    arguments: call.arguments.to_owned(),
                    result: output.result.clone(),
                    logs: output.logs.clone(),
                };
                step.data = Some(serde_json::to_string(&record).map_err(|e| DaemonError::BadArguments(e.to_string()))?);
            }
            commit = Some(append(&actor, thread, &step)?.commit);
        }
    }
    Ok(Response::Called { called: Called::Ok { result: output.result, logs: output.logs, commit }, repeated: false })
}

/// What the step of a keyed call records (its `hal-data`), so that a retry answers the same without running.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct CallRecord {
    isolate: String,
    function: String,
    arguments: String,
    result: String,
    logs: Vec<String>,
}

/// The answer to a call whose idempotency `key` was seen before (`keyed`): the first call's, when it was the same
/// call on the same thread; else the key is refused as reused.
fn repeated_call(
    key: &str,
    keyed: &hal_store::Keyed,
    thread: &ThreadRef,
    actor: &str,
    call: &Call<'_>,
) -> Result<Response, DaemonError> {
    let record = keyed.step.data.as_deref().and_then(|data| serde_json::from_str::<CallRecord>(data).ok());
    let same = record.as_ref().is_some_and(|record| {
        (record.isolate.as_str(), record.function.as_str(), record.arguments.as_str())
            == (call.isolate, call.function, call.arguments)
    });
    match record {
        Some(record) if same && keyed.thread.branch == thread.branch && keyed.step.actor == actor => {
            Ok(Response::Called {
                called: Called::Ok { result: record.result, logs: record.logs, commit: Some(keyed.step.commit) },
                repeated: true,
            })
        }
        _ => Err(DaemonError::KeyReused(key.to_owned())),
    }
}

/// The test cases of `help` as `loaded` has it in force.
pub(crate) fn help_tests(loaded: &Loaded, help: &str) -> Result<Response, DaemonError> {
    let (_, spec) = loaded.runner.catalog().help(help).map_err(|error| match error {
        hal_runner::RunError::UnknownHelp { .. } => DaemonError::UnknownHelp(error.to_string()),
        other => DaemonError::Run(other),
    })?;
    Ok(Response::HelpTests { help: help.to_owned(), cases: spec.tests.clone() })
}

/// The fields of [`crate::protocol::Command::Replay`].
pub(crate) struct Replay<'a> {
    pub(crate) actor: Option<&'a str>,
    pub(crate) thread: &'a str,
    pub(crate) from: Option<&'a str>,
    pub(crate) idempotency_key: Option<&'a str>,
}

/// Replay a thread of `home` with `loaded`'s runner, on `runtime`. A replay whose key was seen before answers the
/// comparison of that replay's thread as it is now, starting nothing; the key of another command is refused.
pub(crate) fn replay(
    home: &Home,
    loaded: &Loaded,
    runtime: &tokio::runtime::Handle,
    asked: Replay<'_>,
) -> Result<Response, DaemonError> {
    let actor = home.resolve_actor(asked.actor)?;
    let original = home.resolve_thread(asked.thread)?;
    if let Some(key) = asked.idempotency_key
        && let Some(keyed) = home.keyed_step(key)?
    {
        // The same replay: of the same thread, by the same actor, from the same commit.
        let base = match asked.from {
            Some(spec) => home.resolve_commit(spec)?,
            None => hal_runner::replay::start_of(home, &original)?,
        };
        let started_on = home.resolve_commit(&format!("{}^", keyed.step.commit))?;
        if !hal_runner::replay::is_replay_start(&keyed.step, &original.id)
            || keyed.step.actor != actor
            || started_on != base
        {
            return Err(DaemonError::KeyReused(key.to_owned()));
        }
        let report = hal_runner::replay::report_of(home, &original, &keyed.thread)?;
        return Ok(Response::Replayed { report, repeated: true });
    }
    let base = asked.from.map(|spec| home.resolve_commit(spec)).transpose()?;
    let run = hal_runner::replay::replay(&loaded.runner, &actor, &original, base, asked.idempotency_key);
    let report: ReplayReport = runtime.block_on(run)?;
    Ok(Response::Replayed { report, repeated: false })
}

/// What answering a command needs besides the command.
pub(crate) struct Context<'a> {
    /// The repo, on a handle of the answerer's own (never the journal's lock).
    pub(crate) home: &'a Home,
    /// What is loaded from `main`.
    pub(crate) loaded: &'a Loaded,
    /// Where secrets come from.
    pub(crate) secrets: &'a SecretLookup,
    /// Where a replay runs (a multi-threaded runtime: it is blocked on from outside); none where nothing runs.
    pub(crate) runtime: Option<&'a tokio::runtime::Handle>,
    /// The daemon answering, if one is.
    pub(crate) daemon: Option<DaemonInfo>,
    /// Branches with a turn in progress.
    pub(crate) running: Vec<String>,
    /// Commits the step of an isolate called by hand on a thread.
    pub(crate) append: &'a dyn Fn(&str, &ThreadRef, &NewStep) -> Result<Appended, DaemonError>,
}

/// Whether `command` is answered here, from what is loaded.
pub(crate) fn is_answered_here(command: &Command) -> bool {
    matches!(
        command,
        Command::Catalogue
            | Command::BuildIsolates
            | Command::Status
            | Command::CallIsolate { .. }
            | Command::HelpTests { .. }
            | Command::Replay { .. }
    )
}

/// Answer `command` (one [`is_answered_here`]) in `cx`. With `hal.yaml` invalid and no earlier version of it in
/// force, the catalogue and the status still answer (the problem is listed), but nothing runs on settings the
/// owner did not write.
pub(crate) fn answer(command: &Command, cx: Context<'_>) -> Result<Response, DaemonError> {
    let unsettled = cx.loaded.problems.iter().find(|p| p.kind == FileKind::Settings && !p.previous_in_force);
    if let Some(problem) = unsettled
        && !matches!(command, Command::Catalogue | Command::Status)
    {
        return Err(hal_runner::RunError::InvalidSettings(problem.error.clone()).into());
    }
    match command {
        // Built as `loaded` was loaded: the engine built what it could before answering (`Shared::answer`).
        Command::Catalogue | Command::BuildIsolates => {
            Ok(Response::Catalogue { catalogue: catalogue(cx.loaded, cx.secrets) })
        }
        Command::Status => {
            Ok(Response::Status { report: status(cx.home, cx.loaded, cx.daemon, cx.running, cx.secrets)? })
        }
        Command::HelpTests { help } => help_tests(cx.loaded, help),
        Command::CallIsolate { actor, isolate, function, arguments, thread, idempotency_key } => {
            let (actor, thread, idempotency_key) = (actor.as_deref(), thread.as_deref(), idempotency_key.as_deref());
            let call = Call { actor, isolate, function, arguments, thread, idempotency_key };
            call_isolate(cx.home, cx.loaded, cx.secrets, call, cx.append)
        }
        Command::Replay { actor, thread, from, idempotency_key } => {
            let Some(runtime) = cx.runtime else {
                return Err(DaemonError::NoAnswer("nothing runs turns here to replay with".to_owned()));
            };
            let (actor, from, idempotency_key) = (actor.as_deref(), from.as_deref(), idempotency_key.as_deref());
            replay(cx.home, cx.loaded, runtime, Replay { actor, thread, from, idempotency_key })
        }
        other => Err(DaemonError::NoAnswer(format!("{other:?} is not answered from what is loaded"))),
    }
}

impl crate::daemon::Shared {
    /// Answer a command of this module from what the engine has in force. A call on a thread writes its step as
    /// a `write` command does: never in the middle of a turn on that thread.
    pub(crate) fn answer(self: &std::sync::Arc<Self>, command: &Command) -> Result<Response, DaemonError> {
        if matches!(command, Command::BuildIsolates) {
            // Loading builds what the cache holds no build of; here a failed build is tried again.
            self.reload_with(hal_sandbox::Builds::Retry);
        }
        let loaded = self.loaded();
        let busy = |branch: &str| {
            let active = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if active.contains_key(branch) {
                return Err(DaemonError::Busy(branch.to_owned()));
            }
            Ok(active)
        };
        // Refused before the isolate runs, so its work is not thrown away at the end.
        if let Command::CallIsolate { thread: Some(thread), .. } = command {
            drop(busy(&self.journal.handle().resolve_thread(thread)?.branch)?);
        }
        let append = |actor: &str, thread: &ThreadRef, step: &NewStep| {
            // Held until the step is in: no turn starts on the thread meanwhile.
            let active = busy(&thread.branch)?;
            let appended = self.journal.with(|home| home.append_step(actor, thread, step))?;
            drop(active);
            self.wake();
            Ok(appended)
        };
        let running = self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keys().cloned().collect();
        let cx = Context {
            // Reads and the sandbox's work take a handle of their own: they never hold up a turn's commits.
            home: &self.journal.handle(),
            loaded: &loaded,
            secrets: &self.secrets,
            runtime: Some(&self.runtime),
            daemon: (self.mode == crate::engine::Mode::Daemon).then(|| self.info.clone()),
            running,
            append: &append,
        };
        answer(command, cx)
    }
}
