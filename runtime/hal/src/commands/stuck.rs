//! `hal stuck list`: the requests no help met, as routers recorded them on their threads.

use anyhow::{Result, bail};
use hal_daemon::protocol::{Command, Response};

use super::{CommandEnd, remote};
use crate::cli::Args;
use crate::output;

/// List every stuck request, newest first.
pub fn list(args: &Args, all: bool) -> Result<CommandEnd> {
    let handle = remote::handle(args)?;
    let Response::Stucks { stucks } = handle.command(&Command::Stucks { all })? else {
        bail!("the daemon answered something else than the stuck requests");
    };
    if args.json {
        output::json(&stucks)?;
        return Ok(CommandEnd::Done);
    }
    if stucks.is_empty() {
        outln!("no stuck requests");
    }
    // Everything shown is text anyone could push: one line each, without control or direction characters.
    let line = |text: &str| remote::first_line(&text.split_whitespace().collect::<Vec<_>>().join(" "), 300);
    for entry in &stucks {
        let place = match entry.thread.is_empty() {
            true => line(&entry.branch),
            false => format!("thread {}", line(&entry.thread)),
        };
        let unverified = if entry.verified { "" } else { ", unverified: no step of HAL's recorded it here" };
        let Some(stuck) = &entry.stuck else {
            let problem = entry.problem.as_deref().unwrap_or("unreadable");
            outln!("{}  ({place}{unverified}): {}", line(&entry.path), line(problem));
            continue;
        };
        outln!(
            "{}  ({place}, {}, {} of {} rounds{unverified})",
            line(&entry.path),
            stuck.ended.as_str(),
            stuck.rounds,
            stuck.of
        );
        outln!("  asked:   {}", line(&stuck.asked));
        outln!("  missing: {}", line(&stuck.missing));
        if !stuck.tried.is_empty() {
            let tried: Vec<String> = stuck.tried.iter().map(|t| format!("{} ({})", t.help, t.thread)).collect();
            outln!("  tried:   {}", line(&tried.join(", ")));
        }
        if let Some(proposed) = &stuck.proposed {
            outln!(
                "  proposed: help {} on thread {}: merge it to add the help",
                line(&proposed.help),
                line(&proposed.thread)
            );
        }
    }
    Ok(CommandEnd::Done)
}
