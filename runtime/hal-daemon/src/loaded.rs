//! What the daemon has in force: the catalogue, tools and models of one commit of `main`, reloaded when `main`
//! moves. A help or agent that stops being valid keeps its previous valid version in force, and `hal.yaml` its
//! previous settings; an isolate that stops loading is left out. Each becomes a [`Problem`].

use std::collections::BTreeMap;
use std::sync::Arc;

use gix::ObjectId;
use hal_model::Client;
use hal_runner::model::{LiveModels, Models, SecretLookup};
use hal_runner::tools::Toolbox;
use hal_runner::{Catalog, Observer, Runner, SharedHome};
use hal_sandbox::catalog::IsolateEntry;
use hal_sandbox::{Builds, Sandbox};
use hal_store::Home;

use crate::backchat::{self, Dispatch};
use crate::error::DaemonError;
use crate::protocol::{FileKind, Problem};

/// The `file` of the problem filed when the sandbox does not start.
pub(crate) const SANDBOX_PROBLEM: &str = "(the sandbox)";

/// Where model clients come from.
#[derive(Clone)]
pub(crate) enum ModelSource {
    /// The models configured in `hal.yaml`, keys from the environment.
    Live(Client),
    /// Always these (a recording, a test's scripted models).
    Fixed(Arc<dyn Models>),
}

/// Everything in force for one commit of `main`.
pub(crate) struct Loaded {
    /// The commit of `main` it was loaded from.
    pub(crate) main: Option<ObjectId>,
    /// A runner with its catalogue and tools.
    pub(crate) runner: Runner,
    /// The models.
    pub(crate) models: Arc<dyn Models>,
    /// Files that do not load.
    pub(crate) problems: Vec<Problem>,
    /// Every isolate and plugin version of the catalogue, loaded or not.
    pub(crate) isolates: Vec<IsolateEntry>,
    /// The sandbox the isolates run in (none when it could not start).
    pub(crate) sandbox: Option<Arc<Sandbox>>,
    /// Each plugin version directory on `main` with the tree id it had when this daemon first saw it.
    pub(crate) published: BTreeMap<String, ObjectId>,
}

/// The plugin version directories this daemon has seen on `main`, each with the tree id it had when first seen:
/// those of `before`, and those new on `main` now.
fn published_versions(
    home: &Home,
    main: ObjectId,
    before: Option<&BTreeMap<String, ObjectId>>,
) -> Result<BTreeMap<String, ObjectId>, DaemonError> {
    let mut published = before.cloned().unwrap_or_default();
    let files = home.list_files(main, hal_sandbox::plugins::PLUGINS_DIR)?;
    for version in hal_sandbox::plugins::versions_in(files.iter().map(|(path, _)| path.as_str())) {
        let dir = version.dir();
        if !published.contains_key(&dir)
            && let Some(id) = home.entry_id(main, &dir)?
        {
            published.insert(dir, id);
        }
    }
    Ok(published)
}

/// Before the first load: only the built-ins, no tools, no models.
pub(crate) fn empty(journal: &SharedHome) -> Loaded {
    let runner = Runner::new(journal.clone(), Arc::new(Catalog::builtin()), Toolbox::new());
    let models: Arc<dyn Models> = Arc::new(Arc::new(hal_runner::model::Recording::new(Vec::new(), Vec::new())));
    let (problems, isolates, published) = (Vec::new(), Vec::new(), BTreeMap::new());
    Loaded { main: None, runner, models, problems, isolates, sandbox: None, published }
}

/// Load what `main` of the repo at `root` holds now. `previous` supplies the versions kept in force for files
/// that are invalid now. The repo is opened afresh, so building and compiling isolates never holds the journal
/// (every turn and API call waits on it). `builds` says whether isolates and plugins not built yet are built.
#[allow(clippy::too_many_arguments)]
pub(crate) fn load(
    root: &std::path::Path,
    journal: &SharedHome,
    previous: Option<&Loaded>,
    models: &ModelSource,
    dispatch: Dispatch,
    observer: Observer,
    secrets: &SecretLookup,
    builds: Builds,
) -> Result<Loaded, DaemonError> {
    let home = Home::open(root)?;
    let main = home.main_tip()?;
    let mut catalog = Catalog::load(&home)?;
    if let Some(previous) = previous {
        catalog = catalog.keeping_valid_from(previous.runner.catalog());
    }
    let mut toolbox = Toolbox::new();
    backchat::add_tools(&mut toolbox, dispatch)?;
    let mut problems = Vec::new();
    let (sandbox, isolates) =
        match hal_sandbox::catalog::add_repo_tools(&mut toolbox, &home, &catalog.settings, secrets, builds) {
            Ok(offered) => {
                // One not built yet is not a problem: the catalogue says so, and how it gets built.
                let not_built = |name: &str| offered.entries.iter().any(|e| e.name == name && e.not_built);
                for (name, error) in offered.left_out().filter(|(name, _)| !not_built(name)) {
                    let (kind, file) = match offered.entries.iter().find(|e| e.name == name) {
                        Some(entry) if entry.source.starts_with("main:plugins/") => {
                            (FileKind::Plugin, entry.source.trim_start_matches("main:").to_owned())
                        }
                        _ => (FileKind::Isolate, format!("isolates/{name}")),
                    };
                    problems.push(Problem { kind, file, error: error.to_owned(), previous_in_force: false });
                }
                (Some(offered.sandbox), offered.entries)
            }
            Err(error) => {
                let file = SANDBOX_PROBLEM.to_owned();
                problems.push(Problem { kind: FileKind::Other, file, error: error.0, previous_in_force: false });
                (None, Vec::new())
            }
        };
    let file_of = |source: &hal_runner::catalog::Source| source.to_string().trim_start_matches("main:").to_owned();
    for entry in &catalog.helps {
        if let Some(error) = &entry.error {
            problems.push(Problem {
                kind: FileKind::Help,
                file: file_of(&entry.source),
                error: error.clone(),
                previous_in_force: entry.spec.is_some(),
            });
        }
    }
    for entry in &catalog.agents {
        if let Some(error) = &entry.error {
            problems.push(Problem {
                kind: FileKind::Agent,
                file: file_of(&entry.source),
                error: error.clone(),
                previous_in_force: entry.spec.is_some(),
            });
        }
    }
    if let Some(error) = &catalog.settings_error {
        problems.push(Problem {
            kind: FileKind::Settings,
            file: hal_store::CONFIG_FILE.to_owned(),
            error: error.clone(),
            // The previous load's settings are the owner's when its hal.yaml was valid, or when it kept valid ones
            // in force itself (an invalid hal.yaml committed over twice keeps the last valid version).
            previous_in_force: previous.is_some_and(|p| {
                p.problems
                    .iter()
                    .find(|problem| problem.kind == FileKind::Settings)
                    .is_none_or(|problem| problem.previous_in_force)
            }),
        });
    }
    let published = match main {
        Some(main) => published_versions(&home, main, previous.map(|p| &p.published))?,
        None => BTreeMap::new(),
    };
    let mut published = published;
    let mut retired = Vec::new();
    for (dir, first_seen) in &published {
        let now = main.map(|main| home.entry_id(main, dir)).transpose()?.flatten();
        // A version removed whole is retired; one whose content changed is a problem.
        let Some(now) = now else {
            retired.push(dir.clone());
            continue;
        };
        if now != *first_seen {
            problems.push(Problem {
                kind: FileKind::Plugin,
                file: format!("{dir}/"),
                error: "this plugin version changed on main after it was published, and a version never changes: \
                        restore it and put the change in a new version directory (`hal thread merge` refuses such a \
                        merge; a plain git merge or push does not)"
                    .to_owned(),
                previous_in_force: false,
            });
        }
    }
    let models = match models {
        ModelSource::Fixed(models) => models.clone(),
        ModelSource::Live(client) => {
            Arc::new(LiveModels::new(client.clone(), catalog.settings.clone(), secrets.clone())) as Arc<dyn Models>
        }
    };
    let runner = Runner::new(journal.clone(), Arc::new(catalog), toolbox).with_observer(observer);
    for dir in retired {
        published.remove(&dir);
    }
    Ok(Loaded { main, runner, models, problems, isolates, sandbox, published })
}
