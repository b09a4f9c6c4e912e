//! `hal demo`: a guided tour of a home repo, made in a fresh directory.
//!
//! It drives the same store, runner, sandbox and daemon the other commands use. First the store: a thread is
//! started, written to, forked and merged, and a conflicting merge is refused. Then the product's main job: a
//! daemon starts on the repo, a help is committed with plain git and loaded, HAL is asked in the backchat for
//! work that needs the help and starts a thread running it, the thread's steps are printed as the daemon
//! commits them, and the thread is merged. The model turns come from a recording shipped in `fixtures/demo/`
//! (no API key needed, and the output says so), or from the models of the current home repo with `--live`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use std::io::Write as _;

use anyhow::{Context, Result};
use hal_daemon::protocol::{Command as HalCommand, Response};
use hal_daemon::{Daemon, DaemonOptions};
use hal_model::Reply;
use hal_store::{Home, MergeOutcome};

use super::CommandEnd;
use crate::cli::Args;
use crate::output;

/// The help the demo commits and runs.
const WELCOME_HELP: &str = include_str!("../../../../fixtures/demo/welcome.yaml");
/// The model turns of the demo's run, recorded.
const RECORDING: &str = include_str!("../../../../fixtures/demo/recording.json");

/// The actor the demo acts as when git has no `user.name`.
const FALLBACK_ACTOR: &str = "you";

/// Run the tour in `dir` (a new directory under the system's temp dir when `None`).
pub fn run(args: &Args, dir: Option<&Path>, live: bool) -> Result<CommandEnd> {
    let dir = match dir {
        Some(dir) => args.directory.join(dir),
        None => fresh_dir()?,
    };
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        anyhow::bail!("{} is not empty: give `hal demo` a new or empty directory", dir.display());
    }
    let live_settings = if live { Some(live_settings(args)?) } else { None };
    let actor = default_actor(&dir);
    outln!("== HAL demo in {}", dir.display());
    let (home, report) = Home::init(&dir, Some(&actor)).context("creating the demo home repo")?;
    outln!("   hal init: home repo with hal.yaml on main; actors: {}", report.created_actors.join(", "));

    let thread = home.new_thread(&actor, None, Some("write a greeting"))?;
    outln!("\n== thread {} ({})", thread.id, thread.branch);
    home.say(&actor, &thread.id, "Please write a short greeting into greeting.md.")?;
    home.write_file(
        &actor,
        &thread.id,
        "greeting.md",
        b"# Hello\n\nHello from the first HAL thread.\n",
        Some("Write greeting.md"),
    )?;
    print_log(&home, &thread.id)?;

    let log = home.thread_log(&thread.id, None)?;
    let ask = &log[1];
    let fork = home.fork_thread(&actor, &thread.id, Some(&ask.commit.to_string()))?;
    home.write_file(
        &actor,
        &fork.id,
        "greeting.md",
        b"# Hi\n\nA different greeting, from a fork.\n",
        Some("Write a different greeting.md"),
    )?;
    outln!("\n== fork {} of step {} ({})", fork.id, ask.number.unwrap_or_default(), fork.branch);
    print_log(&home, &fork.id)?;

    // Merges go through the repo's handle, as `hal thread merge` does: the guards of a merge are the engine's.
    let handle = hal_daemon::handle::open(&dir)?;
    outln!("\n== accept the first thread's work");
    report_merge(&merge(&home, handle.as_ref(), &actor, &thread.id)?, &thread.branch)?;
    outln!("\n== try to accept the fork too");
    report_merge(&merge(&home, handle.as_ref(), &actor, &fork.id)?, &fork.branch)?;
    drop(handle);

    if let Some(settings) = &live_settings {
        std::fs::write(dir.join(hal_store::CONFIG_FILE), settings).context("writing hal.yaml")?;
        git_commit(&dir, &[hal_store::CONFIG_FILE], "Use the models of the home repo the demo was started in")?;
    }
    drop(home);
    run_with_daemon(&dir, &actor, live)?;
    let home = Home::open(&dir)?;

    outln!("\n== hal thread list");
    for summary in home.list_threads()? {
        outln!("   {}  {:<7} {:>2} steps  {}", summary.id, summary.status.as_str(), summary.steps, summary.title);
    }
    outln!("\n== git log --graph --oneline --all");
    let graph = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["log", "--graph", "--oneline", "--all", "--decorate"])
        .output()
        .context("running `git log`")?;
    out!("{}", String::from_utf8_lossy(&graph.stdout));
    outln!(
        "\nThe demo repo stays in {}: explore it with `git log` or `hal -C {} thread list`.",
        dir.display(),
        dir.display()
    );
    Ok(CommandEnd::Done)
}

/// Start the daemon, commit a help, ask HAL in the backchat for work that needs it, follow the thread HAL starts,
/// and merge it: all through the daemon's API, the way `hal chat` and `hal thread merge` work.
fn run_with_daemon(dir: &Path, actor: &str, live: bool) -> Result<()> {
    let models = if live {
        outln!("\n== model: live, as configured in hal.yaml");
        None
    } else {
        let replies: Vec<Reply> = serde_json::from_str(RECORDING).context("reading the demo's recording")?;
        outln!("\n== model: a recording shipped with HAL (fixtures/demo/recording.json), not a live model");
        Some(super::daemon::recording_models(replies))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let daemon_dir = dir.to_owned();
    let daemon = std::thread::spawn(move || {
        let options = DaemonOptions { models, ..DaemonOptions::default() };
        let stop = async move {
            let _ = stopped.await;
        };
        Daemon::run_until(&daemon_dir, options, |info| drop(ready_tx.send(info.clone())), stop)
    });
    let Ok(info) = ready_rx.recv_timeout(Duration::from_secs(120)) else {
        return Err(match daemon.join() {
            Ok(Err(error)) => anyhow::Error::new(error).context("the daemon did not start"),
            _ => anyhow::anyhow!("the daemon did not start"),
        });
    };
    outln!("== hal daemon serving on http://{} (pid {})", info.address, info.pid);
    let result = demo_through_daemon(dir, actor);
    let _ = stop.send(());
    match daemon.join() {
        Ok(stopped) => stopped.context("the daemon failed")?,
        Err(_) => anyhow::bail!("the daemon thread panicked"),
    }
    result
}

fn demo_through_daemon(dir: &Path, actor: &str) -> Result<()> {
    outln!("\n== commit helps/welcome.yaml on main with plain git");
    std::fs::create_dir_all(dir.join("helps")).context("creating helps/")?;
    std::fs::write(dir.join("helps/welcome.yaml"), WELCOME_HELP).context("writing helps/welcome.yaml")?;
    git_commit(dir, &["helps/welcome.yaml"], "Add the welcome help")?;
    let home = Home::open(dir)?;
    let client = super::remote::daemon(&home)?.context("the demo's daemon is not reachable")?;
    let started = Instant::now();
    loop {
        let status = super::remote::block_on(client.status())??;
        if status.catalogue.helps.iter().any(|h| h == "welcome") {
            outln!("   the daemon loaded it ({} ms after the commit)", started.elapsed().as_millis());
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(10), "the daemon did not load helps/welcome.yaml");
        std::thread::sleep(Duration::from_millis(20));
    }

    let request = "Please have a welcome note written for people new to this repo.";
    outln!("\n== hal chat -m {request:?}");
    let before: Vec<String> = home.list_threads()?.into_iter().map(|t| t.branch).collect();
    let say = hal_daemon::protocol::Command::Say {
        signature: None,
        actor: Some(actor.to_owned()),
        thread: hal_store::BACKCHAT.to_owned(),
        text: request.to_owned(),
        help: None,
        agent: None,
        idempotency_key: None,
        relayed: None,
    };
    // The demo prints each step on stdout itself, as the rest of its story.
    let shown = |step: &hal_store::Step| {
        print_step(step);
        None
    };
    let display = super::remote::Display { steps: Some(&shown), text: false, after_prompt: false };
    // A client of its own: an HTTP client's connections belong to the runtime that made them.
    let handle = hal_daemon::handle::Remote::new(super::remote::daemon(&home)?.context("the daemon went away")?)?;
    let (end, _) = super::remote::talk(&handle, actor, &say, &display)?;
    outln!("   HAL: {} ({})", end.output, end.status);
    anyhow::ensure!(
        end.status == hal_daemon::protocol::Status::Done,
        "HAL's turn ended {}: {}",
        end.status,
        end.output
    );

    let Some(thread) = home.list_threads()?.into_iter().find(|t| !before.contains(&t.branch)) else {
        outln!("   HAL started no thread; nothing to merge");
        return Ok(());
    };
    outln!("\n== thread {} ({}), run by the daemon, step by step", thread.id, thread.branch);
    follow_to_finish(&handle, &thread.branch, actor)?;

    outln!("\n== hal thread merge {}", thread.id);
    let signature = super::remote::sign_merge(&home, actor, &thread.branch);
    let merge = hal_daemon::protocol::Command::Merge {
        actor: Some(actor.to_owned()),
        thread: thread.branch.clone(),
        signature,
    };
    match hal_daemon::Handle::command(&handle, &merge)? {
        hal_daemon::protocol::Response::Merged { outcome, thread } => report_merge(&outcome, &thread.branch)?,
        other => anyhow::bail!("unexpected answer to the merge: {other:?}"),
    }
    Ok(())
}

/// Print each step of `branch` as the daemon commits it, from its first, until its run ends: with a `finish`
/// step, or a `system` step saying the run could not run (a missing key, say), which has no `finish`. A run that
/// did not end DONE is an error.
fn follow_to_finish(handle: &dyn hal_daemon::Handle, branch: &str, actor: &str) -> Result<()> {
    let mut ended: Option<(hal_store::ThreadStatus, String)> = None;
    handle.follow(branch, Some(gix::ObjectId::null(gix::hash::Kind::Sha1)), actor, &mut |event| {
        if let hal_daemon::protocol::ThreadEvent::Step { step } = event {
            print_step(step);
            let failed =
                step.kind == hal_store::StepKind::System && step.status == Some(hal_store::ThreadStatus::Error);
            if step.kind == hal_store::StepKind::Finish || failed {
                ended = Some((step.status.clone().unwrap_or(hal_store::ThreadStatus::Error), step.text.clone()));
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    match ended {
        None => anyhow::bail!("the daemon stopped before the thread's run ended"),
        Some((hal_store::ThreadStatus::Done, _)) => Ok(()),
        Some((status, text)) => anyhow::bail!("the thread's run ended {status}: {text}"),
    }
}

/// One line for a step, as the demo prints them.
fn print_step(step: &hal_store::Step) {
    let number = step.number.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let line: String = step.text.lines().next().unwrap_or_default().chars().take(120).collect();
    // A reader that went away is noticed by the next `outln!`.
    let _ = writeln!(std::io::stdout(), "   #{number} {:<7} {}: {line}", step.kind, step.actor);
}

/// `git add` `paths` and commit them with `message`, as the demo's author.
fn git_commit(dir: &Path, paths: &[&str], message: &str) -> Result<()> {
    let identity = ["-c", "user.name=HAL demo", "-c", "user.email=demo@hal.invalid"];
    let add: Vec<&str> = ["add", "--"].into_iter().chain(paths.iter().copied()).collect();
    // What lands on main counts only when an owner signs it: with the key `hal init` set as git's signing key.
    for command in [&add[..], &["commit", "-q", "-S", "-m", message][..]] {
        let status = Command::new("git").arg("-C").arg(dir).args(identity).args(command).status()?;
        anyhow::ensure!(status.success(), "git {} failed in the demo repo", command.join(" "));
    }
    Ok(())
}

/// `hal.yaml` of the home repo `hal demo --live` runs in, which must configure a model.
fn live_settings(args: &Args) -> Result<Vec<u8>> {
    let home = Home::open(&args.directory).context("`hal demo --live` takes the models of the home repo it runs in")?;
    let main = home.main_tip()?.context("the home repo has no main branch")?;
    let bytes = home.file_at(main, hal_store::CONFIG_FILE)?.context("the home repo has no hal.yaml on main")?;
    let settings = hal_spec::Settings::parse(hal_store::CONFIG_FILE, &String::from_utf8_lossy(&bytes))?;
    anyhow::ensure!(!settings.models.is_empty(), "{}", hal_runner::model::NO_MODEL_HELP);
    Ok(bytes)
}

fn fresh_dir() -> Result<PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("hal-demo-{}", hal_store::thread_id::generate(std::time::SystemTime::now())));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The demo acts as the local user when git knows them, otherwise as `you`.
fn default_actor(dir: &Path) -> String {
    let name = Command::new("git")
        .args(["config", "user.name"])
        .current_dir(dir.parent().unwrap_or(dir))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    name.and_then(|n| hal_store::identity::slug(&n))
        .filter(|n| n != hal_store::identity::HAL_ACTOR)
        .unwrap_or_else(|| FALLBACK_ACTOR.to_owned())
}

fn print_log(home: &Home, thread: &str) -> Result<()> {
    home.thread_log(thread, None)?.iter().for_each(print_step);
    Ok(())
}

fn report_merge(outcome: &MergeOutcome, branch: &str) -> Result<()> {
    match outcome {
        MergeOutcome::FastForward { commit } => {
            outln!("   merged {branch} into main (fast-forward to {})", output::short(commit))
        }
        MergeOutcome::Merged { commit } => outln!("   merged {branch} into main ({})", output::short(commit)),
        MergeOutcome::AlreadyMerged => outln!("   {branch} was already merged"),
        MergeOutcome::Conflict { paths } => {
            outln!("   refused: {branch} conflicts with main in {}; main is unchanged", paths.join(", "));
        }
        MergeOutcome::Immutable { paths } => {
            outln!("   refused: {branch} changes plugin versions on main ({}); main is unchanged", paths.join(", "));
        }
        MergeOutcome::UnsafePaths { paths } => {
            outln!("   refused: {branch} holds names git refuses ({}); main is unchanged", paths.join(", "));
        }
    }
    Ok(())
}

/// Merge `thread` through `handle`, signed as `hal thread merge` signs it.
fn merge(home: &Home, handle: &dyn hal_daemon::Handle, actor: &str, thread: &str) -> Result<MergeOutcome> {
    let signature = super::remote::sign_merge(home, actor, thread);
    let command = HalCommand::Merge { actor: Some(actor.to_owned()), thread: thread.to_owned(), signature };
    match handle.command(&command)? {
        Response::Merged { outcome, .. } => Ok(outcome),
        other => anyhow::bail!("the merge was answered with {other:?}"),
    }
}
