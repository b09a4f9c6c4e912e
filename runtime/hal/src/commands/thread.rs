//! `hal thread …`

use std::io::Read;

use anyhow::{Context, Result};
use hal_store::{Home, MergeOutcome};

use super::Outcome;
use crate::cli::{Args, ThreadCommand};
use crate::output;

/// Run one thread command.
pub fn run(args: &Args, command: &ThreadCommand) -> Result<Outcome> {
    let home = Home::open(&args.directory)?;
    match command {
        ThreadCommand::New { from, title } => {
            let actor = home.resolve_actor(None)?;
            let thread = home.new_thread(&actor, from.as_deref(), title.as_deref())?;
            print_thread(args, &thread)?;
        }
        ThreadCommand::Fork { id, at } => {
            let actor = home.resolve_actor(None)?;
            let thread = home.fork_thread(&actor, id, at.as_deref())?;
            print_thread(args, &thread)?;
        }
        ThreadCommand::List => list(args, &home)?,
        ThreadCommand::Log { id, count } => log(args, &home, id, *count)?,
        ThreadCommand::Say { id, text } => {
            let actor = home.resolve_actor(None)?;
            let text = if text.len() == 1 && text[0] == "-" { read_stdin_text()? } else { text.join(" ") };
            if !text.trim().is_empty()
                && let Some(outcome) = super::run::resume_if_pending(args, &home, id, &text)?
            {
                return Ok(outcome);
            }
            let appended = home.say(&actor, id, &text)?;
            print_appended(args, &appended)?;
        }
        ThreadCommand::Write { id, path, message } => {
            let actor = home.resolve_actor(None)?;
            let mut content = Vec::new();
            std::io::stdin().read_to_end(&mut content).context("reading the file content from stdin")?;
            let appended = home.write_file(&actor, id, path, &content, message.as_deref())?;
            print_appended(args, &appended)?;
        }
        ThreadCommand::Merge { id } => return merge(args, &home, id),
        ThreadCommand::Replay { id, from } => {
            drop(home);
            return super::run::thread_replay(args, id, from.as_deref());
        }
    }
    Ok(Outcome::Done)
}

pub(super) fn read_stdin_text() -> Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("reading the message from stdin (it must be UTF-8)")?;
    Ok(text)
}

fn print_thread(args: &Args, thread: &hal_store::ThreadRef) -> Result<()> {
    if args.json {
        output::json(thread)
    } else {
        println!("{}", thread.id);
        Ok(())
    }
}

fn print_appended(args: &Args, appended: &hal_store::Appended) -> Result<()> {
    if args.json {
        output::json(appended)
    } else {
        println!("{} step {} {}", appended.thread, appended.step, appended.commit);
        Ok(())
    }
}

fn list(args: &Args, home: &Home) -> Result<()> {
    let threads = home.list_threads()?;
    if args.json {
        return output::json(&threads);
    }
    if threads.is_empty() {
        eprintln!("no threads yet: start one with `hal thread new`");
        return Ok(());
    }
    let id_width = threads.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2);
    println!("{:<id_width$}  {:<7}  {:>5}  {:<16}  {:<10}  TITLE", "ID", "STATUS", "STEPS", "LAST ACTIVITY", "ACTOR");
    for thread in &threads {
        println!(
            "{:<id_width$}  {:<7}  {:>5}  {:<16}  {:<10}  {}",
            thread.id,
            thread.status.as_str(),
            thread.steps,
            output::local_time(thread.last_activity, false),
            thread.actor,
            thread.title
        );
    }
    Ok(())
}

fn log(args: &Args, home: &Home, id: &str, count: Option<usize>) -> Result<()> {
    let steps = home.thread_log(id, count)?;
    if args.json {
        return output::json(&steps);
    }
    for step in &steps {
        let number = step.step.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let path = step.path.as_deref().map(|p| format!(" · {p}")).unwrap_or_default();
        println!(
            "#{number} {} · {} · {} · {}{path}",
            step.kind,
            step.actor,
            output::local_time(step.time, true),
            output::short(&step.commit),
        );
        for line in step.text.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

fn merge(args: &Args, home: &Home, id: &str) -> Result<Outcome> {
    let actor = home.resolve_actor(None)?;
    let thread = home.resolve_thread(id)?;
    let outcome = home.merge_thread(&actor, &thread.branch)?;
    if args.json {
        output::json(&outcome)?;
    } else {
        match &outcome {
            MergeOutcome::FastForward { commit } => {
                println!("merged {} into main (fast-forward to {})", thread.branch, output::short(commit));
            }
            MergeOutcome::Merged { commit } => {
                println!("merged {} into main (merge commit {})", thread.branch, output::short(commit));
            }
            MergeOutcome::AlreadyMerged => println!("{} is already merged into main", thread.branch),
            MergeOutcome::Conflict { paths } => {
                eprintln!(
                    "cannot merge {}: it conflicts with main in these paths (nothing was changed):",
                    thread.branch
                );
                for path in paths {
                    eprintln!("  {path}");
                }
            }
        }
    }
    Ok(match outcome {
        MergeOutcome::Conflict { .. } => Outcome::Conflict,
        _ => Outcome::Done,
    })
}
