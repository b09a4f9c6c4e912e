//! `hal isolate …`: the isolates a home repo offers, and calling one by hand.

use anyhow::{Context, Result};
use hal_runner::Catalog;
use hal_runner::tools::{ToolContext, Toolbox};
use hal_sandbox::catalog::{IsolateEntry, add_repo_tools, load_isolates, sandbox_for};
use hal_sandbox::{CallContext, Sandbox};
use hal_spec::Settings;
use hal_store::{Home, NewStep, StepKind, ThreadStatus};
use serde_json::json;

use super::Outcome;
use crate::cli::{Args, IsolateCommand};
use crate::output;

/// Offer every loadable isolate's functions as tools; isolates that fail to load are logged and left out.
pub fn add_tools(toolbox: &mut Toolbox, home: &Home, settings: &Settings) -> Result<()> {
    let left_out =
        add_repo_tools(toolbox, home, settings, &hal_runner::secrets::lookup()).map_err(anyhow::Error::msg)?;
    for (isolate, error) in left_out {
        tracing::warn!(target: "hal", %isolate, %error, "isolate left out");
    }
    Ok(())
}

/// Run one isolate command.
pub fn run(args: &Args, command: &IsolateCommand) -> Result<Outcome> {
    let home = Home::open(&args.directory).ok();
    let settings = match &home {
        Some(home) => {
            let catalog = Catalog::load(home)?;
            if let Some(error) = catalog.settings_error {
                return Err(hal_runner::RunError::InvalidSettings(error).into());
            }
            catalog.settings
        }
        None => Settings::default(),
    };
    let sandbox = sandbox_for(home.as_ref(), &settings).map_err(anyhow::Error::msg)?;
    let entries = load_isolates(&sandbox, &settings, home.as_ref());
    match command {
        IsolateCommand::List => list(args, &entries),
        IsolateCommand::Show { name } => show(args, &entries, name),
        IsolateCommand::Call { name, function, arguments, thread } => {
            call(args, &sandbox, home, &entries, name, function, arguments, thread.as_deref())
        }
    }
}

fn describe(entry: &IsolateEntry) -> serde_json::Value {
    match &entry.isolate {
        Some(isolate) => json!({
            "name": entry.name,
            "source": entry.source,
            "version": isolate.manifest.version,
            "description": isolate.manifest.description,
            "functions": isolate.functions.iter().map(|(name, description, parameters)| json!({
                "name": format!("{}.{name}", entry.name), "description": description, "parameters": parameters,
            })).collect::<Vec<_>>(),
            "granted": {"tree": isolate.granted.tree, "http": isolate.granted.hosts, "secrets": isolate.granted.secrets},
            "asked": isolate.manifest.capabilities,
            "limits": {
                "wall_ms": isolate.limits.wall.as_millis() as u64, "fuel": isolate.limits.fuel,
                "memory_mb": isolate.limits.memory >> 20, "output_kb": isolate.limits.output >> 10,
            },
        }),
        None => json!({"name": entry.name, "source": entry.source, "error": entry.error}),
    }
}

fn list(args: &Args, entries: &[IsolateEntry]) -> Result<Outcome> {
    if args.json {
        output::json(&entries.iter().map(describe).collect::<Vec<_>>())?;
        return Ok(Outcome::Done);
    }
    for entry in entries {
        match (&entry.isolate, &entry.error) {
            (Some(isolate), _) => {
                let functions: Vec<&str> = isolate.functions.iter().map(|(name, _, _)| name.as_str()).collect();
                outln!(
                    "{:<10} v{:<3} {:<22} {} ({})",
                    entry.name,
                    isolate.manifest.version,
                    entry.source,
                    isolate.manifest.description,
                    functions.join(", ")
                );
            }
            (None, error) => {
                outln!("{:<10} {:<27} INVALID: {}", entry.name, entry.source, error.as_deref().unwrap_or(""))
            }
        }
    }
    Ok(Outcome::Done)
}

fn find<'a>(entries: &'a [IsolateEntry], name: &str) -> Result<&'a IsolateEntry> {
    entries.iter().find(|e| e.name == name).with_context(|| {
        let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        format!("no isolate named {name:?} (known: {})", known.join(", "))
    })
}

fn show(args: &Args, entries: &[IsolateEntry], name: &str) -> Result<Outcome> {
    let entry = find(entries, name)?;
    let description = describe(entry);
    if args.json {
        output::json(&description)?;
    } else {
        outln!("{}", serde_json::to_string_pretty(&description)?);
    }
    Ok(Outcome::Done)
}

#[allow(clippy::too_many_arguments)]
fn call(
    args: &Args,
    sandbox: &Sandbox,
    home: Option<Home>,
    entries: &[IsolateEntry],
    name: &str,
    function: &str,
    arguments: &str,
    thread: Option<&str>,
) -> Result<Outcome> {
    let entry = find(entries, name)?;
    let isolate = entry
        .isolate
        .as_ref()
        .with_context(|| format!("isolate {name:?} is invalid: {}", entry.error.as_deref().unwrap_or("")))?;
    serde_json::from_str::<serde_json::Value>(arguments).context("the arguments must be a JSON object")?;
    let (journal, thread) = match (home, thread) {
        (Some(home), Some(id)) => {
            let thread = home.resolve_thread(id)?;
            (Some(hal_runner::Journal::new(home)), Some(thread))
        }
        (None, Some(_)) => anyhow::bail!("--thread needs a home repo (run `hal init`)"),
        _ => (None, None),
    };
    let tree = match (&journal, &thread) {
        (Some(journal), Some(thread)) => Some(ToolContext::new(journal.clone(), &thread.id, thread.tip)),
        _ => None,
    };
    let context = CallContext { tree, http: true, secret: hal_runner::secrets::lookup() };
    let outcome = sandbox.call(isolate, function, arguments, context);
    match outcome {
        Ok(output) => {
            let mut commit = None;
            if let (Some(journal), Some(thread), Some(tree)) = (&journal, &thread, output.tree) {
                let writes = tree.into_writes();
                if !writes.is_empty() {
                    let actor = journal.with(|home| home.resolve_actor(None))?;
                    // A call made by hand is the person's change to the tree, not a model's tool call: a `tool`
                    // step needs the call it answers, and a thread holding one without it could not be resumed.
                    let text = format!("called {name}.{function} by hand: {}", output.result);
                    let mut step = NewStep::new(StepKind::Write, text, ThreadStatus::Open)
                        .fact(hal_runner::record::fact::TOOL, format!("{name}.{function}"))
                        .fact(hal_runner::record::fact::OUTCOME, "ok");
                    step.writes = writes;
                    commit = Some(journal.with(|home| home.append_step(&actor, thread, &step))?.commit);
                }
            }
            if args.json {
                output::json(
                    &json!({"ok": true, "result": output.result, "logs": output.logs, "commit": commit.map(|c| c.to_string())}),
                )?;
            } else {
                outln!("{}", output.result);
                if let Some(commit) = commit {
                    eprintln!("the call's writes are step {commit}");
                }
            }
            Ok(Outcome::Done)
        }
        Err(error) => {
            if args.json {
                output::json(&json!({"ok": false, "error": error.to_string()}))?;
            } else {
                eprintln!("ERROR: {error}");
            }
            Ok(Outcome::Exit(super::run::EXIT_FAILED))
        }
    }
}
