//! `hal chat`: talk to HAL in the backchat, or to a thread, through the repo's handle: the daemon takes the turn
//! when one runs, this process otherwise, with the same code.

use std::io::Write;

use anyhow::{Context, Result};
use hal_daemon::protocol::{Command, Status};
use hal_daemon::{Handle, Place};
use hal_store::{BACKCHAT, Home};

use super::{CommandEnd, remote};
use crate::cli::Args;

/// How one exchange ended.
struct Answer {
    status: Status,
    output: String,
    streamed: String,
}

/// `hal chat [-m <text>] [--thread <id>]`
pub fn run(args: &Args, message: Option<&str>, thread: Option<&str>, key: Option<&str>) -> Result<CommandEnd> {
    let home = Home::open(&args.directory)?;
    let handle = remote::handle(args)?;
    let target = thread.unwrap_or(BACKCHAT).to_owned();
    if let Some(text) = message {
        let answer = exchange(args, &home, handle.as_ref(), &target, text, key, false)?;
        print_answer(args, &answer)?;
        return Ok(CommandEnd::Exit(remote::exit_code(answer.status)));
    }
    if key.is_some() {
        anyhow::bail!("--idempotency-key goes with one message (-m): an interactive chat sends many");
    }
    interactive(args, &home, handle.as_ref(), &target)
}

fn print_answer(args: &Args, answer: &Answer) -> Result<()> {
    if args.json {
        return crate::output::json(&serde_json::json!({"status": answer.status, "output": answer.output}));
    }
    // Text that streamed in is already on screen; a result given through `finish` is not.
    if answer.streamed.trim() != answer.output.trim() {
        outln!("{}", answer.output);
    }
    if answer.status != Status::Done {
        outln!("[{}]", answer.status);
    }
    Ok(())
}

fn interactive(args: &Args, home: &Home, handle: &dyn Handle, target: &str) -> Result<CommandEnd> {
    let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
    let history = hal_daemon::hal_dir(home.repo().common_dir()).join("chat_history");
    let _ = editor.load_history(&history);
    let whom = if target == BACKCHAT { "HAL in your backchat".to_owned() } else { format!("thread {target}") };
    let how = match handle.place() {
        Place::Daemon(_) => "through the daemon",
        Place::InProcess => "in this process (no daemon runs)",
    };
    outln!("Talking to {whom}, {how}. Ctrl-D or /exit ends.");
    loop {
        let line = match editor.readline("you> ") {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted | rustyline::error::ReadlineError::Eof) => break,
            Err(error) => return Err(error).context("reading a line"),
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text == "/exit" || text == "/quit" {
            break;
        }
        let _ = editor.add_history_entry(text);
        out!("hal> ");
        let _ = std::io::stdout().flush();
        match exchange(args, home, handle, target, text, None, true) {
            Ok(answer) => print_answer(args, &answer)?,
            Err(error) => outln!("error: {error:#}"),
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&history);
    Ok(CommandEnd::Done)
}

/// Send `text` to `target` and wait for the turn that answers it.
fn exchange(
    args: &Args,
    home: &Home,
    handle: &dyn Handle,
    target: &str,
    text: &str,
    idempotency_key: Option<&str>,
    after_prompt: bool,
) -> Result<Answer> {
    let actor = home.resolve_actor(None)?;
    let say = Command::Say {
        actor: Some(actor.clone()),
        thread: target.to_owned(),
        text: text.to_owned(),
        help: None,
        agent: None,
        idempotency_key: idempotency_key.map(str::to_owned),
        signature: remote::sign_message(home, &actor, target, text),
        relayed: None,
    };
    // Every step with `-v`; else one line per tool call, unless the output is JSON for a program.
    let steps: Option<&remote::StepLine> = match (args.verbose > 0, args.json) {
        (true, _) => Some(&remote::step_line),
        (false, false) => Some(&remote::tool_line),
        (false, true) => None,
    };
    let display = remote::Display { steps, text: !args.json, after_prompt };
    let (end, streamed) = remote::talk(handle, &actor, &say, &display)?;
    Ok(Answer { status: end.status, output: end.output, streamed })
}
