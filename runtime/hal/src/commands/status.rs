//! `hal status`: what this home repo offers and what waits for a person, as the engine that answers has it in
//! force (the daemon's, when one runs).

use anyhow::Result;
use hal_daemon::Place;
use hal_daemon::protocol::{AtTip, Command, FileKind, IsolateReport, Problem, Response, StatusReport};
use hal_store::Home;
use serde_json::{Value, json};

use super::{CommandEnd, remote};
use crate::cli::Args;
use crate::output;

/// The status report.
pub fn run(args: &Args) -> Result<CommandEnd> {
    let home = Home::open(&args.directory)?;
    let actor = home.resolve_actor(None).ok();
    let handle = remote::handle(args)?;
    let report = match handle.command(&Command::Status) {
        Ok(Response::Status { report }) => report,
        Ok(other) => anyhow::bail!("the status command was answered with {other:?}"),
        Err(error) => {
            // A daemon that holds the repo but does not answer: say so, and what it published.
            let Place::Daemon(info) = handle.place() else { return Err(error.into()) };
            let report = json!({
                "home": home.path(),
                "actor": actor,
                "daemon": {"running": true, "pid": info.pid, "error": error.to_string()},
            });
            if args.json {
                output::json(&report)?;
            } else {
                outln!("home:     {}", home.path().display());
                outln!("daemon:   running (pid {}) but not answering: {error}", info.pid);
            }
            return Ok(CommandEnd::Exit(super::run::EXIT_FAILED));
        }
    };
    let report = to_json(&home, actor, &report);
    if args.json {
        output::json(&report)?;
    } else {
        print_report(&report)?;
    }
    Ok(CommandEnd::Done)
}

/// The report as `hal status --json` shows it.
fn to_json(home: &Home, actor: Option<String>, report: &StatusReport) -> Value {
    let catalogue = &report.catalogue;
    let invalid_files: Vec<Value> = catalogue
        .problems
        .iter()
        .filter(|problem| !shown_as_isolate(problem, &catalogue.isolates))
        .map(|problem| {
            json!({
                "kind": problem.kind,
                "name": name_of(problem),
                "file": problem.file,
                "error": problem.error,
                "previous_in_force": problem.previous_in_force,
            })
        })
        .collect();
    let isolates: Vec<Value> = catalogue
        .isolates
        .iter()
        .map(|isolate| {
            json!({"name": isolate.name, "source": isolate.source, "error": isolate.error, "not_built": isolate.not_built})
        })
        .collect();
    let thread =
        |at: &AtTip| json!({"id": at.thread.id, "branch": at.thread.branch, "title": at.thread.title, "text": at.text});
    let daemon = match &report.daemon {
        Some(info) => json!({
            "running": true,
            "pid": info.pid,
            "address": info.address,
            "started": info.started,
            "main": catalogue.main,
            "helps": catalogue.helps,
            "isolates": catalogue.isolates.iter().filter(|i| i.loaded.is_some()).map(|i| &i.name).collect::<Vec<_>>(),
            "problems": catalogue.problems,
            "turns_running": report.running,
        }),
        None => json!({"running": false}),
    };
    json!({
        "home": home.path(),
        "actor": actor,
        "daemon": daemon,
        "halt": report.halt,
        "halted": report.halt.reason(),
        "main": catalogue.main,
        "models": catalogue.models,
        "tasks": catalogue.tasks,
        "helps": catalogue.helps,
        "agents": catalogue.agents,
        "isolates": isolates,
        "invalid_files": invalid_files,
        "warnings": catalogue.warnings,
        "waiting_for_you": report.waiting.iter().map(thread).collect::<Vec<_>>(),
        "interrupted": report.interrupted.iter().map(thread).collect::<Vec<_>>(),
    })
}

/// Whether `problem` is an isolate or plugin that did not load, which `isolates` shows with its error.
fn shown_as_isolate(problem: &Problem, isolates: &[IsolateReport]) -> bool {
    matches!(problem.kind, FileKind::Isolate | FileKind::Plugin)
        && isolates.iter().any(|isolate| {
            isolate.error.is_some()
                && (isolate.source.trim_start_matches("main:") == problem.file
                    || problem.file == format!("isolates/{}", isolate.name))
        })
}

/// A problem's help, agent or file name, as `hal help list` and `hal.yaml` call them.
fn name_of(problem: &Problem) -> String {
    match problem.kind {
        FileKind::Help | FileKind::Agent => std::path::Path::new(&problem.file)
            .file_stem()
            .map_or_else(|| problem.file.clone(), |stem| stem.to_string_lossy().into_owned()),
        _ => problem.file.clone(),
    }
}

fn names(value: &Value) -> String {
    let list: Vec<&str> = value.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if list.is_empty() { "none".to_owned() } else { list.join(", ") }
}

fn print_report(report: &Value) -> Result<()> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    outln!("home:     {}", text(&report["home"]));
    outln!("actor:    {}", text(&report["actor"]));
    let daemon = &report["daemon"];
    match (daemon["running"].as_bool(), daemon["error"].as_str()) {
        (Some(true), None) => {
            outln!(
                "daemon:   running (pid {}, http://{}), main {}, {} turn(s) running",
                daemon["pid"],
                text(&daemon["address"]),
                output::short(&text(&daemon["main"])),
                daemon["turns_running"].as_array().map_or(0, Vec::len)
            );
        }
        (Some(true), Some(error)) => outln!("daemon:   running (pid {}) but not answering: {error}", daemon["pid"]),
        _ => outln!("daemon:   not running (start it with `hal daemon`)"),
    }
    if let Some(halted) = report["halted"].as_str() {
        outln!("HALTED:   {halted} (nothing starts until an owner runs `hal resume`)");
    }
    let models = report["models"].as_array().cloned().unwrap_or_default();
    if models.is_empty() {
        outln!("models:   none configured (see `models` in hal.yaml on main)");
    }
    for model in &models {
        let key = match &model["key"] {
            Value::Null => "no key needed".to_owned(),
            key if key["set"] == true => format!("key {} is set", text(&key["secret"])),
            key => format!("key {} is NOT set", text(&key["secret"])),
        };
        outln!("model:    {} ({} {}, {key})", text(&model["name"]), text(&model["provider"]), text(&model["model"]));
    }
    outln!("helps:    {}", names(&report["helps"]));
    outln!("agents:   {}", names(&report["agents"]));
    for isolate in report["isolates"].as_array().into_iter().flatten() {
        match isolate["error"].as_str() {
            None => outln!("isolate:  {} ({})", text(&isolate["name"]), text(&isolate["source"])),
            Some(error) if isolate["not_built"] == true => outln!("isolate:  {} {error}", text(&isolate["name"])),
            Some(error) => {
                outln!("isolate:  {} INVALID: {}", text(&isolate["name"]), error.lines().next().unwrap_or_default())
            }
        }
    }
    for file in report["invalid_files"].as_array().into_iter().flatten() {
        let kept = if file["previous_in_force"] == true { " (the previous version is in force)" } else { "" };
        let error = text(&file["error"]);
        // Help, agent and settings errors name their file, line and field; the others are about a whole file.
        match text(&file["kind"]).as_str() {
            kind @ ("help" | "agent" | "settings") => outln!("invalid {kind}: {error}{kept}"),
            "other" => outln!("invalid file: {}: {error}{kept}", text(&file["file"])),
            kind => outln!("invalid {kind}: {}: {error}{kept}", text(&file["file"])),
        }
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        outln!("warning:  {}", text(warning));
    }
    for thread in report["waiting_for_you"].as_array().into_iter().flatten() {
        let question = text(&thread["text"]);
        outln!(
            "waiting:  {} {}: {}",
            text(&thread["id"]),
            text(&thread["title"]),
            question.lines().next().unwrap_or_default()
        );
    }
    for thread in report["interrupted"].as_array().into_iter().flatten() {
        outln!("interrupted or running: {} {}", text(&thread["id"]), text(&thread["title"]));
    }
    Ok(())
}
