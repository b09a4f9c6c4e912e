//! `hal help …`: the catalogue of helps and checking help files.

use std::path::Path;

use anyhow::{Context, Result};
use hal_runner::Catalog;
use hal_runner::catalog::HelpEntry;
use hal_spec::{Agent, Help, SpecError};
use hal_store::Home;

use hal_daemon::protocol::Command;

use super::CommandEnd;
use crate::cli::{Args, HelpCommand};
use crate::output;

/// Run one help command.
pub fn run(args: &Args, command: &HelpCommand) -> Result<CommandEnd> {
    match command {
        HelpCommand::List => list(args),
        HelpCommand::New { name } => new(args, name),
        HelpCommand::Show { name } => show(args, name),
        HelpCommand::Validate { files } => validate(args, files),
        HelpCommand::Run { name, text, thread, agent, idempotency_key } => {
            let text =
                if text.len() == 1 && text[0] == "-" { super::thread::read_stdin_text()? } else { text.join(" ") };
            let key = idempotency_key.as_deref();
            super::run::help_run(args, agent, name, &text, thread.as_deref(), key)
        }
        HelpCommand::Test { name, agent, iterations } => super::help_test::run(args, agent, name, *iterations),
        HelpCommand::Add { source, name } => super::help_add::add(args, source, name.as_deref()),
        HelpCommand::Update { name } => super::help_add::update(args, name),
    }
}

/// The built-in helps, replaced by those committed on main when run in a home repo.
fn catalogue(args: &Args) -> Result<Vec<HelpEntry>> {
    match Home::open(&args.directory) {
        Ok(home) => Ok(Catalog::load(&home)?.helps),
        Err(_) => Ok(Catalog::builtin().helps),
    }
}

/// The skeleton `hal help new` writes, with `NAME` for the help's name.
const SKELETON: &str = include_str!("help_skeleton.yaml");

/// `hal help new <name>`: a commented skeleton in `helps/<name>.yaml` of the work tree, never over a file.
fn new(args: &Args, name: &str) -> Result<CommandEnd> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    anyhow::ensure!(
        valid,
        "{name:?} cannot name a help: use lowercase letters, digits, `-` and `_` (starting with a letter or digit), \
         as a help's `commands` name it"
    );
    let root = match Home::open(&args.directory) {
        Ok(home) => home.repo().workdir().map(Path::to_owned).unwrap_or_else(|| args.directory.clone()),
        Err(_) => args.directory.clone(),
    };
    let relative = format!("helps/{name}.yaml");
    let path = root.join(&relative);
    std::fs::create_dir_all(root.join("helps"))
        .with_context(|| format!("creating {}", root.join("helps").display()))?;
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::bail!("{} exists; it is left as it is (edit it, or pick another name)", path.display())
        }
        Err(error) => return Err(anyhow::Error::new(error).context(format!("creating {}", path.display()))),
    };
    std::io::Write::write_all(&mut file, SKELETON.replace("NAME", name).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    if args.json {
        output::json(&serde_json::json!({"help": name, "file": path}))?;
    } else {
        outln!("wrote {}", path.display());
        outln!("next: edit it, check it with `hal help validate {relative}`, commit it on main,");
        outln!("      then `hal help run {name} \"a request\"` (or `hal help test {name}`)");
    }
    Ok(CommandEnd::Done)
}

fn list(args: &Args) -> Result<CommandEnd> {
    let entries = catalogue(args)?;
    if args.json {
        output::json(&entries)?;
        return Ok(CommandEnd::Done);
    }
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    let source_width = entries.iter().map(|e| e.source.to_string().chars().count()).max().unwrap_or(0);
    for entry in &entries {
        let about = match (&entry.spec, &entry.error) {
            (Some(help), _) => help.description.clone(),
            (None, Some(error)) => format!("INVALID: {}", error.lines().next().unwrap_or_default()),
            (None, None) => String::new(),
        };
        outln!("{:<width$}  {:<source_width$}  {about}", entry.name, entry.source.to_string());
    }
    Ok(CommandEnd::Done)
}

fn show(args: &Args, name: &str) -> Result<CommandEnd> {
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
    Ok(CommandEnd::Done)
}

/// The names a help's `commands` may use, as the repo's handle has `main` loaded: tools (a group selects all of
/// its `group.*`), isolates and plugins that are not built yet (their functions are not known before they are),
/// and helps.
struct Known {
    tools: Vec<String>,
    helps: Vec<String>,
    /// Isolates and plugin versions that did not load, with whether they are only not built yet.
    unloaded: Vec<(String, bool)>,
}

impl Known {
    /// `None` outside a home repo, where only the schema is checked.
    fn of(args: &Args, files: &[std::path::PathBuf]) -> Result<Option<Known>> {
        if Home::open(&args.directory).is_err() {
            return Ok(None);
        }
        let handle = super::remote::handle(args)?;
        let catalogue = super::remote::catalogue(handle.as_ref(), &Command::Catalogue)?;
        let mut helps = catalogue.helps;
        // Helps checked together may call each other before any of them is on main.
        helps.extend(files.iter().filter_map(|file| Some(file.file_stem()?.to_string_lossy().into_owned())));
        let unloaded =
            catalogue.isolates.into_iter().filter(|i| i.loaded.is_none()).map(|i| (i.name, i.not_built)).collect();
        Ok(Some(Known { tools: catalogue.tools, helps, unloaded }))
    }

    /// Why `command` names nothing a help can call, with the closest names; `None` when it names something.
    fn unknown(&self, command: &str) -> Option<String> {
        let callable = hal_spec::Callable::new(&self.tools, self.helps.iter().map(String::as_str));
        if callable.names(command) {
            return None;
        }
        let group = command.split('.').next().unwrap_or(command);
        match self.unloaded.iter().find(|(name, _)| name == group) {
            Some((_, true)) => return None,
            Some((name, false)) => {
                return Some(format!("`{command}`: isolate `{name}` does not load (see `hal isolate show {name}`)"));
            }
            None => {}
        }
        let hint = match callable.closest(command).as_slice() {
            [] => "`hal isolate list` and `hal help list` show what there is".to_owned(),
            close => format!("did you mean {}?", hal_spec::either(close)),
        };
        Some(format!("`{command}` is neither a tool, a group of tools, nor a help on main: {hint}"))
    }
}

fn validate(args: &Args, files: &[std::path::PathBuf]) -> Result<CommandEnd> {
    let known = Known::of(args, files)?;
    let mut results = Vec::new();
    let mut unreadable = false;
    for file in files {
        let path = args.directory.join(file);
        let shown = file.display().to_string();
        let outcome = match std::fs::read_to_string(&path) {
            Ok(text) => check(&shown, &path, &text, known.as_ref()).err().map(|e| e.to_string()),
            Err(error) => {
                unreadable = true;
                Some(format!("error: {shown}: cannot read: {error}"))
            }
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
    // A file that cannot be read is a usage error (2), not an invalid file (1).
    Ok(match (unreadable, invalid) {
        (true, _) => CommandEnd::Exit(super::EXIT_USAGE),
        (false, 0) => CommandEnd::Done,
        (false, _) => CommandEnd::Invalid,
    })
}

/// Agents live in an `agents/` directory; everything else is checked as a help, with its commands resolved
/// against `known` when there is a home repo.
fn check(shown: &str, path: &Path, text: &str, known: Option<&Known>) -> Result<(), SpecError> {
    let is_agent = path.parent().and_then(Path::file_name).is_some_and(|dir| dir == "agents");
    match (is_agent, known) {
        (true, _) => Agent::parse(shown, text).map(drop),
        (false, Some(known)) => Help::parse_resolving(shown, text, |command| known.unknown(command)).map(drop),
        (false, None) => Help::parse(shown, text).map(drop),
    }
}
