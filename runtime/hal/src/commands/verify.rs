//! `hal thread verify`, `hal verify --all` and `hal actor allowed-signers`: who wrote each step, by its signature.

use anyhow::{Result, bail};
use hal_daemon::protocol::{Command, Response};
use hal_store::Home;

use super::{CommandEnd, remote};
use crate::cli::Args;
use crate::output;

/// Exit code when a step is forged, signed by someone else or by a revoked key, or its signature does not match.
pub const EXIT_WRONG: u8 = 1;

/// Check thread `id`, or every thread.
pub fn run(args: &Args, id: Option<&str>) -> Result<CommandEnd> {
    let handle = remote::handle(args)?;
    let Response::Verified { threads, problems } =
        handle.command(&Command::Verify { thread: id.map(str::to_owned) })?
    else {
        bail!("the daemon answered something else than a verification");
    };
    let wrong = threads.iter().any(|t| t.wrong > 0);
    if args.json {
        output::json(&serde_json::json!({ "threads": threads, "problems": problems }))?;
        return Ok(if wrong { CommandEnd::Exit(EXIT_WRONG) } else { CommandEnd::Done });
    }
    for problem in &problems {
        eprintln!("warning: {} at {}: {}", problem.place, output::short(&problem.commit), problem.text);
    }
    for thread in &threads {
        let verdict = if thread.wrong > 0 { "WRONG" } else { "ok" };
        outln!(
            "{} {verdict}: {} steps, {} signed by their actor, {} signed by hal for a person, {} unsigned, {} wrong",
            thread.thread,
            thread.steps,
            thread.signed,
            thread.by_hal,
            thread.unsigned,
            thread.wrong
        );
        // One thread asked about: every finding; all threads: the wrong ones.
        for checked in thread.findings.iter().filter(|c| id.is_some() || c.verdict.is_wrong()) {
            let step = &checked.step;
            let number = step.number.map_or_else(|| "-".to_owned(), |n| n.to_string());
            outln!(
                "  #{number} {} {} · {}: {}",
                output::short(&step.commit),
                step.kind,
                step.actor,
                checked.verdict.label()
            );
        }
    }
    Ok(if wrong { CommandEnd::Exit(EXIT_WRONG) } else { CommandEnd::Done })
}

/// Print (and with `write`, store) the keys that count as an allowed-signers file.
pub fn allowed_signers(args: &Args, write: bool) -> Result<CommandEnd> {
    let handle = remote::handle(args)?;
    let Response::AllowedSigners { text, problems } = handle.command(&Command::AllowedSigners)? else {
        bail!("the daemon answered something else than the allowed signers");
    };
    for problem in &problems {
        eprintln!("warning: {} at {}: {}", problem.place, output::short(&problem.commit), problem.text);
    }
    if write {
        let path = Home::open(&args.directory)?.write_allowed_signers(&text)?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        output::json(&serde_json::json!({ "allowed_signers": text, "problems": problems }))?;
    } else {
        output::bytes(text.as_bytes())?;
    }
    Ok(CommandEnd::Done)
}
