//! What each command does. Each one opens the home repo, calls the store, and prints the result.

mod approve;
mod chat;
mod daemon;
mod demo;
mod halt;
mod help;
mod help_add;
mod help_test;
mod init;
mod isolate;
mod remote;
mod run;
mod secret;
mod status;
mod stuck;
mod thread;
mod verify;

use anyhow::Result;

use crate::cli::{Args, Command};
use crate::output;
use hal_trust::approval::Scope;

/// Exit code of `hal thread merge` when the thread conflicts with `main`.
pub const EXIT_CONFLICT: u8 = 1;
/// Exit code of `hal help validate` when a file is invalid.
pub const EXIT_INVALID: u8 = 1;
/// Exit code of a usage or environment error (a file that cannot be read, not a home repo): clap's own for
/// usage errors, and what `main` returns for every error.
pub const EXIT_USAGE: u8 = 2;

/// How a command ended, when it did not fail.
pub enum CommandEnd {
    /// It did what was asked.
    Done,
    /// A merge found conflicts and changed nothing.
    Conflict,
    /// A file checked by `hal help validate` is invalid.
    Invalid,
    /// The command ends with this exit code (a run's status, a failed test, a diverging replay).
    Exit(u8),
}

/// Run the command `args` asks for.
pub fn run(args: &Args) -> Result<CommandEnd> {
    match &args.command {
        Command::Demo { dir, live } => demo::run(args, dir.as_deref(), *live),
        Command::Init { path, actor } => init::run(args, path.as_deref(), actor.as_deref()),
        Command::Help(command) => help::run(args, command),
        Command::Thread(command) => thread::run(args, command),
        Command::Isolate(command) => isolate::run(args, command),
        Command::Status => status::run(args),
        Command::Stuck(crate::cli::StuckCommand::List { all }) => stuck::list(args, *all),
        Command::Secret(command) => secret::run(args, command),
        Command::Verify { .. } => verify::run(args, None),
        Command::Halt { reason } => halt::run(args, true, reason),
        Command::Resume { reason } => halt::run(args, false, reason),
        Command::Approve { thread, call, scope, amount } => {
            let scope = (*scope).into();
            let answer = approve::Answer { thread, call: *call, approve: true, scope, reason: "", amount: *amount };
            approve::run(args, &answer)
        }
        Command::Deny { thread, call, reason } => {
            let answer =
                approve::Answer { thread, call: *call, approve: false, scope: Scope::Once, reason, amount: None };
            approve::run(args, &answer)
        }
        Command::Actor(crate::cli::ActorCommand::AllowedSigners { write }) => verify::allowed_signers(args, *write),
        Command::Daemon { port, recording } => daemon::run(args, *port, recording.as_deref()),
        Command::Chat { message, thread, idempotency_key } => {
            chat::run(args, message.as_deref(), thread.as_deref(), idempotency_key.as_deref())
        }
        Command::Completions { shell } => {
            let mut command = <crate::cli::Args as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut command, "hal", &mut out);
            output::bytes(&out)?;
            Ok(CommandEnd::Done)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<crate::cli::Args as clap::CommandFactory>::command()).render(&mut out)?;
            output::bytes(&out)?;
            Ok(CommandEnd::Done)
        }
    }
}
