//! `hal demo`: a guided tour of a home repo, made in a fresh directory.
//!
//! It drives the same store the other commands use: a home repo is created, a thread is started, written to,
//! forked and merged, a conflicting merge is refused, and the resulting history is printed. No model is
//! involved yet; every step is labelled with who made it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use hal_store::{Home, MergeOutcome};

use super::Outcome;
use crate::cli::Args;
use crate::output;

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
