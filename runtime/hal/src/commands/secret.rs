//! `hal secret set|list|unset`: the secret store (see `hal_runner::secrets`).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result};
use hal_daemon::protocol::Command;
use hal_runner::secrets;
use hal_store::Home;
use serde_json::json;

use super::CommandEnd;
use crate::cli::{Args, SecretCommand};
use crate::output;

/// Run one secret command.
pub fn run(args: &Args, command: &SecretCommand) -> Result<CommandEnd> {
    match command {
        SecretCommand::Set { name } => set(name),
        SecretCommand::Unset { name } => {
            match secrets::unset(name)? {
                true => outln!("removed {name}"),
                false => outln!("{name} was not set"),
            }
            Ok(CommandEnd::Done)
        }
        SecretCommand::List => list(args),
    }
}

fn set(name: &str) -> Result<CommandEnd> {
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
    Ok(CommandEnd::Done)
}

/// Who needs which secret in this repo (models' keys, grants in hal.yaml, isolates' manifests), as the repo's
/// handle has `main` loaded; nothing outside a home repo.
fn needs(args: &Args) -> Result<BTreeMap<String, Vec<String>>> {
    if Home::open(&args.directory).is_err() {
        return Ok(BTreeMap::new());
    }
    let handle = super::remote::handle(args)?;
    let catalogue = super::remote::catalogue(handle.as_ref(), &Command::Catalogue)?;
    Ok(catalogue.secrets.into_iter().map(|need| (need.name, need.needed_by)).collect())
}

fn list(args: &Args) -> Result<CommandEnd> {
    let mut needs = needs(args)?;
    for name in secrets::names()? {
        needs.entry(name).or_default();
    }
    // Where each value comes from, as this process finds it (`hal status` says whether the daemon has it).
    let source = |name: &str| secrets::get_with_source(name).map(|(_, source)| source.as_str());
    let rows: Vec<serde_json::Value> = needs
        .iter()
        .map(|(name, users)| {
            json!({"name": name, "set": source(name).is_some(), "source": source(name), "needed_by": users})
        })
        .collect();
    if args.json {
        output::json(&rows)?;
        return Ok(CommandEnd::Done);
    }
    if rows.is_empty() {
        outln!("no secrets are needed or stored (store: {})", secrets::store_path()?.display());
        return Ok(CommandEnd::Done);
    }
    let width = needs.keys().map(String::len).max().unwrap_or(4).max(4);
    outln!("{:<width$}  {:<16}  NEEDED BY", "NAME", "SET HERE");
    for (name, users) in &needs {
        let set = source(name).map_or_else(|| "NO".to_owned(), |from| format!("yes ({from})"));
        let users = if users.is_empty() { "(stored; nothing here needs it)".to_owned() } else { users.join(", ") };
        outln!("{name:<width$}  {set:<16}  {users}");
    }
    Ok(CommandEnd::Done)
}
