//! `hal stuck list`: the requests no help met, as routers recorded them on their threads.

use anyhow::{Result, bail};
use hal_daemon::protocol::{Command, Response};

use super::{Outcome, remote};
use crate::cli::Args;
use crate::output;

/// List every stuck request, newest first.
pub fn list(args: &Args) -> Result<Outcome> {
    let handle = remote::handle(args)?;
    let Response::Stucks { stucks } = handle.command(&Command::Stucks)? else {
        bail!("the daemon answered something else than the stuck requests");
    };
    if args.json {
        output::json(&stucks)?;
        return Ok(Outcome::Done);
    }
    if stucks.is_empty() {
        outln!("no stuck requests");
    }
    for entry in &stucks {
        let place = if entry.thread.is_empty() { entry.branch.clone() } else { format!("thread {}", entry.thread) };
        let Some(stuck) = &entry.stuck else {
            outln!("{}  ({place}): {}", entry.path, entry.problem.as_deref().unwrap_or("unreadable"));
            continue;
        };
        // Text anyone could push is shown on one line each, without control characters.
        let line = |text: &str| remote::first_line(&text.split_whitespace().collect::<Vec<_>>().join(" "), 300);
        outln!("{}  ({place}, {}, {} of {} rounds)", entry.path, stuck.ended.as_str(), stuck.rounds, stuck.of);
        outln!("  asked:   {}", line(&stuck.asked));
        outln!("  missing: {}", line(&stuck.missing));
        if !stuck.tried.is_empty() {
            let tried: Vec<String> = stuck.tried.iter().map(|t| format!("{} ({})", t.help, t.thread)).collect();
            outln!("  tried:   {}", line(&tried.join(", ")));
        }
        if let Some(proposed) = &stuck.proposed {
            outln!(
                "  proposed: help {} on thread {} ({}): merge it to add the help",
                line(&proposed.help),
                line(&proposed.thread),
                line(&proposed.status)
            );
        }
    }
    Ok(Outcome::Done)
}
