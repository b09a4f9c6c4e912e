//! `hal status`: what this home repo offers and what waits for a person.

use anyhow::Result;
use hal_runner::Catalog;
use hal_sandbox::catalog::{load_isolates, sandbox_for};
use hal_store::{Home, ThreadStatus};
use serde_json::{Value, json};

use super::Outcome;
use crate::cli::Args;
use crate::output;

/// The status report.
pub fn run(args: &Args) -> Result<Outcome> {
    let home = Home::open(&args.directory)?;
    let catalog = Catalog::load(&home)?;
    let actor = home.resolve_actor(None).ok();
    let invalid_files: Vec<Value> = catalog
        .helps
        .iter()
        .filter_map(|e| e.error.as_ref().map(|error| json!({"kind": "help", "name": e.name, "error": error})))
        .chain(
            catalog
                .agents
                .iter()
                .filter_map(|e| e.error.as_ref().map(|error| json!({"kind": "agent", "name": e.name, "error": error}))),
        )
        .chain(
            catalog.settings_error.iter().map(|error| json!({"kind": "settings", "name": "hal.yaml", "error": error})),
        )
        .collect();
    let models: Vec<Value> = catalog
        .settings
        .models
        .iter()
        .map(|(name, model)| {
            let key = model.key.as_ref().map(|key| json!({"secret": key, "set": hal_runner::secrets::get(key).is_some()}));
            json!({"name": name, "provider": model.provider, "model": model.model, "base_url": model.base_url, "key": key})
        })
        .collect();
    let sandbox = sandbox_for(Some(&home), &catalog.settings).map_err(anyhow::Error::msg)?;
    let isolates: Vec<Value> = load_isolates(&sandbox, &catalog.settings, Some(&home))
        .iter()
        .map(|entry| json!({"name": entry.name, "source": entry.source, "error": entry.error}))
        .collect();
    let mut waiting = Vec::new();
    let mut interrupted = Vec::new();
    for thread in home.list_threads()? {
        let list = match thread.status {
            ThreadStatus::Pending => &mut waiting,
            ThreadStatus::Running => &mut interrupted,
            _ => continue,
        };
        let reference = home.resolve_thread(&thread.branch)?;
        let question = home.steps_back(&reference).next().transpose()?.map(|step| step.text).unwrap_or_default();
        list.push(json!({"id": thread.id, "branch": thread.branch, "title": thread.title, "text": question}));
    }
    let daemon = match super::remote::daemon(&home)? {
        Some(client) => match super::remote::block_on(client.status())? {
            Ok(status) => json!({
                "running": true,
                "pid": status.info.pid,
                "address": status.info.address,
                "started": status.info.started,
                "main": status.main,
                "helps": status.helps,
                "isolates": status.isolates,
                "problems": status.problems,
                "turns_running": status.running,
            }),
            Err(error) => json!({"running": true, "pid": client.info().pid, "error": error.to_string()}),
        },
        None => json!({"running": false}),
    };
    let report = json!({
        "home": home.path(),
        "actor": actor,
        "daemon": daemon,
        "models": models,
        "tasks": catalog.settings.tasks,
        "helps": catalog.helps.iter().filter(|e| e.spec.is_some()).map(|e| e.name.clone()).collect::<Vec<_>>(),
        "agents": catalog.agents.iter().filter(|e| e.spec.is_some()).map(|e| e.name.clone()).collect::<Vec<_>>(),
        "isolates": isolates,
        "invalid_files": invalid_files,
        "waiting_for_you": waiting,
        "interrupted": interrupted,
    });
    if args.json {
        output::json(&report)?;
    } else {
        print_report(&report)?;
    }
    Ok(Outcome::Done)
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
            for problem in daemon["problems"].as_array().into_iter().flatten() {
                let kept = if problem["previous_in_force"] == true { " (previous version in force)" } else { "" };
                outln!("daemon reports {}: {}{kept}", text(&problem["file"]), text(&problem["error"]));
            }
        }
        (Some(true), Some(error)) => outln!("daemon:   running (pid {}) but not answering: {error}", daemon["pid"]),
        _ => outln!("daemon:   not running (start it with `hal daemon`)"),
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
            Some(error) => {
                outln!("isolate:  {} INVALID: {}", text(&isolate["name"]), error.lines().next().unwrap_or_default())
            }
        }
    }
    for file in report["invalid_files"].as_array().into_iter().flatten() {
        outln!("invalid {}: {}", text(&file["kind"]), text(&file["error"]));
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
