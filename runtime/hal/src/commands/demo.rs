//! `hal demo`: a guided tour of a home repo, made in a fresh directory.
//!
//! It drives the same store, runner and sandbox the other commands use: a home repo is created, a thread is
//! started, written to, forked and merged, a conflicting merge is refused; then a help is committed and run on a
//! thread, its model turns played from a recording shipped in `fixtures/demo/` (so no API key is needed, and the
//! output says so), its file written through the sandboxed `files` isolate, and its work merged. The resulting
//! history is printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result};
use hal_model::Reply;
use hal_runner::model::{Models, Recording};
use hal_runner::tools::Toolbox;
use hal_runner::{Catalog, Journal, Runner};
use hal_store::{Home, MergeOutcome};

use super::Outcome;
use crate::cli::Args;
use crate::output;

/// The help the demo commits and runs.
const WELCOME_HELP: &str = include_str!("../../../../fixtures/demo/welcome.yaml");
/// The model turns of the demo's run, recorded.
const RECORDING: &str = include_str!("../../../../fixtures/demo/recording.json");

/// The actor the demo acts as when git has no `user.name`.
const FALLBACK_ACTOR: &str = "you";

/// Run the tour in `dir` (a new directory under the system's temp dir when `None`).
pub fn run(args: &Args, dir: Option<&Path>) -> Result<Outcome> {
    let dir = match dir {
        Some(dir) => args.directory.join(dir),
        None => fresh_dir()?,
    };
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        anyhow::bail!("{} is not empty: give `hal demo` a new or empty directory", dir.display());
    }
    let actor = default_actor(&dir);
    println!("== HAL demo in {}", dir.display());
    let (home, report) = Home::init(&dir, Some(&actor)).context("creating the demo home repo")?;
    println!("   hal init: home repo with hal.yaml on main; actors: {}", report.created_actors.join(", "));

    let thread = home.new_thread(&actor, None, Some("write a greeting"))?;
    println!("\n== thread {} ({})", thread.id, thread.branch);
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
    println!("\n== fork {} of step {} ({})", fork.id, ask.step.unwrap_or_default(), fork.branch);
    print_log(&home, &fork.id)?;

    println!("\n== accept the first thread's work");
    report_merge(&home.merge_thread(&actor, &thread.id)?, &thread.branch);
    println!("\n== try to accept the fork too");
    report_merge(&home.merge_thread(&actor, &fork.id)?, &fork.branch);

    run_recorded_help(&dir, &home, &actor)?;

    println!("\n== hal thread list");
    for summary in home.list_threads()? {
        println!("   {}  {:<7} {:>2} steps  {}", summary.id, summary.status.as_str(), summary.steps, summary.title);
    }
    println!("\n== git log --graph --oneline --all");
    let graph = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["log", "--graph", "--oneline", "--all", "--decorate"])
        .output()
        .context("running `git log`")?;
    print!("{}", String::from_utf8_lossy(&graph.stdout));
    println!(
        "\nThe demo repo stays in {}: explore it with `git log` or `hal -C {} thread list`.",
        dir.display(),
        dir.display()
    );
    Ok(Outcome::Done)
}

/// Commit a help, run it on a new thread with the recorded model turns, and merge its work.
fn run_recorded_help(dir: &Path, home: &Home, actor: &str) -> Result<()> {
    println!("\n== commit helps/welcome.yaml on main, then run it");
    std::fs::create_dir_all(dir.join("helps")).context("creating helps/")?;
    std::fs::write(dir.join("helps/welcome.yaml"), WELCOME_HELP).context("writing helps/welcome.yaml")?;
    let identity = ["-c", "user.name=HAL demo", "-c", "user.email=demo@hal.invalid"];
    for command in [&["add", "helps/welcome.yaml"][..], &["commit", "-q", "-m", "Add the welcome help"][..]] {
        let status = Command::new("git").arg("-C").arg(dir).args(identity).args(command).status()?;
        anyhow::ensure!(status.success(), "git {} failed in the demo repo", command.join(" "));
    }
    let catalog = Catalog::load(home)?;
    let mut toolbox = Toolbox::new();
    super::isolate::add_tools(&mut toolbox, home, &catalog.settings)?;
    let runner = Runner::new(Journal::new(Home::open(dir)?), Arc::new(catalog), toolbox)
        .with_observer(Arc::new(|event| super::run::print_event_to(&mut std::io::stdout(), event)));
    let replies: Vec<Reply> = serde_json::from_str(RECORDING).context("reading the demo's recording")?;
    let models: Arc<dyn Models> = Arc::new(Arc::new(Recording::new(replies, Vec::new())));
    let thread = home.new_thread(actor, None, Some("welcome note"))?;
    println!("   thread {} ({}); model: a recording shipped with HAL, not a live model", thread.id, thread.branch);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let request = "Write a welcome note for people new to this repo.";
    let outcome = runtime.block_on(runner.run(models, &thread, actor, "welcome", request))?;
    println!("   {}: {}", outcome.status, outcome.output);
    report_merge(&home.merge_thread(actor, &thread.id)?, &thread.branch);
    Ok(())
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
    for step in home.thread_log(thread, None)? {
        let number = step.step.map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!("   #{number} {:<7} {}: {}", step.kind, step.actor, step.text.lines().next().unwrap_or_default());
    }
    Ok(())
}

fn report_merge(outcome: &MergeOutcome, branch: &str) {
    match outcome {
        MergeOutcome::FastForward { commit } => {
            println!("   merged {branch} into main (fast-forward to {})", output::short(commit))
        }
        MergeOutcome::Merged { commit } => println!("   merged {branch} into main ({})", output::short(commit)),
        MergeOutcome::AlreadyMerged => println!("   {branch} was already merged"),
        MergeOutcome::Conflict { paths } => {
            println!("   refused: {branch} conflicts with main in {}; main is unchanged", paths.join(", "));
        }
    }
}
