//! What a home repo offers: its helps (built-ins, replaced by files on `main`) and its settings (`hal.yaml`).

use gix::ObjectId;
use hal_spec::{Agent, Help, Settings, SpecError};
use hal_store::{CONFIG_FILE, Home};
use serde::Serialize;

use crate::error::RunError;

/// Directory on `main` that holds a home repo's helps.
pub const HELPS_DIR: &str = "helps";
/// Directory on `main` that holds a home repo's agents.
pub const AGENTS_DIR: &str = "agents";
/// The agent a run uses when none is named: HAL, the base agent.
pub const DEFAULT_AGENT: &str = "hal";

/// Where a help came from; shown (and serialized) as `built-in` or `main:<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Compiled into HAL.
    Builtin,
    /// A file on `main`.
    Main {
        /// Its path in the tree.
        path: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Builtin => f.write_str("built-in"),
            Source::Main { path } => write!(f, "main:{path}"),
        }
    }
}

/// One file of the catalogue (a help or an agent), valid or not.
#[derive(Debug, Clone, Serialize)]
pub struct Entry<T> {
    /// Its name.
    pub name: String,
    /// Where it came from.
    #[serde(serialize_with = "as_text")]
    pub source: Source,
    /// Whether a file on `main` replaces a built-in of this name.
    pub overrides_builtin: bool,
    /// The git blob id of its text: the exact version.
    #[serde(serialize_with = "hal_store::serialize_id")]
    pub blob: ObjectId,
    /// The parsed file, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<T>,
    /// Why it is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The YAML text.
    #[serde(skip)]
    pub text: String,
}

/// A help of the catalogue.
pub type HelpEntry = Entry<Help>;
/// An agent of the catalogue.
pub type AgentEntry = Entry<Agent>;

fn as_text<S: serde::Serializer>(source: &Source, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(source)
}

impl<T> Entry<T> {
    fn new(
        dir: &str,
        name: String,
        source: Source,
        text: String,
        parse: impl Fn(&str, &str) -> Result<T, SpecError>,
    ) -> Entry<T> {
        let file = match &source {
            Source::Builtin => format!("built-in {dir}/{name}.yaml"),
            Source::Main { path } => format!("main:{path}"),
        };
        let (spec, error) = match parse(&file, &text) {
            Ok(spec) => (Some(spec), None),
            Err(error) => (None, Some(error.to_string())),
        };
        let blob = blob_id(text.as_bytes());
        Entry { name, source, overrides_builtin: false, blob, spec, error, text }
    }
}

/// Built-in entries, replaced or joined by the files of `dir` on `main`, sorted by name.
fn merged<T>(
    home: Option<(&Home, ObjectId)>,
    dir: &str,
    builtins: &[(&str, &str)],
    parse: impl Fn(&str, &str) -> Result<T, SpecError> + Copy,
) -> Result<Vec<Entry<T>>, RunError> {
    let mut entries: Vec<Entry<T>> = builtins
        .iter()
        .map(|(name, text)| Entry::new(dir, (*name).to_owned(), Source::Builtin, (*text).to_owned(), parse))
        .collect();
    if let Some((home, main)) = home {
        for (file, bytes) in home.files_in(main, dir)? {
            let Some(name) = file.strip_suffix(".yaml") else { continue };
            let source = Source::Main { path: format!("{dir}/{file}") };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut entry = Entry::new(dir, name.to_owned(), source, text, parse);
            match entries.iter_mut().find(|e| e.name == name) {
                Some(existing) => {
                    entry.overrides_builtin = true;
                    *existing = entry;
                }
                None => entries.push(entry),
            }
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The git blob id of `bytes`.
fn blob_id(bytes: &[u8]) -> ObjectId {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, bytes)
        .unwrap_or_else(|_| gix::hash::Kind::Sha1.null())
}

/// The helps, agents and settings in force at one commit of `main`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Every help, sorted by name.
    pub helps: Vec<HelpEntry>,
    /// Every agent, sorted by name.
    pub agents: Vec<AgentEntry>,
    /// `hal.yaml`, or the defaults when it is absent.
    pub settings: Settings,
    /// Why `hal.yaml` is invalid, if it is (the defaults are used meanwhile).
    pub settings_error: Option<String>,
}

impl Catalog {
    /// Only what is compiled into HAL (outside a home repo).
    pub fn builtin() -> Catalog {
        Catalog::at(None).unwrap_or_default()
    }

    /// The built-ins replaced by the helps and agents committed on `main`, and the `hal.yaml` in force: that of the
    /// newest change on `main` an owner signed (`main`'s own while no `hal.yaml` ever named owners). A change nobody
    /// trusted signed is not applied ([`hal_trust::Keyring`] reports it).
    pub fn load(home: &Home) -> Result<Catalog, RunError> {
        let main = home.main_tip()?;
        let keyring = hal_trust::Keyring::load(home).map_err(RunError::from_trust)?;
        // Helps and agents from the newest `main` an owner signed (or HAL merged for one): a file pushed to main by
        // anyone else is not in force until an owner signs a commit on top of it.
        let mut catalog = Catalog::at(keyring.main_from.map(|at| (home, at)))?;
        if let Some(rewritten) = keyring.rewritten {
            catalog.settings_error = Some(rewritten);
            return Ok(catalog);
        }
        let settings_at = keyring.settings_from.or(main);
        if let Some(at) = settings_at {
            match home.file_at_most(at, CONFIG_FILE, hal_store::MAX_SPEC_BYTES) {
                Ok(Some(bytes)) => match Settings::parse(CONFIG_FILE, &String::from_utf8_lossy(&bytes)) {
                    Ok(settings) => catalog.settings = settings,
                    Err(error) => catalog.settings_error = Some(error.to_string()),
                },
                Ok(None) => {}
                Err(error @ hal_store::StoreError::TooLarge { .. }) => catalog.settings_error = Some(error.to_string()),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(catalog)
    }

    fn at(home: Option<(&Home, ObjectId)>) -> Result<Catalog, RunError> {
        Ok(Catalog {
            helps: merged(home, HELPS_DIR, hal_spec::builtin::HELPS, Help::parse)?,
            agents: merged(home, AGENTS_DIR, hal_spec::builtin::AGENTS, Agent::parse)?,
            settings: Settings::default(),
            settings_error: None,
        })
    }

    /// This catalogue with the previous valid version kept in force for every help and agent that is invalid
    /// now, and `previous`'s settings when `hal.yaml` is invalid now. The errors stay recorded, so they are
    /// still reported; a file that was never valid stays unusable.
    pub fn keeping_valid_from(mut self, previous: &Catalog) -> Catalog {
        fn keep<T: Clone>(now: &mut [Entry<T>], before: &[Entry<T>]) {
            for entry in now.iter_mut().filter(|e| e.spec.is_none()) {
                if let Some(old) = before.iter().find(|old| old.name == entry.name && old.spec.is_some()) {
                    entry.spec.clone_from(&old.spec);
                    entry.blob = old.blob;
                    entry.text.clone_from(&old.text);
                }
            }
        }
        keep(&mut self.helps, &previous.helps);
        keep(&mut self.agents, &previous.agents);
        if self.settings_error.is_some() {
            self.settings = previous.settings.clone();
        }
        self
    }

    /// The valid agent named `name`, or an error saying why it cannot work.
    pub fn agent(&self, name: &str) -> Result<(&AgentEntry, &Agent), RunError> {
        let entry = self.agents.iter().find(|e| e.name == name).ok_or_else(|| RunError::UnknownAgent {
            name: name.to_owned(),
            known: self.agents.iter().map(|e| e.name.clone()).collect(),
        })?;
        match (&entry.spec, &entry.error) {
            (Some(agent), _) => Ok((entry, agent)),
            (None, error) => {
                Err(RunError::InvalidAgent { name: name.to_owned(), error: error.clone().unwrap_or_default() })
            }
        }
    }

    /// The help named `name`, if it exists (valid or not).
    pub fn entry(&self, name: &str) -> Option<&HelpEntry> {
        self.helps.iter().find(|e| e.name == name)
    }

    /// The valid help named `name`, or an error saying why it cannot run.
    pub fn help(&self, name: &str) -> Result<(&HelpEntry, &Help), RunError> {
        let entry = self.entry(name).ok_or_else(|| RunError::UnknownHelp {
            name: name.to_owned(),
            known: self.helps.iter().map(|e| e.name.clone()).collect(),
        })?;
        match (&entry.spec, &entry.error) {
            (Some(help), _) => Ok((entry, help)),
            (None, error) => {
                Err(RunError::InvalidHelp { name: name.to_owned(), error: error.clone().unwrap_or_default() })
            }
        }
    }

    /// The catalogue as text for a model choosing a help: each valid help's name, description and examples.
    pub fn describe_helps(&self) -> String {
        let mut text = String::new();
        for entry in &self.helps {
            let Some(help) = &entry.spec else { continue };
            text.push_str(&format!("- {}: {}\n", entry.name, help.description.trim()));
            for example in &help.examples {
                text.push_str(&format!("    example request: {}\n", example.request.trim()));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(blob_id(b"hello\n").to_string(), "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}
