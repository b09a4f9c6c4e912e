//! What the daemon has in force: the catalogue, tools and models of one commit of `main`, reloaded when `main`
//! moves. A file that stops being valid keeps its previous valid version in force and becomes a [`Problem`].

use std::sync::Arc;

use gix::ObjectId;
use hal_model::Client;
use hal_runner::model::{LiveModels, Models, SecretLookup};
use hal_runner::tools::Toolbox;
use hal_runner::{Catalog, Journal, Observer, Runner};
use hal_store::Home;
use serde::Serialize;

use crate::backchat::{self, Wake};
use crate::error::DaemonError;

/// A file on `main` that does not load, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Problem {
    /// Its path on `main` (`helps/x.yaml`, `hal.yaml`, `isolates/x`).
    pub file: String,
    /// The error, with line and field where known.
    pub error: String,
    /// Whether an earlier valid version is in force meanwhile.
    pub previous_in_force: bool,
}

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
    /// Names of the isolates offered.
    pub(crate) isolates: Vec<String>,
}

/// Load what `main` holds now. `previous` supplies the versions kept in force for files that are invalid now.
pub(crate) fn load(
    journal: &Journal,
    previous: Option<&Loaded>,
    models: &ModelSource,
    wake: Wake,
    observer: Observer,
    secrets: &SecretLookup,
) -> Result<Loaded, DaemonError> {
    let (main, catalog, left_out, toolbox) = journal.with(|home: &Home| -> Result<_, DaemonError> {
        let main = home.main_tip()?;
        let mut catalog = Catalog::load(home)?;
        if let Some(previous) = previous {
            catalog = catalog.keeping_valid_from(previous.runner.catalog());
        }
        let mut toolbox = Toolbox::new();
        backchat::add_tools(&mut toolbox, wake).map_err(DaemonError::Other)?;
        let left_out = hal_sandbox::catalog::add_repo_tools(&mut toolbox, home, &catalog.settings, secrets)
            .map_err(DaemonError::Other)?;
        Ok((main, catalog, left_out, toolbox))
    })?;
    let mut problems = Vec::new();
    let file_of = |source: &hal_runner::catalog::Source| source.to_string().trim_start_matches("main:").to_owned();
    for entry in &catalog.helps {
        if let Some(error) = &entry.error {
            problems.push(Problem {
                file: file_of(&entry.source),
                error: error.clone(),
                previous_in_force: entry.spec.is_some(),
            });
        }
    }
    for entry in &catalog.agents {
        if let Some(error) = &entry.error {
            problems.push(Problem {
                file: file_of(&entry.source),
                error: error.clone(),
                previous_in_force: entry.spec.is_some(),
            });
        }
    }
    if let Some(error) = &catalog.settings_error {
        problems.push(Problem {
            file: hal_store::CONFIG_FILE.to_owned(),
            error: error.clone(),
            previous_in_force: previous.is_some(),
        });
    }
    for (name, error) in left_out {
        problems.push(Problem { file: format!("isolates/{name}"), error, previous_in_force: false });
    }
    let isolates = {
        let mut names: Vec<String> = toolbox
            .names()
            .into_iter()
            .filter_map(|tool| tool.split_once('.').map(|(isolate, _)| isolate.to_owned()))
            .filter(|isolate| isolate != "threads" && isolate != "git")
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let models = match models {
        ModelSource::Fixed(models) => models.clone(),
        ModelSource::Live(client) => {
            Arc::new(LiveModels::new(client.clone(), catalog.settings.clone(), secrets.clone())) as Arc<dyn Models>
        }
    };
    let runner = Runner::new(journal.clone(), Arc::new(catalog), toolbox).with_observer(observer);
    Ok(Loaded { main, runner, models, problems, isolates })
}
