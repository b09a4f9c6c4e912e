//! What a catalogue and a status report say: helps, isolates and the secrets they need from what is loaded, and
//! the engine's state with the warnings about trust and frozen threads.

use std::collections::BTreeMap;

use hal_runner::model::SecretLookup;
use hal_sandbox::catalog::IsolateEntry;
use hal_store::{Home, ThreadStatus};

use crate::error::DaemonError;
use crate::loaded::Loaded;
use crate::protocol::{
    AtTip, CallLimits, Catalogue, DaemonInfo, FunctionReport, Granted, IsolateDetails, IsolateReport, KeyReport,
    ModelReport, SecretNeed, StatusReport,
};

/// What `loaded` offers, with whether `secrets` has each model's key.
pub(crate) fn catalogue(loaded: &Loaded, secrets: &SecretLookup) -> Catalogue {
    let catalog = loaded.runner.catalog();
    let settings = &catalog.settings;
    let models = settings
        .models
        .iter()
        .map(|(name, model)| ModelReport {
            name: name.clone(),
            provider: model.provider.clone(),
            model: model.model.clone(),
            base_url: model.base_url.clone(),
            key: model.key.as_ref().map(|key| KeyReport { secret: key.clone(), set: secrets(key).is_some() }),
        })
        .collect();
    Catalogue {
        main: loaded.main.map(|main| main.to_string()),
        helps: catalog.helps.iter().filter(|e| e.spec.is_some()).map(|e| e.name.clone()).collect(),
        agents: catalog.agents.iter().filter(|e| e.spec.is_some()).map(|e| e.name.clone()).collect(),
        models,
        tasks: settings.tasks.clone(),
        isolates: loaded.isolates.iter().map(isolate_report).collect(),
        tools: loaded.runner.tools(),
        problems: loaded.problems.clone(),
        warnings: warnings(loaded),
        secrets: secret_needs(loaded),
    }
}

/// What loads but is likely a mistake: a grant in `hal.yaml` for an isolate that does not exist (a typo gives the
/// intended one nothing).
fn warnings(loaded: &Loaded) -> Vec<String> {
    let names: Vec<&str> = loaded.isolates.iter().map(|e| e.name.as_str()).collect();
    loaded
        .runner
        .catalog()
        .settings
        .sandbox
        .isolates
        .keys()
        // A grant follows a plugin's name; its versions are offered as `<name>@v<N>`.
        .filter(|granted| !names.iter().any(|name| name == granted || name.split('@').next() == Some(granted)))
        .map(|granted| {
            format!(
                "{}: sandbox.isolates grants `{granted}`, and no isolate or plugin has that name (there are: {})",
                hal_store::CONFIG_FILE,
                names.join(", ")
            )
        })
        .collect()
}

fn isolate_report(entry: &IsolateEntry) -> IsolateReport {
    let loaded = entry.isolate.as_ref().map(|isolate| IsolateDetails {
        version: isolate.manifest.version,
        description: isolate.manifest.description.clone(),
        functions: isolate
            .functions
            .iter()
            .map(|(name, description, parameters)| FunctionReport {
                name: format!("{}.{name}", entry.name),
                description: description.clone(),
                parameters: parameters.clone(),
            })
            .collect(),
        granted: Granted {
            tree: isolate.granted.tree,
            http: isolate.granted.hosts.clone(),
            secrets: isolate.granted.secrets.clone(),
        },
        asked: isolate.manifest.capabilities.clone(),
        limits: CallLimits {
            wall_ms: u64::try_from(isolate.limits.wall.as_millis()).unwrap_or(u64::MAX),
            fuel: isolate.limits.fuel,
            memory_mb: (isolate.limits.memory >> 20) as u64,
            output_kb: (isolate.limits.output >> 10) as u64,
        },
    });
    IsolateReport {
        name: entry.name.clone(),
        source: entry.source.clone(),
        loaded,
        error: entry.error.clone(),
        not_built: entry.not_built,
    }
}

/// Who needs which secret: the models' keys, the grants in `hal.yaml`, the isolates' manifests.
fn secret_needs(loaded: &Loaded) -> Vec<SecretNeed> {
    let settings = &loaded.runner.catalog().settings;
    let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |name: &str, who: String| {
        let users = needs.entry(name.to_owned()).or_default();
        if !users.contains(&who) {
            users.push(who);
        }
    };
    for (model, config) in &settings.models {
        if let Some(key) = &config.key {
            add(key, format!("model {model}"));
        }
    }
    for (isolate, policy) in &settings.sandbox.isolates {
        for name in &policy.secrets {
            add(name, format!("isolate {isolate} (granted)"));
        }
    }
    for entry in &loaded.isolates {
        if let Some(isolate) = &entry.isolate {
            for name in &isolate.manifest.capabilities.secrets {
                add(name, format!("isolate {} (asks)", entry.name));
            }
        }
    }
    needs.into_iter().map(|(name, needed_by)| SecretNeed { name, needed_by }).collect()
}

/// The most of a tip step's text the status carries (a running turn's tip may be a large tool result).
const TIP_TEXT: usize = 2_000;

/// The status: `loaded`'s catalogue, the turns in progress (`running`), and the threads of `home` that wait for
/// a person or were left `running`.
pub(crate) fn status(
    home: &Home,
    loaded: &Loaded,
    daemon: Option<DaemonInfo>,
    mut running: Vec<String>,
    secrets: &SecretLookup,
) -> Result<StatusReport, DaemonError> {
    running.sort();
    let mut waiting = Vec::new();
    let mut interrupted = Vec::new();
    // A help test's or a replay's thread waits for nobody: `hal thread list --all` shows it.
    for thread in home.list_threads()?.into_iter().filter(|t| t.purpose.is_none()) {
        let list = match thread.status {
            ThreadStatus::Pending => &mut waiting,
            ThreadStatus::Running => &mut interrupted,
            _ => continue,
        };
        // One thread that cannot be read (deleted meanwhile, a malformed pushed tip) costs its text, not the report.
        let text = home
            .resolve_thread(&thread.branch)
            .and_then(|reference| home.steps_back(&reference).next().transpose())
            .unwrap_or_else(|error| {
                tracing::warn!(target: "hal_daemon", branch = %thread.branch, %error, "cannot read a thread's tip");
                None
            })
            .map(|step| step.text.chars().take(TIP_TEXT).collect())
            .unwrap_or_default();
        list.push(AtTip { thread, text });
    }
    let mut catalogue = catalogue(loaded, secrets);
    catalogue.warnings.extend(trust_warnings(home)?);
    catalogue.warnings.extend(frozen_warnings(home)?);
    let halt = hal_trust::halt::halt_state(home)?;
    catalogue.warnings.extend(halt.problem);
    Ok(StatusReport { daemon, catalogue, running, waiting, interrupted, halt: halt.halt })
}

/// What is in the history but not believed (a change to `hal.yaml` or a key nobody trusted signed), and a repo
/// whose `hal.yaml` never named owners.
fn trust_warnings(home: &Home) -> Result<Vec<String>, DaemonError> {
    let keyring = hal_trust::Keyring::load(home)?;
    let mut warnings: Vec<String> = keyring
        .problems
        .iter()
        .map(|p| format!("{} at {}: {}", p.place, &p.commit.to_string()[..10], p.text))
        .collect();
    if keyring.owners_from.is_none() {
        warnings.push(format!(
            "{}: names no owners, so no key counts and nothing signed is believed; add `owners:` with your name and \
             key (the one `hal init` prints) and commit it signed (`git commit -S`)",
            hal_store::CONFIG_FILE
        ));
    }
    Ok(warnings)
}

/// How many frozen threads `hal status` names; it counts the rest.
const FROZEN_NAMED: usize = 20;

/// The threads whose branch someone moved back or sideways: HAL acts on none of them until an owner unfreezes it.
fn frozen_warnings(home: &Home) -> Result<Vec<String>, DaemonError> {
    let mut frozen = Vec::new();
    for thread in home.threads()? {
        // One thread that cannot be read (deleted meanwhile) costs its line, not the report.
        if let Some(left) = hal_runner::plan::moved_from(home, &thread).ok().flatten() {
            frozen.push((thread, left));
        }
    }
    let mut warnings: Vec<String> = frozen
        .iter()
        .take(FROZEN_NAMED)
        .map(|(thread, left)| {
            format!(
                "thread {} is frozen: its branch was moved from {}, where HAL left it, to {}; look at it, then `hal \
                 thread unfreeze {}`",
                thread.id,
                &left.to_string()[..10],
                &thread.tip.to_string()[..10],
                thread.id
            )
        })
        .collect();
    if frozen.len() > FROZEN_NAMED {
        warnings.push(format!("and {} more frozen threads", frozen.len() - FROZEN_NAMED));
    }
    Ok(warnings)
}
