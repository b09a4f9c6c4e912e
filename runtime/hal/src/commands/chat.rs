//! `hal chat`: talk to HAL in the backchat, or to a thread. Through the daemon when one runs; otherwise the
//! turn runs in this process, the same way the daemon runs it.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use hal_daemon::client::Client;
use hal_daemon::command::{Command, Response};
use hal_runner::Event;
use hal_store::{BACKCHAT, Home};

use super::run::Session;
use super::{Outcome, remote};
use crate::cli::Args;

/// How one exchange ended.
struct Answer {
    status: String,
    output: String,
    streamed: String,
}

/// `hal chat [-m <text>] [--thread <id>]`
pub fn run(args: &Args, message: Option<&str>, thread: Option<&str>) -> Result<Outcome> {
    let home = Home::open(&args.directory)?;
    let client = remote::daemon(&home)?;
    let target = thread.unwrap_or(BACKCHAT).to_owned();
    if let Some(text) = message {
        let answer = exchange(args, &home, client.as_ref(), &target, text)?;
        print_answer(args, &answer)?;
        return Ok(Outcome::Exit(remote::exit_code(&answer.status)));
    }
    interactive(args, &home, client.as_ref(), &target)
}

fn print_answer(args: &Args, answer: &Answer) -> Result<()> {
    if args.json {
        return crate::output::json(&serde_json::json!({"status": answer.status, "output": answer.output}));
    }
    // Text that streamed in is already on screen; a result given through `finish` is not.
    if answer.streamed.trim() != answer.output.trim() {
        println!("{}", answer.output);
    }
    if answer.status != "DONE" {
        println!("[{}]", answer.status);
    }
    Ok(())
}

fn interactive(args: &Args, home: &Home, client: Option<&Client>, target: &str) -> Result<Outcome> {
    let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
    let history = hal_daemon::hal_dir(home.repo().common_dir()).join("chat_history");
    let _ = editor.load_history(&history);
    let whom = if target == BACKCHAT { "HAL in your backchat".to_owned() } else { format!("thread {target}") };
    let how = if client.is_some() { "through the daemon" } else { "in this process (no daemon runs)" };
    println!("Talking to {whom}, {how}. Ctrl-D or /exit ends.");
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
        print!("hal> ");
        let _ = std::io::stdout().flush();
        match exchange(args, home, client, target, text) {
            Ok(answer) => print_answer(args, &answer)?,
            Err(error) => println!("error: {error:#}"),
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&history);
    Ok(Outcome::Done)
}

/// Send `text` to `target` and wait for the turn that answers it.
fn exchange(args: &Args, home: &Home, client: Option<&Client>, target: &str, text: &str) -> Result<Answer> {
    let actor = home.resolve_actor(None)?;
    let say = Command::Say {
        actor: Some(actor.clone()),
        thread: target.to_owned(),
        text: text.to_owned(),
        help: None,
        agent: None,
        relayed: None,
    };
    if let Some(client) = client {
        let display = remote::Display {
            steps: (args.verbose > 0).then_some(&remote::step_to_stderr as &dyn Fn(&hal_store::Step)),
            text: !args.json,
        };
        let end = remote::talk(client, &actor, target, &say, &display)?;
        return Ok(Answer { status: end.status, output: end.output, streamed: end.streamed });
    }
    // No daemon: check that the turn can run before writing the message, then run it here.
    let defaults = || (hal_daemon::DEFAULT_HELP.to_owned(), hal_runner::catalog::DEFAULT_AGENT.to_owned());
    // A backchat not made yet is made with the message, once the turn is known to be able to run.
    let existing = match target {
        BACKCHAT => home.resolve_thread(&format!("threads/{actor}/{BACKCHAT}")).ok(),
        _ => Some(home.resolve_thread(target)?),
    };
    let (help, agent) = match &existing {
        Some(thread) => hal_daemon::next_turn(home, thread)?,
        None => defaults(),
    };
    let mut session = Session::open(args, &agent)?;
    let models = session.live_models()?;
    session.runner.check(models.as_ref(), &help)?;
    let streamed = Arc::new(std::sync::Mutex::new(String::new()));
    if !args.json {
        let sink = streamed.clone();
        session.runner = session.runner.clone().with_observer(Arc::new(move |event: &Event<'_>| {
            if let Event::Text { delta, .. } = event {
                print!("{delta}");
                let _ = std::io::stdout().flush();
                sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_str(delta);
            }
        }));
    }
    let Response::Said { thread, .. } = hal_daemon::command::apply(home, &say)? else {
        anyhow::bail!("the message was not added");
    };
    let outcome = remote::block_on(session.runner.resume(models, &thread, &session.actor, &help))??;
    let streamed = streamed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    if !streamed.is_empty() {
        println!();
    }
    Ok(Answer { status: outcome.status.as_str().to_owned(), output: outcome.output, streamed })
}
