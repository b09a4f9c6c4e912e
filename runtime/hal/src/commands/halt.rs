//! `hal halt` and `hal resume`: an owner's signed statement on `refs/hal/halt`, which every process and daemon
//! using the repo obeys.

use anyhow::{Result, bail};
use hal_daemon::protocol::{Command, Response};
use hal_store::Home;

use super::{CommandEnd, remote};
use crate::cli::Args;
use crate::output;

/// Halt (`on`) or resume, signed with the person's key.
pub fn run(args: &Args, on: bool, reason: &str) -> Result<CommandEnd> {
    let reason = reason.trim();
    let home = Home::open(&args.directory)?;
    let actor = home.resolve_actor(None)?;
    let Some(key) = home.existing_person_key(&actor) else {
        bail!(
            "{} needs your signature, and you have no key HAL can sign with: `hal init` sets one up (git's \
             user.signingkey with gpg.format=ssh)",
            if on { "a halt" } else { "a resume" }
        );
    };
    // Signed after the halt commit believed last: one written since makes this one refused, to sign again.
    // Judged first: a halt pushed from elsewhere becomes the one believed, and is followed, never dropped.
    hal_trust::halt::halt_state(&home)?;
    let after = hal_trust::halt::believed(&home);
    let signature = hal_trust::halt::sign_halt(&key, &actor, on, reason, after).map_err(anyhow::Error::msg)?;
    drop(home);
    let handle = remote::handle(args)?;
    let command = Command::Halt {
        actor: Some(actor),
        on,
        reason: reason.to_owned(),
        after: after.map(|id| id.to_string()),
        signature,
    };
    let Response::Halted { halt, commit } = handle.command(&command)? else {
        bail!("the daemon answered something else than a halt");
    };
    if args.json {
        output::json(&serde_json::json!({ "halt": halt, "commit": commit }))?;
        return Ok(CommandEnd::Done);
    }
    match halt.reason() {
        Some(reason) => outln!("{reason} ({})", &commit[..10]),
        None => outln!("running ({})", &commit[..10]),
    }
    Ok(CommandEnd::Done)
}
