//! `hal thread …`

use std::io::Read;

use anyhow::{Context, Result};
use hal_daemon::command::{Command, Response};
use hal_store::{Home, MergeOutcome};

use super::{Outcome, remote};
use crate::cli::{Args, ThreadCommand};
use crate::output;

/// Run one thread command.
pub fn run(args: &Args, command: &ThreadCommand) -> Result<Outcome> {
    let home = Home::open(&args.directory)?;
    let client = remote::daemon(&home)?;
    match command {
        ThreadCommand::New { from, title } => {
            let command = Command::NewThread {
                actor: Some(home.resolve_actor(None)?),
                from: from.clone(),
                title: title.clone(),
                help: None,
                agent: None,
                input: None,
                started_by_run: None,
            };
            if let Response::Started { thread, .. } = remote::apply(&home, client.as_ref(), &command)? {
                print_thread(args, &thread)?;
            }
        }
        ThreadCommand::Fork { id, at } => {
            let actor = home.resolve_actor(None)?;
            let thread = home.fork_thread(&actor, id, at.as_deref())?;
            print_thread(args, &thread)?;
        }
        ThreadCommand::List => {
            if let Response::Threads { threads } = remote::apply(&home, client.as_ref(), &Command::ListThreads)? {
                list(args, &threads)?;
            }
        }
        ThreadCommand::Log { id, count } => log(args, &home, id, *count)?,
        ThreadCommand::Say { id, text } => {
            let text = if text.len() == 1 && text[0] == "-" { read_stdin_text()? } else { text.join(" ") };
            let actor = home.resolve_actor(None)?;
            let say = Command::Say {
                actor: Some(actor.clone()),
                thread: id.clone(),
                text: text.clone(),
                help: None,
                agent: None,
                relayed: None,
            };
            if let Some(client) = &client {
                if text.trim().is_empty() {
                    anyhow::bail!("the message is empty");
                }
                // The daemon answers every message with the thread's next turn: follow it to its end.
                let thread = home.resolve_thread(id)?.branch;
                let display = remote::Display {
                    steps: (!args.json).then_some(&remote::step_to_stderr as &dyn Fn(&hal_store::Step)),
                    text: false,
                };
                let end = remote::talk(client, &actor, &thread, &say, &display)?;
                if args.json {
                    output::json(&end)?;
                } else {
                    println!("{}  (thread {}, answered by the daemon)", end.status, end.thread);
                    println!("{}", end.output);
                }
                return Ok(Outcome::Exit(remote::exit_code(&end.status)));
            }
            if !text.trim().is_empty()
                && let Some(outcome) = super::run::resume_if_pending(args, &home, id, &text)?
            {
                return Ok(outcome);
            }
            if let Response::Said { message: Some(appended), .. } = remote::apply(&home, None, &say)? {
                print_appended(args, &appended)?;
            }
        }
        ThreadCommand::Write { id, path, message } => {
            let actor = home.resolve_actor(None)?;
            let mut content = Vec::new();
            std::io::stdin().read_to_end(&mut content).context("reading the file content from stdin")?;
            let appended = home.write_file(&actor, id, path, &content, message.as_deref())?;
            print_appended(args, &appended)?;
        }
        ThreadCommand::Merge { id } => return merge(args, &home, client.as_ref(), id),
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

fn list(args: &Args, threads: &[hal_store::ThreadSummary]) -> Result<()> {
    if args.json {
        return output::json(&threads);
    }
    if threads.is_empty() {
        eprintln!("no threads yet: start one with `hal thread new`");
        return Ok(());
    }
    let id_width = threads.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2);
    println!("{:<id_width$}  {:<7}  {:>5}  {:<16}  {:<10}  TITLE", "ID", "STATUS", "STEPS", "LAST ACTIVITY", "ACTOR");
    for thread in threads {
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

fn merge(args: &Args, home: &Home, client: Option<&hal_daemon::client::Client>, id: &str) -> Result<Outcome> {
    let command = Command::Merge { actor: Some(home.resolve_actor(None)?), thread: id.to_owned() };
    let Response::Merged { thread, outcome } = remote::apply(home, client, &command)? else {
        anyhow::bail!("the daemon answered something other than a merge");
    };
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
            MergeOutcome::Immutable { paths } => {
                eprintln!(
                    "cannot merge {}: it changes plugin versions that are on main, and a version never changes \
                     (put the change in a new directory v<N+1>); nothing was changed:",
                    thread.branch
                );
                for path in paths {
                    eprintln!("  {path}");
                }
            }
            MergeOutcome::UnsafePaths { paths } => {
                eprintln!(
                    "cannot merge {}: its commits hold names git refuses or HAL never writes (git fsck, a \
                     checkout on macOS or Windows, or a server that checks pushes would refuse them); nothing was \
                     changed:",
                    thread.branch
                );
                for path in paths {
                    eprintln!("  {path}");
                }
            }
        }
    }
    Ok(match outcome {
        MergeOutcome::Conflict { .. } | MergeOutcome::Immutable { .. } | MergeOutcome::UnsafePaths { .. } => {
            Outcome::Conflict
        }
        _ => Outcome::Done,
    })
}
