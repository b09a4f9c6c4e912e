//! `hal help …`: the catalogue of helps and checking help files.

use std::path::Path;

use anyhow::Result;
use hal_runner::Catalog;
use hal_runner::catalog::HelpEntry;
use hal_spec::{Agent, Help, SpecError};
use hal_store::Home;

use super::Outcome;
use crate::cli::{Args, HelpCommand};
use crate::output;

/// Run one help command.
pub fn run(args: &Args, command: &HelpCommand) -> Result<Outcome> {
    match command {
        HelpCommand::List => list(args),
        HelpCommand::Show { name } => show(args, name),
        HelpCommand::Validate { files } => validate(args, files),
        HelpCommand::Run { name, text, thread, agent, idempotency_key } => {
            let text =
                if text.len() == 1 && text[0] == "-" { super::thread::read_stdin_text()? } else { text.join(" ") };
            let key = idempotency_key.as_deref();
            super::run::help_run(args, agent, name, &text, thread.as_deref(), key)
        }
        HelpCommand::Test { name, agent } => super::run::help_test(args, agent, name),
    }
}

/// The built-in helps, replaced by those committed on main when run in a home repo.
fn catalogue(args: &Args) -> Result<Vec<HelpEntry>> {
    match Home::open(&args.directory) {
        Ok(home) => Ok(Catalog::load(&home)?.helps),
        Err(_) => Ok(Catalog::builtin().helps),
    }
}

fn list(args: &Args) -> Result<Outcome> {
    let entries = catalogue(args)?;
    if args.json {
        output::json(&entries)?;
        return Ok(Outcome::Done);
    }
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    for entry in &entries {
        let about = match (&entry.spec, &entry.error) {
            (Some(help), _) => help.description.clone(),
            (None, Some(error)) => format!("INVALID: {}", error.lines().next().unwrap_or_default()),
            (None, None) => String::new(),
        };
        outln!("{:<width$}  {:<24}  {about}", entry.name, entry.source.to_string());
    }
    Ok(Outcome::Done)
}

fn show(args: &Args, name: &str) -> Result<Outcome> {
    let entries = catalogue(args)?;
    let Some(entry) = entries.into_iter().find(|e| e.name == name) else {
        anyhow::bail!("no help named {name:?} (see `hal help list`)");
    };
    if args.json {
        output::json(&entry)?;
    } else {
        outln!("# {} ({})", entry.name, entry.source);
        if let Some(error) = &entry.error {
            outln!("# INVALID:\n{error}");
        }
        out!("{}", entry.text);
    }
    Ok(Outcome::Done)
}

fn validate(args: &Args, files: &[std::path::PathBuf]) -> Result<Outcome> {
    let mut results = Vec::new();
    for file in files {
        let path = args.directory.join(file);
        let shown = file.display().to_string();
        let outcome = match std::fs::read_to_string(&path) {
            Ok(text) => check(&shown, &path, &text).err().map(|e| e.to_string()),
            Err(error) => Some(format!("{shown}: cannot read: {error}")),
        };
        results.push((shown, outcome));
    }
    let invalid = results.iter().filter(|(_, error)| error.is_some()).count();
    if args.json {
        let report: Vec<_> = results
            .iter()
            .map(|(file, error)| serde_json::json!({ "file": file, "valid": error.is_none(), "error": error }))
            .collect();
        output::json(&report)?;
    } else {
        for (file, error) in &results {
            match error {
                None => outln!("ok {file}"),
                Some(error) => eprintln!("{error}"),
            }
        }
    }
    Ok(if invalid == 0 { Outcome::Done } else { Outcome::Invalid })
}

/// Agents live in an `agents/` directory; everything else is checked as a help.
fn check(shown: &str, path: &Path, text: &str) -> Result<(), SpecError> {
    let is_agent = path.parent().and_then(Path::file_name).is_some_and(|dir| dir == "agents");
    if is_agent { Agent::parse(shown, text).map(drop) } else { Help::parse(shown, text).map(drop) }
}
