//! Running helps from the command line: `hal help run`, `hal help test`, `hal thread replay`, each through the
//! repo's handle.

use anyhow::Result;
use hal_daemon::protocol::{Command, ReplayReport, Response, Status, Trace, TurnEnd};
use hal_store::Home;

use super::CommandEnd;
use crate::cli::Args;
use crate::output;

/// Exit code of a run that ended `PENDING`.
pub const EXIT_PENDING: u8 = 3;
/// Exit code of a run that ended `NOCANDO`.
pub const EXIT_NOCANDO: u8 = 4;
/// Exit code of a run that ended `ERROR`, a failing help test, or a replay that differs.
pub(super) const EXIT_FAILED: u8 = 1;

/// The exit code for a run's status.
pub(super) fn exit_code(status: Status) -> u8 {
    match status {
        Status::Done => 0,
        Status::Pending => EXIT_PENDING,
        Status::Nocando => EXIT_NOCANDO,
        Status::Error => EXIT_FAILED,
    }
}

/// The first line of `text`, shortened, as a thread title.
fn title_of(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(59).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// `hal help run <name> <text> [--thread <id>]`: the repo's handle takes the turn (the daemon when one runs,
/// this process otherwise) and this command shows its steps until it ends.
pub fn help_run(
    args: &Args,
    agent: &str,
    name: &str,
    text: &str,
    thread: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<CommandEnd> {
    if text.trim().is_empty() {
        anyhow::bail!("the request is empty");
    }
    let home = Home::open(&args.directory)?;
    let actor = home.resolve_actor(None)?;
    let handle = super::remote::handle(args)?;
    let (help, agent) = (Some(name.to_owned()), Some(agent.to_owned()));
    let command = match thread {
        Some(id) => Command::Say {
            signature: None,
            actor: Some(actor.clone()),
            thread: home.resolve_thread(id)?.branch,
            text: text.to_owned(),
            help,
            agent,
            idempotency_key: idempotency_key.map(str::to_owned),
            relayed: None,
        },
        None => Command::NewThread {
            purpose: None,
            actor: Some(actor.clone()),
            from: None,
            title: Some(format!("{name}: {}", title_of(text))),
            help,
            agent,
            input: Some(text.to_owned()),
            idempotency_key: idempotency_key.map(str::to_owned),
            started_by_run: None,
        },
    };
    let display = super::remote::Display {
        steps: (!args.json).then_some(&super::remote::step_line as &super::remote::StepLine),
        text: false,
        after_prompt: false,
    };
    let (end, _) = super::remote::talk(handle.as_ref(), &actor, &command, &display)?;
    print_end(args, handle.as_ref(), &end)?;
    Ok(CommandEnd::Exit(exit_code(end.status)))
}

/// What `hal help run` and `hal thread say` print when a turn ends.
pub(super) fn print_end(args: &Args, handle: &dyn hal_daemon::Handle, end: &TurnEnd) -> Result<()> {
    if args.json {
        return output::json(end);
    }
    let by = match handle.place() {
        hal_daemon::Place::Daemon(_) => ", run by the daemon",
        hal_daemon::Place::InProcess => "",
    };
    outln!(
        "{}  (thread {}, {} model turn{}, {} tokens{by})",
        end.status,
        end.thread,
        end.turns,
        if end.turns == 1 { "" } else { "s" },
        end.usage.input + end.usage.output
    );
    outln!("{}", end.output);
    if end.status == Status::Pending {
        // The exact command that answers it (`thread say` resumes the run waiting there; an owner's approval
        // resumes one waiting on a call).
        let short: String = end.thread.chars().take(12).collect();
        match &end.waiting {
            Some(hal_runner::Waiting::Approval { call, .. }) => {
                eprintln!(
                    "an owner answers with: hal approve {short} {call}  or  hal deny {short} {call} --reason \"…\""
                )
            }
            Some(hal_runner::Waiting::Budget { unit, .. }) => {
                eprintln!(
                    "an owner answers with: hal approve {short} --amount <{unit}>  or  hal deny {short} --reason \"…\""
                )
            }
            Some(hal_runner::Waiting::RateLimit { .. }) | None => {
                eprintln!("answer with: hal thread say {short} \"<your answer>\"")
            }
        }
    }
    Ok(())
}

/// `hal thread replay <id> [--from <ref>]`: the repo's handle replays it (the daemon when one runs).
pub fn thread_replay(args: &Args, id: &str, from: Option<&str>, idempotency_key: Option<&str>) -> Result<CommandEnd> {
    let home = Home::open(&args.directory)?;
    let handle = super::remote::handle(args)?;
    let actor = Some(home.resolve_actor(None)?);
    let (thread, from, idempotency_key) = (id.to_owned(), from.map(str::to_owned), idempotency_key.map(str::to_owned));
    let command = Command::Replay { actor, thread, from, idempotency_key };
    let report = match handle.command(&command)? {
        Response::Replayed { report, .. } => report,
        other => anyhow::bail!("the replay command was answered with {other:?}"),
    };
    if args.json {
        output::json(&report)?;
    } else {
        print_report(&report)?;
    }
    Ok(if report.matches() { CommandEnd::Done } else { CommandEnd::Exit(EXIT_FAILED) })
}

fn print_report(report: &ReplayReport) -> Result<()> {
    for note in &report.notes {
        outln!("note: {note}");
    }
    match &report.divergence {
        None => outln!(
            "replay {} matches {}: {} run{}, {} steps compared",
            report.replay,
            report.original,
            report.runs,
            if report.runs == 1 { "" } else { "s" },
            report.compared
        ),
        Some(divergence) => {
            let step = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
            outln!(
                "replay {} differs from {} at original step {} (replay step {}):",
                report.replay,
                report.original,
                step(divergence.original_step),
                step(divergence.replay_step)
            );
            outln!("  original: {}", describe(divergence.expected.as_ref()));
            outln!("  replay:   {}", describe(divergence.got.as_ref()));
        }
    }
    Ok(())
}

fn describe(trace: Option<&Trace>) -> String {
    match trace {
        None => "(nothing: the run ended before)".to_owned(),
        Some(Trace::Tool { name, arguments, result, outcome }) => {
            format!("{name} {arguments} → {outcome}: {}", result.lines().next().unwrap_or_default())
        }
        Some(Trace::Finish { status, output }) => {
            format!("finished {status}: {}", output.lines().next().unwrap_or_default())
        }
    }
}
