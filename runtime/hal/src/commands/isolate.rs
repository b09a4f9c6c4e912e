//! `hal isolate …`: the isolates a home repo offers, and calling one by hand, through the repo's handle (the
//! daemon's isolates when one runs, else `main`'s, loaded in this process the way the daemon loads them).

use anyhow::{Context, Result};
use hal_daemon::Handle;
use hal_daemon::protocol::{Called, Command, IsolateReport, Response};
use serde_json::json;

use super::{Outcome, remote};
use crate::cli::{Args, IsolateCommand};
use crate::output;

/// Run one isolate command.
pub fn run(args: &Args, command: &IsolateCommand) -> Result<Outcome> {
    let handle = remote::handle(args)?;
    match command {
        IsolateCommand::List => list(args, &isolates(handle.as_ref())?),
        IsolateCommand::Show { name } => show(args, &isolates(handle.as_ref())?, name),
        IsolateCommand::Call { name, function, arguments, thread } => {
            call(args, handle.as_ref(), name, function, arguments, thread.as_deref())
        }
    }
}

/// Every isolate of the catalogue, loaded or not.
fn isolates(handle: &dyn Handle) -> Result<Vec<IsolateReport>> {
    match handle.command(&Command::Catalogue)? {
        Response::Catalogue { catalogue } => Ok(catalogue.isolates),
        other => anyhow::bail!("the catalogue command was answered with {other:?}"),
    }
}

fn describe(entry: &IsolateReport) -> serde_json::Value {
    match &entry.loaded {
        Some(isolate) => json!({
            "name": entry.name,
            "source": entry.source,
            "version": isolate.version,
            "description": isolate.description,
            "functions": isolate.functions,
            "granted": isolate.granted,
            "asked": isolate.asked,
            "limits": isolate.limits,
        }),
        None => json!({"name": entry.name, "source": entry.source, "error": entry.error}),
    }
}

fn list(args: &Args, entries: &[IsolateReport]) -> Result<Outcome> {
    if args.json {
        output::json(&entries.iter().map(describe).collect::<Vec<_>>())?;
        return Ok(Outcome::Done);
    }
    for entry in entries {
        match &entry.loaded {
            Some(isolate) => {
                let prefix = format!("{}.", entry.name);
                let functions: Vec<&str> =
                    isolate.functions.iter().map(|f| f.name.strip_prefix(&prefix).unwrap_or(&f.name)).collect();
                outln!(
                    "{:<10} v{:<3} {:<22} {} ({})",
                    entry.name,
                    isolate.version,
                    entry.source,
                    isolate.description,
                    functions.join(", ")
                );
            }
            None => {
                outln!("{:<10} {:<27} INVALID: {}", entry.name, entry.source, entry.error.as_deref().unwrap_or(""))
            }
        }
    }
    Ok(Outcome::Done)
}

fn show(args: &Args, entries: &[IsolateReport], name: &str) -> Result<Outcome> {
    let entry = entries.iter().find(|e| e.name == name).with_context(|| {
        let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        format!("no isolate named {name:?} (known: {})", known.join(", "))
    })?;
    let description = describe(entry);
    if args.json {
        output::json(&description)?;
    } else {
        outln!("{}", serde_json::to_string_pretty(&description)?);
    }
    Ok(Outcome::Done)
}

fn call(
    args: &Args,
    handle: &dyn Handle,
    name: &str,
    function: &str,
    arguments: &str,
    thread: Option<&str>,
) -> Result<Outcome> {
    let actor = hal_store::Home::open(&args.directory)?.resolve_actor(None)?;
    let command = Command::CallIsolate {
        actor: Some(actor),
        isolate: name.to_owned(),
        function: function.to_owned(),
        arguments: arguments.to_owned(),
        thread: thread.map(str::to_owned),
    };
    let called = match handle.command(&command)? {
        Response::Called { called } => called,
        other => anyhow::bail!("the call was answered with {other:?}"),
    };
    match called {
        Called::Ok { result, logs, commit } => {
            if args.json {
                let commit = commit.map(|c| c.to_string());
                output::json(&json!({"ok": true, "result": result, "logs": logs, "commit": commit}))?;
            } else {
                outln!("{result}");
                if let Some(commit) = commit {
                    eprintln!("the call's writes are step {commit}");
                }
            }
            Ok(Outcome::Done)
        }
        Called::Failed { error } => {
            if args.json {
                output::json(&json!({"ok": false, "error": error}))?;
            } else {
                eprintln!("ERROR: {error}");
            }
            Ok(Outcome::Exit(super::run::EXIT_FAILED))
        }
    }
}
