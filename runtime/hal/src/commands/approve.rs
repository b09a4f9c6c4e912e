//! `hal approve` and `hal deny`: an owner's signed answer to the approval request a run waits on (a call at
//! autonomy level AL1), sent through the repo's handle; the run goes on and this command shows it until its turn
//! ends, with the exit codes of `hal help run`.

use anyhow::{Result, bail};
use hal_daemon::protocol::Command;
use hal_store::Home;
use hal_trust::approval::{APPROVAL_NAMESPACE, Scope, approval_statement};

use super::{Outcome, remote};
use crate::cli::Args;

/// Approve (`approve`) or deny the call `thread` waits on; `call`, when given, must be the one it waits on.
pub fn run(args: &Args, thread: &str, call: Option<u32>, approve: bool, scope: Scope, reason: &str) -> Result<Outcome> {
    let reason = reason.trim();
    if !approve && reason.is_empty() {
        bail!("a denial needs a reason (--reason): the model hears it");
    }
    let home = Home::open(&args.directory)?;
    let actor = home.resolve_actor(None)?;
    let target = hal_daemon::command::thread_of(&home, &actor, thread)?;
    let (request, data) = hal_daemon::decide::waiting_request(&home, &target)?;
    if let Some(call) = call
        && call != data.index
    {
        bail!(
            "thread {} waits for an answer about call {} ({}), not call {call}",
            target.id,
            data.index,
            data.call.name
        );
    }
    let asked = data.asked(&target.id, &request.to_string());
    // Signed over exactly the call shown: the daemon refuses an answer to anything else. Without a key of yours it
    // goes unsigned, which a repo whose hal.yaml names owners refuses, saying why.
    let signature = match home.existing_person_key(&actor) {
        Some(key) => {
            let statement = approval_statement(&actor, &asked, approve, scope, reason);
            Some(hal_trust::sign_statement(&key, APPROVAL_NAMESPACE, &statement).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    drop(home);
    if !args.json {
        let word = if approve { "approving" } else { "denying" };
        eprintln!("{word} {} {} on thread {}", data.call.name, cut(&data.call.arguments, 200), target.id);
    }
    let handle = remote::handle(args)?;
    let command = Command::Decide {
        actor: Some(actor.clone()),
        thread: target.branch.clone(),
        request: request.to_string(),
        approve,
        scope,
        reason: reason.to_owned(),
        signature,
    };
    let display = remote::Display {
        steps: (!args.json).then_some(&remote::step_to_stderr as &dyn Fn(&hal_store::Step)),
        text: false,
    };
    let (end, _) = remote::talk(handle.as_ref(), &actor, &command, &display)?;
    super::run::print_end(args, handle.as_ref(), &end)?;
    Ok(Outcome::Exit(remote::exit_code(end.status)))
}

/// `text` cut to `limit` characters, with no control character.
fn cut(text: &str, limit: usize) -> String {
    let cut: String = text.chars().take(limit).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > limit { format!("{cut}…") } else { cut }
}
