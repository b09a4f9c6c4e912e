//! Working through a running daemon: the commands that change threads go to its API when one runs, so the
//! daemon stays the one writer of the branches it runs; without a daemon they apply to the repo directly.

use std::io::Write;

use anyhow::{Context, Result};
use hal_daemon::client::{Client, Event};
use hal_daemon::command::{Command, Response};
use hal_store::Home;

/// The daemon of `home`, if one runs.
pub fn daemon(home: &Home) -> Result<Option<Client>> {
    Client::for_repo(home.repo().common_dir()).context("checking for a running daemon")
}

/// A small runtime for one client call.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Apply `command` through the daemon when one runs, else directly to `home`.
pub fn apply(home: &Home, client: Option<&Client>, command: &Command) -> Result<Response> {
    match client {
        Some(client) => Ok(block_on(client.command(command))??),
        None => Ok(hal_daemon::command::apply(home, command)?),
    }
}

/// How a turn the daemon ran ended.
#[derive(Debug, serde::Serialize)]
pub struct TurnEnd {
    /// `DONE`, `PENDING`, `ERROR` or `NOCANDO`.
    pub status: String,
    /// The result, question or reason.
    pub output: String,
    /// The thread.
    pub thread: String,
    /// The model text printed while the turn ran.
    #[serde(skip)]
    pub streamed: String,
}

/// Where the events of a followed turn go.
pub struct Display<'a> {
    /// Called with each new step.
    pub steps: Option<&'a dyn Fn(&hal_store::Step)>,
    /// Stream model text to stdout as it comes.
    pub text: bool,
}

/// One line per step on stderr: what `hal help run` and `hal thread say` show while the daemon works.
pub fn step_to_stderr(step: &hal_store::Step) {
    let line: String = step.text.lines().next().unwrap_or_default().chars().take(160).collect();
    eprintln!("  {}: {line}", step.kind);
}

/// Send `command` (a message from `actor`) to the daemon and follow `thread` until the turn that answers it
/// ends.
pub fn talk(client: &Client, actor: &str, thread: &str, command: &Command, display: &Display<'_>) -> Result<TurnEnd> {
    block_on(async {
        let mut events = client.follow(thread, None, actor).await?;
        let response = client.command(command).await?;
        let (id, ticket) = match &response {
            Response::Said { thread, ticket, .. } => (thread.id.clone(), *ticket),
            Response::Started { thread, .. } => (thread.id.clone(), None),
            _ => (thread.to_owned(), None),
        };
        // The turn that answers this message carries its ticket; a daemon without tickets: the first turn that
        // starts after the message (a turn already running when it came ends first).
        let answers = |tickets: &[u64], started: bool| match ticket {
            Some(ticket) => tickets.contains(&ticket),
            None => started,
        };
        let mut started = false;
        let mut streamed = String::new();
        while let Some(event) = events.next().await? {
            match event {
                Event::TurnStarted { tickets, .. } => started |= answers(&tickets, true),
                Event::Text { delta } if display.text => {
                    print!("{delta}");
                    let _ = std::io::stdout().flush();
                    streamed.push_str(&delta);
                }
                Event::Step { step } => {
                    if let Some(show) = display.steps {
                        show(&step);
                    }
                }
                Event::TurnEnded { status, output, tickets } if answers(&tickets, started) => {
                    if !streamed.is_empty() {
                        println!();
                    }
                    return Ok(TurnEnd { status, output, thread: id, streamed });
                }
                _ => {}
            }
        }
        anyhow::bail!("the daemon stopped before the turn ended (it resumes the turn when it starts again)")
    })?
}

/// The exit code for a turn's status, as `hal help run` uses them.
pub fn exit_code(status: &str) -> u8 {
    hal_runner::Status::parse(status).map_or(super::run::EXIT_FAILED, super::run::exit_code)
}
