//! `hal secret set|list|unset`: the secret store (see `hal_runner::secrets`).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result};
use hal_runner::{Catalog, secrets};
use hal_sandbox::catalog::{load_isolates, sandbox_for};
use hal_store::Home;
use serde_json::json;

use super::Outcome;
use crate::cli::{Args, SecretCommand};
use crate::output;

/// Run one secret command.
pub fn run(args: &Args, command: &SecretCommand) -> Result<Outcome> {
    match command {
        SecretCommand::Set { name } => set(name),
        SecretCommand::Unset { name } => {
            match secrets::unset(name)? {
                true => outln!("removed {name}"),
                false => outln!("{name} was not set"),
            }
            Ok(Outcome::Done)
        }
        SecretCommand::List => list(args),
    }
}

fn set(name: &str) -> Result<Outcome> {
    secrets::check_name(name)?;
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value of {name} (not shown): ")).context("reading the value")?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the value from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    secrets::set(name, &value)?;
    outln!("stored {name} in {}", secrets::store_path()?.display());
    Ok(Outcome::Done)
}

/// Who needs which secret in this repo: models' keys, grants in hal.yaml, isolates' manifests.
fn needs(args: &Args) -> Result<BTreeMap<String, Vec<String>>> {
    let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(home) = Home::open(&args.directory) else { return Ok(needs) };
    let catalog = Catalog::load(&home)?;
    let mut add = |name: &str, who: String| {
        let users = needs.entry(name.to_owned()).or_default();
        if !users.contains(&who) {
            users.push(who);
        }
    };
    for (model, config) in &catalog.settings.models {
        if let Some(key) = &config.key {
            add(key, format!("model {model}"));
        }
    }
    for (isolate, policy) in &catalog.settings.sandbox.isolates {
        for name in &policy.secrets {
            add(name, format!("isolate {isolate} (granted)"));
        }
    }
    if let Ok(sandbox) = sandbox_for(Some(&home), &catalog.settings) {
        for entry in load_isolates(&sandbox, &catalog.settings, Some(&home)) {
            if let Some(isolate) = &entry.isolate {
                for name in &isolate.manifest.capabilities.secrets {
                    add(name, format!("isolate {} (asks)", entry.name));
                }
            }
        }
    }
    Ok(needs)
}

fn list(args: &Args) -> Result<Outcome> {
    let mut needs = needs(args)?;
    for name in secrets::names()? {
        needs.entry(name).or_default();
    }
    let rows: Vec<serde_json::Value> = needs
        .iter()
        .map(|(name, users)| json!({"name": name, "set": secrets::get(name).is_some(), "needed_by": users}))
        .collect();
    if args.json {
        output::json(&rows)?;
        return Ok(Outcome::Done);
    }
    if rows.is_empty() {
        outln!("no secrets are needed or stored (store: {})", secrets::store_path()?.display());
        return Ok(Outcome::Done);
    }
    let width = needs.keys().map(String::len).max().unwrap_or(4).max(4);
    outln!("{:<width$}  {:<7}  NEEDED BY", "NAME", "SET");
    for (name, users) in &needs {
        let set = if secrets::get(name).is_some() { "yes" } else { "NO" };
        let users = if users.is_empty() { "(stored; nothing here needs it)".to_owned() } else { users.join(", ") };
        outln!("{name:<width$}  {set:<7}  {users}");
    }
    Ok(Outcome::Done)
}
