//! `hal help …`: the catalogue of helps and checking help files.

use std::path::Path;

use anyhow::{Context, Result};
use hal_spec::{Agent, Help, SpecError};
use hal_store::Home;
use serde::Serialize;

use super::Outcome;
use crate::cli::{Args, HelpCommand};
use crate::output;

/// Directory on `main` that holds a home repo's helps.
const HELPS_DIR: &str = "helps";

/// One help of the catalogue.
#[derive(Serialize)]
struct Entry {
    /// The help's name.
    name: String,
    /// `built-in`, or the path on main.
    source: String,
    /// Whether a repo file of this name replaces a built-in.
    overrides_builtin: bool,
    /// The parsed help, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<Help>,
    /// Why it is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The YAML text.
    #[serde(skip)]
    text: String,
}

/// Run one help command.
pub fn run(args: &Args, command: &HelpCommand) -> Result<Outcome> {
    match command {
        HelpCommand::List => list(args),
        HelpCommand::Show { name } => show(args, name),
        HelpCommand::Validate { files } => validate(args, files),
    }
}

/// The built-in helps, replaced by those committed on main when run in a home repo.
fn catalogue(args: &Args) -> Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = hal_spec::builtin::HELPS
        .iter()
        .map(|(name, text)| entry((*name).to_owned(), "built-in".to_owned(), text.to_string()))
        .collect();
    let Ok(home) = Home::open(&args.directory) else { return Ok(entries) };
    let main = home.main_tip()?.context("main has no commits")?;
    for (file, bytes) in home.files_in(main, HELPS_DIR)? {
        let Some(name) = file.strip_suffix(".yaml") else { continue };
        let source = format!("main:{HELPS_DIR}/{file}");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut repo_entry = entry(name.to_owned(), source, text);
        if let Some(existing) = entries.iter_mut().find(|e| e.name == name) {
            repo_entry.overrides_builtin = true;
            *existing = repo_entry;
        } else {
            entries.push(repo_entry);
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn entry(name: String, source: String, text: String) -> Entry {
    let file = if source == "built-in" { format!("built-in {HELPS_DIR}/{name}.yaml") } else { source.clone() };
    let (help, error) = match Help::parse(&file, &text) {
        Ok(help) => (Some(help), None),
        Err(error) => (None, Some(error.to_string())),
    };
    Entry { name, source, overrides_builtin: false, help, error, text }
}

fn list(args: &Args) -> Result<Outcome> {
    let entries = catalogue(args)?;
    if args.json {
        output::json(&entries)?;
        return Ok(Outcome::Done);
    }
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    for entry in &entries {
        let about = match (&entry.help, &entry.error) {
            (Some(help), _) => help.description.clone(),
            (None, Some(error)) => format!("INVALID: {}", error.lines().next().unwrap_or_default()),
            (None, None) => String::new(),
        };
        println!("{:<width$}  {:<24}  {about}", entry.name, entry.source);
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
        println!("# {} ({})", entry.name, entry.source);
        if let Some(error) = &entry.error {
            println!("# INVALID:\n{error}");
        }
        print!("{}", entry.text);
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
                None => println!("ok {file}"),
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
