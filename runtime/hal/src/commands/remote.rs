//! The commands that change threads or take turns work through one [`Handle`]: the daemon's when one runs (it is
//! the one writer of the branches it runs), else this process's, which takes the turns a command waits for
//! itself, with the daemon's code.

use std::io::Write;

use anyhow::{Context, Result};
use hal_daemon::Handle;
use hal_daemon::protocol::{Command, Status, ThreadEvent, TurnEnd};

use crate::cli::Args;

/// The handle for the home repo `args` names.
pub fn handle(args: &Args) -> Result<Box<dyn Handle>> {
    hal_daemon::handle::open(&args.directory).context("opening the home repo")
}

/// What `main` offers, as `handle` has it: `command` is [`Command::Catalogue`], or [`Command::BuildIsolates`]
/// (which builds first and answers the same).
pub fn catalogue(handle: &dyn Handle, command: &Command) -> Result<hal_daemon::protocol::Catalogue> {
    match handle.command(command)? {
        hal_daemon::protocol::Response::Catalogue { catalogue } => Ok(catalogue),
        other => anyhow::bail!("the catalogue command was answered with {other:?}"),
    }
}

/// The daemon of the home repo at `home`, if one runs.
pub fn daemon(home: &hal_store::Home) -> Result<Option<hal_daemon::client::Client>> {
    hal_daemon::client::Client::for_repo(home.repo().common_dir()).context("checking for a running daemon")
}

/// A small runtime for one client call.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Where the events of a followed turn go.
/// What a command shows of a step, as one line for stderr (`None`: nothing).
pub type StepLine = dyn Fn(&hal_store::Step) -> Option<String>;

pub struct Display<'a> {
    /// The line each new step shows.
    pub steps: Option<&'a StepLine>,
    /// Stream model text to stdout as it comes.
    pub text: bool,
    /// The cursor starts after a prompt on stdout (`hal> ` in `hal chat`): a step's line, coming first, starts on a
    /// line of its own; streamed text follows the prompt.
    pub after_prompt: bool,
}

/// The line of every step on stderr: what `hal help run` and `hal thread say` show while a turn runs.
pub fn step_line(step: &hal_store::Step) -> Option<String> {
    Some(format!("  {}: {}", step.kind, first_line(&step.text, 160)))
}

/// The first line of `text` that is not blank, at most `limit` characters, printable whoever wrote it (a step's
/// text may be a web page's: [`hal_store::files::printable`]).
pub(crate) fn first_line(text: &str, limit: usize) -> String {
    hal_store::files::printable(hal_store::files::first_line(text), limit)
}

/// A dim line on stderr for each tool a model called, as its result is committed (`  · files.write: wrote a.md`),
/// so a person sees the turn work instead of a pause; other steps show nothing.
pub fn tool_line(step: &hal_store::Step) -> Option<String> {
    use std::io::IsTerminal;
    if step.kind != hal_store::StepKind::Tool {
        return None;
    }
    let tool = step.fact(hal_runner::record::fact::TOOL).unwrap_or("a tool");
    let result = first_line(&step.text, 100);
    let dim = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (on, off) = if dim { ("\x1b[2m", "\x1b[0m") } else { ("", "") };
    Some(format!("{on}  · {tool}: {result}{off}"))
}

/// Send `command` (a message from `actor`) and show the turn that answers it until it ends; also returns the
/// model text of its last reply that was printed (the earlier replies' text is on screen too, each ending its line).
pub fn talk(handle: &dyn Handle, actor: &str, command: &Command, display: &Display<'_>) -> Result<(TurnEnd, String)> {
    let mut streamed = String::new();
    // Whether streamed text left the cursor mid-line: what comes next on the terminal (a tool's line on stderr, a
    // spinner while a component compiles) starts on a line of its own rather than over the model's words.
    let mut open_line = display.after_prompt;
    // Text after a step is a later reply's: what is returned is the last reply's text.
    let mut after_step = false;
    let end_line = |open_line: &mut bool| {
        if std::mem::take(open_line) {
            let _ = writeln!(std::io::stdout());
        }
    };
    let mut show = |event: &ThreadEvent| match event {
        ThreadEvent::Text { delta } if display.text => {
            // A reader that went away is noticed by the next `outln!`.
            let _ = write!(std::io::stdout(), "{delta}");
            let _ = std::io::stdout().flush();
            if std::mem::take(&mut after_step) {
                streamed.clear();
            }
            streamed.push_str(delta);
            if !delta.is_empty() {
                open_line = !delta.ends_with('\n');
            }
        }
        ThreadEvent::Step { step } => {
            after_step = true;
            // The line ends before a step's line, and only for one: a prompt stays open for what follows it.
            if let Some(line) = display.steps.and_then(|show| show(step)) {
                end_line(&mut open_line);
                eprintln!("{line}");
            }
        }
        // What a help this turn called is doing on its own thread, while the turn waits for it.
        ThreadEvent::Progress { thread, kind, summary }
            if display.steps.is_some() && matches!(kind.as_str(), "tool" | "finish" | "progress") =>
        {
            end_line(&mut open_line);
            eprintln!("    ↳ {thread} {kind}: {}", first_line(summary, 140));
        }
        _ => {}
    };
    let end = handle.talk(command, actor, &mut show)?;
    // A prompt nothing followed is left open for the answer the caller prints after it.
    if open_line && !streamed.is_empty() {
        outln!();
    }
    Ok((end, streamed))
}

/// The exit code for a turn's status, as `hal help run` uses them.
pub fn exit_code(status: Status) -> u8 {
    super::run::exit_code(status)
}

/// `actor`'s signature of a merge of `thread` at its tip now, with the key they sign with on this machine: `None`
/// when they have none (the daemon then refuses the merge once `hal.yaml` names owners, and says why).
pub fn sign_merge(home: &hal_store::Home, actor: &str, thread: &str) -> Option<hal_daemon::protocol::TipSignature> {
    sign_act(home, actor, thread, hal_trust::MERGE_NAMESPACE, hal_trust::merge_statement)
}

/// `actor`'s signature of an unfreeze of `thread` at its tip now, as [`sign_merge`].
pub fn sign_unfreeze(home: &hal_store::Home, actor: &str, thread: &str) -> Option<hal_daemon::protocol::TipSignature> {
    sign_act(home, actor, thread, hal_trust::UNFREEZE_NAMESPACE, hal_trust::unfreeze_statement)
}

/// `actor`'s signature of the statement `statement` makes of `thread` at its tip now, in `namespace`.
fn sign_act(
    home: &hal_store::Home,
    actor: &str,
    thread: &str,
    namespace: &str,
    statement: fn(&str, &str, &str) -> Vec<u8>,
) -> Option<hal_daemon::protocol::TipSignature> {
    let thread = home.resolve_thread(thread).ok()?;
    let key = home.existing_person_key(actor)?;
    let tip = thread.tip.to_string();
    let statement = statement(actor, &thread.id, &tip);
    match hal_trust::sign_statement(&key, namespace, &statement) {
        Ok(signature) => Some(hal_daemon::protocol::TipSignature { tip, signature }),
        Err(error) => {
            tracing::warn!(target: "hal", %error, "the request goes unsigned");
            None
        }
    }
}

/// `actor`'s signature of `text` as a message on `thread` (written after its tip now), with the key they sign with
/// on this machine: `None` when they have none HAL can use, or the thread does not exist yet (a backchat's first
/// message), and the message goes unsigned (HAL's signature on the step says HAL wrote it for them).
pub fn sign_message(
    home: &hal_store::Home,
    actor: &str,
    thread: &str,
    text: &str,
) -> Option<hal_daemon::protocol::MessageSignature> {
    let name = match thread {
        hal_store::BACKCHAT => format!("threads/{actor}/{}", hal_store::BACKCHAT),
        _ => thread.to_owned(),
    };
    let thread = home.resolve_thread(&name).ok()?;
    let key = home.existing_person_key(actor)?;
    // Only a key that counts for them: a signature HAL would refuse would refuse the message with it.
    let keyring = hal_trust::Keyring::load(home).ok()?;
    let counts = keyring.owner_of(key.public_key()).is_some_and(|k| k.actor == actor && !k.revoked);
    if !counts {
        tracing::warn!(target: "hal", %actor, "your key does not count for you in this repo: the message goes unsigned");
        return None;
    }
    let after = thread.tip.to_string();
    match hal_trust::sign_message(&key, actor, &thread.id, &after, text) {
        Ok(signature) => Some(hal_daemon::protocol::MessageSignature { after, signature }),
        Err(error) => {
            tracing::warn!(target: "hal", %error, "the message goes unsigned");
            None
        }
    }
}
