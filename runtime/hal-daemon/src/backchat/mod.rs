//! HAL's built-in commands: the tools the `hal` help uses in the backchat to navigate and steer. They read
//! threads, commits and files at any ref, start threads that run a help, send messages, and propose merges
//! (a person accepts with `hal thread merge` or `git merge`). Nothing here merges.

use std::sync::Arc;

use hal_model::ToolSpec;
use hal_runner::SharedHome;
use hal_runner::tools::{BoxFuture, RunScope, Tool, ToolContext, ToolResult, Toolbox};
use hal_store::Home;
use serde_json::{Value, json};

use crate::command;
use crate::protocol::{Command, FromRun, Response};

mod read;
use read::{diff, list, propose_merge, read, show, summary};

/// How HAL's commands change threads: through the daemon (which queues a message to a busy thread and runs
/// the turns), or, without one, by applying the command to the repo of the journal.
pub type Dispatch = Arc<dyn Fn(&SharedHome, &Command) -> Result<Response, String> + Send + Sync>;

/// The dispatch without a daemon: apply to the repo directly (turns run when a daemon starts).
pub fn direct() -> Dispatch {
    Arc::new(|journal: &SharedHome, command: &Command| {
        journal.with(|home| command::apply(home, command)).map_err(|e| e.to_string())
    })
}

/// Longest file text `git.read` returns.
const MAX_READ: usize = 64 * 1024;
/// Most threads `threads.list` returns.
const MAX_LISTED: usize = 100;
/// Most lines of a changed file `threads.diff` shows.
const DIFF_LINES: usize = 40;

#[derive(Clone, Copy)]
enum CommandKind {
    List,
    Summary,
    Show,
    Read,
    Diff,
    Start,
    Say,
    Switch,
    ProposeMerge,
}

struct HalCommand {
    spec: ToolSpec,
    kind: CommandKind,
    dispatch: Dispatch,
}

fn spec(name: &str, description: &str, parameters: Value) -> ToolSpec {
    ToolSpec { name: name.to_owned(), description: description.to_owned(), parameters }
}

/// Add HAL's commands (`threads.*`, `git.*`) to `toolbox`; those that change threads go through `dispatch`.
pub fn add_tools(toolbox: &mut Toolbox, dispatch: Dispatch) -> Result<(), hal_runner::tools::InvalidSchema> {
    let thread = json!({"type": "string", "description": "Thread id, unique prefix, or branch threads/<actor>/<id>"});
    let commands = [
        (
            CommandKind::List,
            spec(
                "threads.list",
                "List threads, newest first: id, status, steps, title. Filter by status (open, running, done, \
                 pending, error, nocando, merged) and by words in the title or id.",
                json!({"type": "object", "additionalProperties": false, "properties": {
                    "status": {"type": "string"}, "text": {"type": "string"}}}),
            ),
        ),
        (
            CommandKind::Summary,
            spec(
                "threads.summary",
                "Summarise a thread: title, status, its steps (newest 30, one line each) and the files it changed \
                 against main.",
                json!({"type": "object", "required": ["thread"], "additionalProperties": false,
                    "properties": {"thread": thread}}),
            ),
        ),
        (
            CommandKind::Show,
            spec(
                "git.show",
                "Show a commit: its message, author, parents and the files it changed.",
                json!({"type": "object", "required": ["commit"], "additionalProperties": false,
                    "properties": {"commit": {"type": "string", "description": "Commit id, prefix or ref"}}}),
            ),
        ),
        (
            CommandKind::Read,
            spec(
                "git.read",
                "Read a file at any ref: main, a thread's branch, a commit id.",
                json!({"type": "object", "required": ["ref", "path"], "additionalProperties": false,
                    "properties": {"ref": {"type": "string"}, "path": {"type": "string"}}}),
            ),
        ),
        (
            CommandKind::Diff,
            spec(
                "threads.diff",
                "The files a thread adds, changes or deletes compared with main, with the start of each new text.",
                json!({"type": "object", "required": ["thread"], "additionalProperties": false,
                    "properties": {"thread": thread}}),
            ),
        ),
        (
            CommandKind::Start,
            spec(
                "threads.start",
                "Start a new thread from main that runs a help on an input. Returns the thread id; the thread \
                 runs on its own, follow it with threads.summary.",
                json!({"type": "object", "required": ["help", "input"], "additionalProperties": false,
                    "properties": {"help": {"type": "string"}, "input": {"type": "string"},
                        "title": {"type": "string"}}}),
            ),
        ),
        (
            CommandKind::Say,
            spec(
                "threads.say",
                "Send a message to a thread on the person's behalf; the thread answers it with its next turn.",
                json!({"type": "object", "required": ["thread", "text"], "additionalProperties": false,
                    "properties": {"thread": thread, "text": {"type": "string"}}}),
            ),
        ),
        (
            CommandKind::Switch,
            spec(
                "threads.switch",
                "Hand a thread to another agent: sends the request, rewritten for that agent, to the thread as a \
                 message naming the agent. Its next turn, and the turns after it, are the agent's (its persona, \
                 helps and isolates). Recorded as a step on the thread.",
                json!({"type": "object", "required": ["thread", "agent", "text"], "additionalProperties": false,
                    "properties": {"thread": thread,
                        "agent": {"type": "string", "description": "The agent (agents/<name>.yaml, or a built-in)"},
                        "text": {"type": "string", "description": "The request, rewritten for the agent"}}}),
            ),
        ),
        (
            CommandKind::ProposeMerge,
            spec(
                "threads.propose_merge",
                "Propose merging a thread's work into main: records the proposal on the thread and returns the \
                 command a person runs to accept it. It does not merge.",
                json!({"type": "object", "required": ["thread"], "additionalProperties": false,
                    "properties": {"thread": thread, "reason": {"type": "string"}}}),
            ),
        ),
    ];
    for (kind, spec) in commands {
        toolbox.add(Arc::new(HalCommand { spec, kind, dispatch: dispatch.clone() }))?;
    }
    Ok(())
}

impl Tool for HalCommand {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, arguments: Value, context: &'a mut ToolContext) -> BoxFuture<'a, ToolResult> {
        Box::pin(async move {
            let journal = context.journal().clone();
            let caller = Caller {
                actor: context.actor().to_owned(),
                branch: context.branch().to_owned(),
                run: context.run().clone(),
            };
            let kind = self.kind;
            let dispatch = self.dispatch.clone();
            let result = tokio::task::spawn_blocking(move || {
                let text = |key: &str| arguments.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                run(&journal, &dispatch, kind, &caller, &text)
            })
            .await
            .unwrap_or_else(|e| Err(format!("the command failed: {e}")));
            match result {
                Ok(content) => ToolResult::ok(content),
                Err(reason) => ToolResult::error(reason),
            }
        })
    }
}

/// Who calls a command: the run's actor, the thread it runs on, and what the run's calls share.
struct Caller {
    actor: String,
    branch: String,
    run: RunScope,
}

/// What a run's `threads.start` or `threads.say` may do next: how long the chain of starts and relays by runs that
/// leads to the new thread or message is, or why it may not go on. The chain is the caller's (its thread's or its
/// request's, from HAL's local record only: whatever commits claim, a thread no run led to counts as a person's)
/// plus one. Past `limits.max_depth` nothing more is started or relayed, so two threads relaying to each other
/// stop; starts and relays of one run together count against `limits.max_starts`.
fn next_depth(journal: &SharedHome, caller: &Caller, what: &str) -> Result<u32, String> {
    let limits = caller.run.limits;
    let here = if caller.branch.is_empty() {
        None
    } else {
        journal.with(|home| home.depth_of(&caller.branch)).map_err(|e| e.to_string())?
    };
    let depth = here.unwrap_or(0).max(caller.run.chain_depth).saturating_add(1);
    if depth > limits.max_depth {
        return Err(format!(
            "not {what}: this run is at the end of a chain of {} threads started and messages relayed by runs, and \
             such a chain may be at most {} long (limits.max_depth in hal.yaml)",
            depth - 1,
            limits.max_depth
        ));
    }
    let count = caller.run.count("threads");
    if count > limits.max_starts {
        return Err(format!(
            "not {what}: one run may start threads and send messages to threads at most {} times \
             (limits.max_starts in hal.yaml)",
            limits.max_starts
        ));
    }
    Ok(depth)
}

/// What a start or relay by `caller`'s run at `depth` passes on: the helps whose own rules hold for the runs it
/// leads to, the calling run's help and those that called it.
fn from_run(caller: &Caller, depth: u32) -> FromRun {
    let mut held_by = caller.run.callers.clone();
    if !caller.run.help.is_empty() && !held_by.contains(&caller.run.help) {
        held_by.push(caller.run.help.clone());
    }
    FromRun { depth, held_by }
}

fn run(
    journal: &SharedHome,
    dispatch: &Dispatch,
    kind: CommandKind,
    caller: &Caller,
    arg: &dyn Fn(&str) -> String,
) -> Result<String, String> {
    let actor = caller.actor.as_str();
    let who = Some(actor.to_owned()).filter(|a| !a.is_empty());
    match kind {
        CommandKind::Start => {
            let (help, input, title) = (arg("help"), arg("input"), arg("title"));
            let title = if title.trim().is_empty() { format!("{help}: {}", first_line(&input)) } else { title };
            let depth = next_depth(journal, caller, "started")?;
            let command = Command::NewThread {
                purpose: None,
                idempotency_key: None,
                actor: who,
                from: None,
                title: Some(title),
                help: Some(help.clone()),
                agent: None,
                input: Some(input),
                started_by_run: Some(from_run(caller, depth)),
            };
            let Response::Started { thread, .. } = dispatch(journal, &command)? else {
                return Err("unexpected answer".to_owned());
            };
            Ok(format!("started thread {} ({}) running help `{help}`", thread.id, thread.branch))
        }
        CommandKind::Say | CommandKind::Switch => {
            let agent = match kind {
                CommandKind::Switch => Some(journal.with(|home| known_agent(home, &arg("agent")))?),
                _ => None,
            };
            let target = journal
                .with(|home| crate::command::thread_of(home, actor, &arg("thread")))
                .map_err(|e| e.to_string())?;
            // A switch stays with the thread: only the person's own work threads, never a backchat (which always
            // talks to HAL) nor another person's thread (whose agent is theirs to choose).
            if matches!(kind, CommandKind::Switch) && (target.id == hal_store::BACKCHAT || target.actor != actor) {
                return Err(format!(
                    "not switched: {} is {}; a switch is for your own threads",
                    target.id,
                    if target.id == hal_store::BACKCHAT { "a backchat" } else { "another person's thread" }
                ));
            }
            // A run's message to its own thread would start its next turn, which could do the same, forever.
            if target.branch == caller.branch {
                return Err("not sent: a run cannot send a message to its own thread; answer in your reply".to_owned());
            }
            let depth = next_depth(journal, caller, "sent")?;
            let command = Command::Say {
                signature: None,
                idempotency_key: None,
                actor: who,
                thread: target.branch,
                text: arg("text"),
                help: None,
                agent: agent.clone(),
                relayed: Some(from_run(caller, depth)),
            };
            let Response::Said { thread, queued, .. } = dispatch(journal, &command)? else {
                return Err("unexpected answer".to_owned());
            };
            let when = if queued { "after the turn it is running" } else { "with its next turn" };
            match agent {
                Some(agent) => Ok(format!("switched; thread {} answers as agent `{agent}` {when}", thread.id)),
                None => Ok(format!("sent; thread {} answers it {when}", thread.id)),
            }
        }
        CommandKind::List => journal.with(|home| list(home, &arg("status"), &arg("text"))),
        CommandKind::Summary => journal.with(|home| summary(home, &arg("thread"))),
        CommandKind::Show => journal.with(|home| show(home, &arg("commit"))),
        CommandKind::Read => journal.with(|home| read(home, &arg("ref"), &arg("path"))),
        CommandKind::Diff => journal.with(|home| diff(home, &arg("thread"))),
        CommandKind::ProposeMerge => journal.with(|home| propose_merge(home, actor, &arg("thread"), &arg("reason"))),
    }
}

/// `name` when it names an agent there is (a built-in, or `agents/<name>.yaml` on main): a switch to one that is not
/// would leave the thread with turns that cannot run.
fn known_agent(home: &Home, name: &str) -> Result<String, String> {
    let name = name.trim();
    if !hal_spec::is_name(name) {
        return Err(format!("not switched: `{name}` is no agent's name (lowercase letters, digits, - and _)"));
    }
    let built_in = hal_spec::builtin::AGENTS.iter().any(|(agent, _)| *agent == name);
    let main = home.main_tip().map_err(|e| e.to_string())?;
    let on_main = match main {
        Some(main) => home.file_at(main, &format!("agents/{name}.yaml")).map_err(|e| e.to_string())?.is_some(),
        None => false,
    };
    match built_in || on_main {
        true => Ok(name.to_owned()),
        false => Err(format!("not switched: there is no agent `{name}` (agents/{name}.yaml on main, or a built-in)")),
    }
}

fn first_line(text: &str) -> String {
    hal_store::files::printable(hal_store::files::first_line(text).trim(), 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hal_reads_threads_commits_and_files_and_proposes_merges_without_merging() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let thread = home.new_thread("alice", None, Some("notes")).expect("thread");
        let written = home.write_file("alice", &thread.id, "notes/a.md", b"# A\nline two\n", None).expect("write");
        let main_before = home.main_tip().expect("main");
        let journal = SharedHome::new(home);
        let dispatch = direct();
        let call = |kind: CommandKind, args: &[(&str, &str)]| {
            let args: Vec<(String, String)> = args.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let arg = |key: &str| args.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
            let caller = Caller { actor: "alice".to_owned(), branch: String::new(), run: RunScope::default() };
            run(&journal, &dispatch, kind, &caller, &arg)
        };
        let listed = call(CommandKind::List, &[("status", "open")]).expect("list");
        assert!(listed.contains(&thread.id) && listed.contains("notes"), "{listed}");
        assert_eq!(call(CommandKind::List, &[("text", "nothing like it")]).expect("list"), "no threads match");
        let summary = call(CommandKind::Summary, &[("thread", &thread.id)]).expect("summary");
        assert!(summary.contains("title: notes") && summary.contains("A notes/a.md"), "{summary}");
        let shown = call(CommandKind::Show, &[("commit", &written.commit.to_string())]).expect("show");
        assert!(shown.contains("A notes/a.md") && shown.contains("parent "), "{shown}");
        let read = call(CommandKind::Read, &[("ref", &thread.branch), ("path", "notes/a.md")]).expect("read");
        assert_eq!(read, "# A\nline two\n");
        assert!(call(CommandKind::Read, &[("ref", "main"), ("path", "notes/a.md")]).is_err(), "not on main");
        let diff = call(CommandKind::Diff, &[("thread", &thread.id)]).expect("diff");
        assert!(diff.contains("--- notes/a.md (new)") && diff.contains("+ line two"), "{diff}");
        let proposal =
            call(CommandKind::ProposeMerge, &[("thread", &thread.id), ("reason", "ready")]).expect("propose");
        assert!(proposal.contains(&format!("hal thread merge {}", thread.id)), "{proposal}");
        journal.with(|home| {
            assert_eq!(home.main_tip().expect("main"), main_before, "proposing never merges");
            let tip = home.steps_back(&home.resolve_thread(&thread.id).expect("thread")).next();
            let tip = tip.expect("a step").expect("readable");
            assert_eq!(tip.kind, hal_store::StepKind::System);
            assert_eq!(tip.status, Some(hal_store::ThreadStatus::Open), "the thread's status is kept");
        });
        let started = call(CommandKind::Start, &[("help", "hal"), ("input", "hello")]).expect("start");
        assert!(started.starts_with("started thread "), "{started}");
        let said = call(CommandKind::Say, &[("thread", &thread.id), ("text", "more please")]).expect("say");
        assert!(said.contains("with its next turn"), "{said}");
    }

    /// Regression: `threads.start` let a run start a thread running `hal`, which started another, without end.
    #[test]
    fn regression_threads_start_has_a_depth_and_a_fan_out_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
        let backchat = home.backchat("alice").expect("backchat");
        let journal = SharedHome::new(home);
        let dispatch = direct();
        let limits = hal_runner::RunLimits { max_depth: 3, max_starts: 2, ..hal_runner::run::DEFAULT_LIMITS };
        let start = |branch: &str, run: &RunScope| {
            let caller = Caller { actor: "alice".to_owned(), branch: branch.to_owned(), run: run.clone() };
            let arg = |key: &str| if key == "help" { "hal".to_owned() } else { "go on".to_owned() };
            run_start(&journal, &dispatch, &caller, &arg)
        };
        // A chain: the backchat (a person's thread) starts one, which starts one, …, up to max_depth.
        let mut branch = backchat.branch.clone();
        for depth in 1..=3 {
            let started = start(&branch, &RunScope::new(limits)).expect("within the limit");
            branch = started.branch.clone();
            assert_eq!(journal.with(|home| home.depth_of(&branch)).expect("record"), Some(depth));
            // The request is HAL's, written for the person: a model's words are never recorded as theirs.
            let first = journal.with(|home| home.steps_back(&started).next().expect("a step").expect("readable"));
            assert_eq!(first.actor, "hal");
            assert_eq!(first.fact("Hal-For"), Some("alice"));
            assert!(hal_runner::conversation::is_persons_step(&first), "the relayed request gets a turn");
        }
        let refused = start(&branch, &RunScope::new(limits)).expect_err("past max_depth");
        assert!(refused.contains("limits.max_depth") && refused.contains("chain of 3 threads"), "{refused}");
        // One run may start only max_starts threads, wherever it runs.
        let scope = RunScope::new(limits);
        start(&backchat.branch, &scope).expect("first");
        start(&backchat.branch, &scope).expect("second");
        let refused = start(&backchat.branch, &scope).expect_err("third");
        assert!(refused.contains("limits.max_starts"), "{refused}");
        // A message relayed to a thread is HAL's too.
        let caller = Caller { actor: "alice".to_owned(), branch: backchat.branch.clone(), run: RunScope::default() };
        let arg = |key: &str| if key == "thread" { branch.clone() } else { "model text".to_owned() };
        run(&journal, &dispatch, CommandKind::Say, &caller, &arg).expect("say");
        let said = journal.with(|home| {
            let thread = home.resolve_thread(&branch).expect("thread");
            home.steps_back(&thread).next().expect("a step").expect("readable")
        });
        assert_eq!(
            (said.actor.as_str(), said.fact("Hal-For"), said.text.as_str()),
            ("hal", Some("alice"), "model text")
        );
        // Its chain is recorded for its commit: the turn it starts continues the chain, it does not restart it.
        let recorded = journal.with(|home| home.depth_of(&said.commit.to_string())).expect("record");
        assert_eq!(recorded, Some(1));
        // A run may not message its own thread (its next turn would do the same), nor relay past max_depth: two
        // threads relaying to each other stop.
        let own = |key: &str| if key == "thread" { backchat.branch.clone() } else { "again".to_owned() };
        let refused = run(&journal, &dispatch, CommandKind::Say, &caller, &own).expect_err("own thread");
        assert!(refused.contains("cannot send a message to its own thread"), "{refused}");
        let mut deep = RunScope::new(limits);
        deep.chain_depth = 3;
        let caller = Caller { actor: "alice".to_owned(), branch: backchat.branch.clone(), run: deep };
        let refused = run(&journal, &dispatch, CommandKind::Say, &caller, &arg).expect_err("past max_depth");
        assert!(refused.contains("not sent") && refused.contains("limits.max_depth"), "{refused}");
    }

    /// `threads.start` through `run`, returning the new thread.
    fn run_start(
        journal: &SharedHome,
        dispatch: &Dispatch,
        caller: &Caller,
        arg: &dyn Fn(&str) -> String,
    ) -> Result<hal_store::ThreadRef, String> {
        let before: Vec<String> =
            journal.with(|home| home.list_threads()).expect("list").into_iter().map(|t| t.id).collect();
        run(journal, dispatch, CommandKind::Start, caller, arg)?;
        let threads = journal.with(|home| home.list_threads()).expect("list");
        let new = threads.into_iter().find(|t| !before.contains(&t.id)).expect("a new thread");
        Ok(journal.with(|home| home.resolve_thread(&new.id)).expect("resolve"))
    }
}
