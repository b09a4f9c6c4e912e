//! `hal thread …`

use std::io::Read;

use anyhow::{Context, Result};
use hal_daemon::protocol::{Command, FileContent, Response};
use hal_daemon::{Handle, Place};
use hal_store::{Home, MergeOutcome, ThreadStatus};

use super::{CommandEnd, remote};
use crate::cli::{Args, ThreadCommand};
use crate::output;

/// Run one thread command.
pub fn run(args: &Args, command: &ThreadCommand) -> Result<CommandEnd> {
    let home = Home::open(&args.directory)?;
    let handle = remote::handle(args)?;
    match command {
        ThreadCommand::New { from, title } => {
            let command = Command::NewThread {
                purpose: None,
                actor: Some(home.resolve_actor(None)?),
                from: from.clone(),
                title: title.clone(),
                help: None,
                agent: None,
                input: None,
                idempotency_key: None,
                started_by_run: None,
            };
            if let Response::Started { thread, .. } = handle.command(&command)? {
                print_thread(args, &thread)?;
            }
        }
        ThreadCommand::Fork { id, at } => {
            let fork = Command::Fork { actor: Some(home.resolve_actor(None)?), thread: id.clone(), at: at.clone() };
            if let Response::Started { thread, .. } = handle.command(&fork)? {
                print_thread(args, &thread)?;
            }
        }
        ThreadCommand::List { all } => {
            if let Response::Threads { threads } = handle.command(&Command::ListThreads)? {
                let (shown, hidden): (Vec<_>, Vec<_>) = threads.into_iter().partition(|t| *all || t.purpose.is_none());
                list(args, &shown)?;
                if !hidden.is_empty() && !args.json {
                    eprintln!("({} thread(s) of help tests and replays not shown: --all shows them)", hidden.len());
                }
            }
        }
        ThreadCommand::Verify { id } => return super::verify::run(args, Some(id)),
        ThreadCommand::Log { id, count } => {
            if let Response::Steps { steps } = handle.command(&Command::Log { thread: id.clone(), count: *count })? {
                log(args, &steps)?;
            }
        }
        ThreadCommand::Say { id, text, idempotency_key, agent: switch } => {
            let text = if text.len() == 1 && text[0] == "-" { read_stdin_text()? } else { text.join(" ") };
            let actor = home.resolve_actor(None)?;
            // A run waiting on PENDING takes the message as its answer, with the help and agent it runs.
            let waiting = waiting_run(&home, id)?;
            let (help, agent) = waiting.clone().unzip();
            let say = Command::Say {
                actor: Some(actor.clone()),
                thread: id.clone(),
                text: text.clone(),
                help,
                agent: switch.clone().or(agent.flatten()),
                idempotency_key: idempotency_key.clone(),
                signature: remote::sign_message(&home, &actor, id, &text),
                relayed: None,
            };
            // A daemon answers every message; without one, this process takes the turn of a waiting run.
            if matches!(handle.place(), Place::Daemon(_)) || waiting.is_some() {
                let display = remote::Display {
                    steps: (!args.json).then_some(&remote::step_line as &remote::StepLine),
                    text: false,
                    after_prompt: false,
                };
                let (end, _) = remote::talk(handle.as_ref(), &actor, &say, &display)?;
                super::run::print_end(args, handle.as_ref(), &end)?;
                return Ok(CommandEnd::Exit(remote::exit_code(end.status)));
            }
            if let Response::Said { message: Some(appended), .. } = handle.command(&say)? {
                print_appended(args, &appended)?;
            }
        }
        ThreadCommand::Write { id, path, message } => {
            let mut content = Vec::new();
            std::io::stdin().read_to_end(&mut content).context("reading the file content from stdin")?;
            let write = Command::Write {
                actor: Some(home.resolve_actor(None)?),
                thread: id.clone(),
                path: path.clone(),
                content: FileContent::of(content),
                message: message.clone(),
                keep_status: false,
            };
            if let Response::Appended { step } = handle.command(&write)? {
                print_appended(args, &step)?;
            }
        }
        ThreadCommand::Merge { id } => return merge(args, &home, handle.as_ref(), id),
        ThreadCommand::Unfreeze { id } => {
            let actor = home.resolve_actor(None)?;
            let signature = remote::sign_unfreeze(&home, &actor, id);
            let unfreeze = Command::Unfreeze { actor: Some(actor), thread: id.clone(), signature };
            if let Response::Appended { step } = handle.command(&unfreeze)? {
                print_appended(args, &step)?;
            }
        }
        ThreadCommand::Replay { id, from, idempotency_key } => {
            drop(home);
            return super::run::thread_replay(args, id, from.as_deref(), idempotency_key.as_deref());
        }
    }
    Ok(CommandEnd::Done)
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
        outln!("{}", thread.id);
        Ok(())
    }
}

fn print_appended(args: &Args, appended: &hal_store::Appended) -> Result<()> {
    if args.json {
        output::json(appended)
    } else {
        outln!("{} step {} {}", appended.thread, appended.step, appended.commit);
        Ok(())
    }
}

fn list(args: &Args, threads: &[hal_store::ThreadSummary]) -> Result<()> {
    if args.json {
        return output::json(&threads);
    }
    if threads.is_empty() {
        eprintln!("no threads to show: start one with `hal thread new`");
        return Ok(());
    }
    // Every column as wide as its longest value, so the rows line up whatever the names' lengths.
    let width = |header: &str, values: &mut dyn Iterator<Item = usize>| values.max().unwrap_or(0).max(header.len());
    let id_width = width("ID", &mut threads.iter().map(|t| t.id.len()));
    let status_width = width("STATUS", &mut threads.iter().map(|t| t.status.as_str().len()));
    let actor_width = width("ACTOR", &mut threads.iter().map(|t| t.actor.chars().count()));
    outln!(
        "{:<id_width$}  {:<status_width$}  {:>5}  {:<16}  {:<actor_width$}  TITLE",
        "ID",
        "STATUS",
        "STEPS",
        "LAST ACTIVITY",
        "ACTOR"
    );
    for thread in threads {
        outln!(
            "{:<id_width$}  {:<status_width$}  {:>5}  {:<16}  {:<actor_width$}  {}",
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

fn log(args: &Args, steps: &[hal_trust::Checked]) -> Result<()> {
    if args.json {
        return output::json(&steps);
    }
    for checked in steps {
        let step = &checked.step;
        let number = step.number.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let path = step.path.as_deref().map(|p| format!(" · {p}")).unwrap_or_default();
        outln!(
            "#{number} {} · {} · {} · {}{path} · {}",
            step.kind,
            step.actor,
            output::local_time(step.time, true),
            output::short(&step.commit),
            checked.verdict.label(),
        );
        for line in step.text.lines() {
            outln!("    {line}");
        }
    }
    Ok(())
}

/// The help and agent of the run at the tip of thread `id` when it waits on `PENDING` for a person's answer.
fn waiting_run(home: &Home, id: &str) -> Result<Option<(String, Option<String>)>> {
    let thread = home.resolve_thread(id)?;
    let Some(tip) = home.steps_back(&thread).next().transpose()? else { return Ok(None) };
    if tip.status != Some(ThreadStatus::Pending) {
        return Ok(None);
    }
    let help = tip.fact(hal_runner::record::fact::HELP).map(str::to_owned);
    Ok(help.map(|help| (help, tip.fact(hal_runner::record::fact::AGENT).map(str::to_owned))))
}

fn merge(args: &Args, home: &Home, handle: &dyn Handle, id: &str) -> Result<CommandEnd> {
    let actor = home.resolve_actor(None)?;
    let signature = remote::sign_merge(home, &actor, id);
    let command = Command::Merge { actor: Some(actor), thread: id.to_owned(), signature };
    let Response::Merged { thread, outcome } = handle.command(&command)? else {
        anyhow::bail!("the daemon answered something other than a merge");
    };
    if args.json {
        output::json(&outcome)?;
    } else {
        match &outcome {
            MergeOutcome::FastForward { commit } => {
                outln!("merged {} into main (fast-forward to {})", thread.branch, output::short(commit));
            }
            MergeOutcome::Merged { commit } => {
                outln!("merged {} into main (merge commit {})", thread.branch, output::short(commit));
            }
            MergeOutcome::AlreadyMerged => outln!("{} is already merged into main", thread.branch),
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
            CommandEnd::Conflict
        }
        _ => CommandEnd::Done,
    })
}
