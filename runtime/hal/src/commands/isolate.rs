//! `hal isolate …`: the isolates a home repo offers, and calling one by hand, through the repo's handle (the
//! daemon's isolates when one runs, else `main`'s, loaded in this process the way the daemon loads them).

use anyhow::{Context, Result};
use hal_daemon::Handle;
use hal_daemon::protocol::{Called, Command, IsolateReport, Response};
use serde_json::json;

use super::{CommandEnd, remote};
use crate::cli::{Args, IsolateCommand};
use crate::output;

/// Run one isolate command.
pub fn run(args: &Args, command: &IsolateCommand) -> Result<CommandEnd> {
    let handle = remote::handle(args)?;
    match command {
        IsolateCommand::List => list(args, &isolates(handle.as_ref())?),
        IsolateCommand::Show { name } => show(args, &isolates(handle.as_ref())?, name),
        IsolateCommand::Build { name } => build(args, handle.as_ref(), name.as_deref()),
        IsolateCommand::Call { name, function, arguments, thread, idempotency_key } => {
            let target = Target { thread: thread.as_deref(), idempotency_key: idempotency_key.as_deref() };
            call(args, handle.as_ref(), name, function, arguments, target)
        }
    }
}

/// Every isolate of the catalogue, loaded or not (never built here: one not built yet says so).
fn isolates(handle: &dyn Handle) -> Result<Vec<IsolateReport>> {
    Ok(remote::catalogue(handle, &Command::Catalogue)?.isolates)
}

/// `hal isolate build [name]`: what is not built yet is built (by the daemon when one runs), then listed.
fn build(args: &Args, handle: &dyn Handle, name: Option<&str>) -> Result<CommandEnd> {
    let entries = remote::catalogue(handle, &Command::BuildIsolates)?.isolates;
    let judged: Vec<&IsolateReport> = match name {
        Some(name) => vec![find(&entries, name)?],
        None => entries.iter().collect(),
    };
    let failed = judged.iter().any(|entry| entry.loaded.is_none());
    list(args, &entries)?;
    Ok(if failed { CommandEnd::Exit(super::run::EXIT_FAILED) } else { CommandEnd::Done })
}

fn find<'a>(entries: &'a [IsolateReport], name: &str) -> Result<&'a IsolateReport> {
    entries.iter().find(|e| e.name == name).with_context(|| {
        let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        format!("no isolate named {name:?} (known: {})", known.join(", "))
    })
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
        None => json!({"name": entry.name, "source": entry.source, "error": entry.error, "not_built": entry.not_built}),
    }
}

fn list(args: &Args, entries: &[IsolateReport]) -> Result<CommandEnd> {
    if args.json {
        output::json(&entries.iter().map(describe).collect::<Vec<_>>())?;
        return Ok(CommandEnd::Done);
    }
    // Every column as wide as its longest value, so the rows line up whatever the names' lengths.
    let name_width = entries.iter().map(|e| e.name.chars().count()).max().unwrap_or(0);
    let source_width = entries.iter().map(|e| e.source.chars().count()).max().unwrap_or(0);
    for entry in entries {
        let (name, source) = (&entry.name, &entry.source);
        match &entry.loaded {
            Some(isolate) => {
                let prefix = format!("{}.", entry.name);
                let functions: Vec<&str> =
                    isolate.functions.iter().map(|f| f.name.strip_prefix(&prefix).unwrap_or(&f.name)).collect();
                let version = format!("v{}", isolate.version);
                outln!(
                    "{name:<name_width$}  {version:<4} {source:<source_width$}  {} ({})",
                    isolate.description,
                    functions.join(", ")
                );
            }
            None => {
                let error = entry.error.as_deref().unwrap_or("");
                let state = if entry.not_built { "" } else { "INVALID: " };
                outln!("{name:<name_width$}  {:<4} {source:<source_width$}  {state}{error}", "")
            }
        }
    }
    Ok(CommandEnd::Done)
}

/// Exit code 1 when the isolate did not load (or is not built yet): what was asked about is not OK.
fn show(args: &Args, entries: &[IsolateReport], name: &str) -> Result<CommandEnd> {
    let entry = find(entries, name)?;
    if args.json {
        output::json(&describe(entry))?;
    } else {
        print_details(entry)?;
    }
    Ok(if entry.loaded.is_some() { CommandEnd::Done } else { CommandEnd::Exit(super::run::EXIT_FAILED) })
}

/// `hal isolate show` for a person: what it is, its functions with their arguments, what it may do.
fn print_details(entry: &IsolateReport) -> Result<()> {
    outln!("{} ({})", entry.name, entry.source);
    let Some(isolate) = &entry.loaded else {
        let state = if entry.not_built { "" } else { "INVALID: " };
        outln!("{state}{}", entry.error.as_deref().unwrap_or_default());
        return Ok(());
    };
    outln!("version {}: {}", isolate.version, isolate.description);
    outln!("functions:");
    for function in &isolate.functions {
        let properties = function.parameters["properties"].as_object();
        let required: Vec<&str> =
            function.parameters["required"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        let arguments: Vec<String> = properties
            .into_iter()
            .flatten()
            .map(|(name, schema)| {
                let choices: Vec<&str> =
                    schema["enum"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
                let kind = if choices.is_empty() {
                    schema["type"].as_str().unwrap_or("any").to_owned()
                } else {
                    choices.join("|")
                };
                let optional = if required.contains(&name.as_str()) { "" } else { "?" };
                format!("{name}{optional}: {kind}")
            })
            .collect();
        outln!("  {}({})", function.name, arguments.join(", "));
        if !function.description.is_empty() {
            outln!("      {}", function.description);
        }
    }
    let list = |items: &[String]| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    let granted = (&isolate.granted.tree, &isolate.granted.http, &isolate.granted.secrets);
    let asked = serde_json::to_value(&isolate.asked)?;
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    };
    let tree = |value: serde_json::Value| value.as_str().unwrap_or("none").to_owned();
    outln!(
        "granted:  tree {}, http {}, secrets {}",
        tree(serde_json::to_value(granted.0)?),
        list(granted.1),
        list(granted.2)
    );
    outln!(
        "asks for: tree {}, http {}, secrets {}",
        tree(asked["tree"].clone()),
        list(&strings(&asked["http"])),
        list(&strings(&asked["secrets"]))
    );
    let limits = &isolate.limits;
    outln!(
        "limits:   {} ms wall, {} fuel, {} MiB memory, {} KiB output per call",
        limits.wall_ms,
        limits.fuel,
        limits.memory_mb,
        limits.output_kb
    );
    Ok(())
}

/// Where a call by hand works: on a thread's tree, with an idempotency key.
struct Target<'a> {
    thread: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

fn call(
    args: &Args,
    handle: &dyn Handle,
    name: &str,
    function: &str,
    arguments: &str,
    target: Target<'_>,
) -> Result<CommandEnd> {
    let actor = hal_store::Home::open(&args.directory)?.resolve_actor(None)?;
    let command = Command::CallIsolate {
        actor: Some(actor),
        isolate: name.to_owned(),
        function: function.to_owned(),
        arguments: arguments.to_owned(),
        thread: target.thread.map(str::to_owned),
        idempotency_key: target.idempotency_key.map(str::to_owned),
    };
    let (called, repeated) = match handle.command(&command)? {
        Response::Called { called, repeated } => (called, repeated),
        other => anyhow::bail!("the call was answered with {other:?}"),
    };
    if repeated && !args.json {
        eprintln!("(a call with this idempotency key ran before: its answer, nothing ran now)");
    }
    match called {
        Called::Ok { result, logs, commit } => {
            if args.json {
                let commit = commit.map(|c| c.to_string());
                output::json(
                    &json!({"ok": true, "result": result, "logs": logs, "commit": commit, "repeated": repeated}),
                )?;
            } else {
                outln!("{result}");
                if let Some(commit) = commit {
                    eprintln!("the call's writes are step {commit}");
                }
            }
            Ok(CommandEnd::Done)
        }
        Called::Failed { error } => {
            if args.json {
                output::json(&json!({"ok": false, "error": error}))?;
            } else {
                eprintln!("ERROR: {error}");
            }
            Ok(CommandEnd::Exit(super::run::EXIT_FAILED))
        }
    }
}
