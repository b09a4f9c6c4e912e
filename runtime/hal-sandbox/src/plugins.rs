//! Plugins: what a plugin version is (`plugins/<name>/v<N>/`, its manifest checked against its place, never changed
//! once on `main`), how one is built and loaded, and the tools a help uses to build and test a plugin on its own
//! thread (`plugins.build`, `plugins.test`). The versions on `main` are offered by [`crate::load`].

use std::path::PathBuf;
use std::sync::Arc;

use hal_model::ToolSpec;
use hal_runner::tools::{BoxFuture, Tool, ToolContext, ToolResult, Toolbox};
use hal_spec::{PluginManifest, PluginTest, Settings};
use hal_store::StepKind;
use serde_json::{Value, json};

use crate::capabilities::Granted;
use crate::host::{CallContext, Isolate, Sandbox};
use crate::limits::IsolateLimits;

/// Where plugins live in a tree.
pub const PLUGINS_DIR: &str = "plugins";
/// Failed test runs of one plugin version on a thread before `plugins.test` refuses to go on, unless the help's
/// `config.attempts` says otherwise.
pub const DEFAULT_ATTEMPTS: u64 = 3;

/// Files of a plugin version: paths relative to its directory, with their contents.
pub type PluginFiles = Vec<(String, Vec<u8>)>;

/// One plugin version in a tree: `plugins/<name>/v<version>/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PluginVersion {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: u32,
}

impl PluginVersion {
    /// Its directory.
    pub fn dir(&self) -> String {
        format!("{PLUGINS_DIR}/{}/v{}", self.name, self.version)
    }
}

/// The rule that a plugin version on `main` never changes (a change is a new version directory), as the guard of a
/// merge: it freezes each `plugins/<name>/v<N>/` that holds a file.
pub struct Published;

impl hal_store::MergeGuard for Published {
    fn frozen_dir(&self, path: &str) -> Option<String> {
        let mut parts = path.split('/');
        let (plugins, name, version) = (parts.next()?, parts.next()?, parts.next()?);
        let numbered =
            version.len() > 1 && version.starts_with('v') && version[1..].bytes().all(|b| b.is_ascii_digit());
        (plugins == PLUGINS_DIR && numbered && parts.next().is_some()).then(|| format!("{plugins}/{name}/{version}"))
    }
}

/// The plugin versions among `files` (paths of a tree), sorted by name, then version.
pub fn versions_in<'a>(files: impl Iterator<Item = &'a str>) -> Vec<PluginVersion> {
    let mut versions: Vec<PluginVersion> = files
        .filter_map(|path| {
            let rest = path.strip_prefix(&format!("{PLUGINS_DIR}/"))?.strip_suffix("/plugin.yaml")?;
            let (name, version) = rest.split_once('/')?;
            let version = version.strip_prefix('v')?.parse().ok()?;
            (!name.contains('/')).then(|| PluginVersion { name: name.to_owned(), version })
        })
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// How far [`read_plugin`] checks a manifest's argument schemas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schemas {
    /// Against the metaschema when offered, compiled at each function's first call: the versions on main, many of
    /// which are never called.
    Checked,
    /// Compiled now: a plugin being written, whose author should hear of a schema that cannot compile.
    Compiled,
}

/// A plugin version's manifest and files (paths relative to its directory), checked against its place.
pub fn read_plugin(
    version: &PluginVersion,
    files: PluginFiles,
    schemas: Schemas,
) -> Result<(PluginManifest, PluginFiles), crate::Unusable> {
    let dir = version.dir();
    let text = files
        .iter()
        .find(|(path, _)| path == "plugin.yaml")
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .ok_or_else(|| format!("{dir} has no plugin.yaml"))?;
    let file = format!("{dir}/plugin.yaml");
    let manifest = match schemas {
        Schemas::Checked => PluginManifest::parse(&file, &text),
        Schemas::Compiled => PluginManifest::parse_compiled(&file, &text),
    }
    .map_err(|e| e.to_string())?;
    if manifest.name != version.name || manifest.version != version.version {
        return Err(crate::Unusable(format!(
            "{dir}/plugin.yaml says name `{}`, version {}: they must be the directory's ({}, {})",
            manifest.name, manifest.version, version.name, version.version
        )));
    }
    Ok((manifest, files))
}

/// Load a built plugin into `sandbox` as the isolate `isolate` (its name, or `<name>@v<N>`), with what
/// `settings` grants the plugin's name.
pub fn load_plugin(
    sandbox: &Sandbox,
    settings: &Settings,
    manifest: &PluginManifest,
    isolate: &str,
    wasm: &[u8],
) -> Result<Isolate, crate::Unusable> {
    let policy = settings.sandbox.isolates.get(&manifest.name);
    let granted = Granted::new(&manifest.name, &manifest.capabilities, policy, false);
    let limits =
        IsolateLimits::resolve(policy.map(|p| p.limits).unwrap_or_default(), manifest.limits, settings.sandbox.limits);
    sandbox.load(wasm, manifest.as_isolate(isolate), granted, limits, false)
}

/// Build a plugin version: Python with componentize-py and HAL's glue, Rust as a crate (like a repo isolate).
pub fn build(
    manifest: &PluginManifest,
    files: &[(String, Vec<u8>)],
    cache: &std::path::Path,
) -> Result<Vec<u8>, crate::Unusable> {
    match manifest.language.as_deref() {
        Some("rust") => {
            let crate_files: Vec<(String, Vec<u8>)> =
                files.iter().filter(|(path, _)| path != "plugin.yaml" && path != "tests.yaml").cloned().collect();
            crate::source::build(&manifest.name, &crate_files, cache)
        }
        _ => crate::python::build(manifest, files, cache),
    }
}

/// The component of a plugin version built before, or why its build failed, if the cache holds either: never
/// builds.
pub fn cached(
    manifest: &PluginManifest,
    files: &[(String, Vec<u8>)],
    cache: &std::path::Path,
) -> Option<Result<Vec<u8>, crate::Unusable>> {
    match manifest.language.as_deref() {
        Some("rust") => {
            let crate_files: Vec<(String, Vec<u8>)> =
                files.iter().filter(|(path, _)| path != "plugin.yaml" && path != "tests.yaml").cloned().collect();
            crate::source::cached(&manifest.name, &crate_files, cache)
        }
        _ => crate::python::cached(manifest, files, cache),
    }
}

#[derive(Clone, Copy)]
enum PluginJob {
    Build,
    Test,
}

struct PluginTool {
    spec: ToolSpec,
    kind: PluginJob,
    sandbox: Arc<Sandbox>,
    settings: Settings,
    cache: Option<PathBuf>,
}

/// Offer `plugins.build` and `plugins.test`: build, and build and test, a plugin version in the thread's tree.
pub fn add_plugin_tools(
    toolbox: &mut Toolbox,
    sandbox: &Arc<Sandbox>,
    settings: &Settings,
) -> Result<(), hal_runner::tools::InvalidSchema> {
    let parameters = json!({"type": "object", "required": ["name", "version"], "additionalProperties": false,
        "properties": {"name": {"type": "string", "description": "The plugin's name (plugins/<name>/)"},
            "version": {"type": "integer", "minimum": 1, "description": "Its version N (plugins/<name>/v<N>/)"}}});
    let tools = [
        (
            PluginJob::Build,
            "plugins.build",
            "Build the plugin plugins/<name>/v<version>/ of this thread (plugin.yaml, plugin.py) into a WebAssembly \
             component. Returns what it offers, or the build's errors (Python syntax and import errors included).",
        ),
        (
            PluginJob::Test,
            "plugins.test",
            "Build the plugin plugins/<name>/v<version>/ of this thread and run its tests.yaml in the sandbox. \
             Returns each case that failed and why, or that all passed.",
        ),
    ];
    for (kind, name, description) in tools {
        toolbox.add(Arc::new(PluginTool {
            spec: ToolSpec {
                name: name.to_owned(),
                description: description.to_owned(),
                parameters: parameters.clone(),
            },
            kind,
            sandbox: sandbox.clone(),
            settings: settings.clone(),
            cache: sandbox.cache_dir().map(std::path::Path::to_owned),
        }))?;
    }
    Ok(())
}

impl Tool for PluginTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, arguments: Value, context: &'a mut ToolContext) -> BoxFuture<'a, ToolResult> {
        Box::pin(async move {
            let name = arguments.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let version = arguments.get("version").and_then(Value::as_u64).unwrap_or_default();
            let version = PluginVersion { name, version: u32::try_from(version).unwrap_or(u32::MAX) };
            let limit = context.config().get("attempts").and_then(Value::as_u64).unwrap_or(DEFAULT_ATTEMPTS);
            if matches!(self.kind, PluginJob::Test) {
                let failed = failed_tests(context, &version);
                if failed >= limit {
                    return ToolResult::error(format!(
                        "{} failed its tests {failed} times, the limit (config.attempts of the help, default \
                         {DEFAULT_ATTEMPTS}): finish with ERROR and the last failure",
                        version.dir()
                    ));
                }
            }
            let files = match plugin_files(context, &version) {
                Ok(files) => files,
                Err(error) => return ToolResult::error(error),
            };
            let fork = context.fork();
            let (kind, sandbox, settings, cache) =
                (self.kind, self.sandbox.clone(), self.settings.clone(), self.cache.clone());
            let work = tokio::task::spawn_blocking(move || {
                build_and_test(kind, &sandbox, &settings, cache.as_deref(), &version, files, fork)
            });
            match work.await {
                Ok(Ok(report)) => ToolResult::ok(report),
                Ok(Err(report)) => ToolResult::error(report),
                Err(error) => ToolResult::error(format!("the build's worker failed: {error}")),
            }
        })
    }
}

/// The files of `version` as the call sees the thread's tree (its own writes included).
fn plugin_files(context: &ToolContext, version: &PluginVersion) -> Result<PluginFiles, String> {
    let prefix = format!("{}/", version.dir());
    let mut files = Vec::new();
    let listed = context.list().map_err(|e| e.to_string())?;
    let mine: Vec<(&str, u64)> =
        listed.iter().filter_map(|(path, size)| Some((path.strip_prefix(&prefix)?, *size))).collect();
    // The same bounds as loading it from main will hold it to, from the sizes alone, before anything is read.
    crate::load::check_sizes(&version.dir(), mine.iter().copied())?;
    for (relative, _) in mine {
        if let Some(content) = context.read(&format!("{prefix}{relative}")).map_err(|e| e.to_string())? {
            files.push((relative.to_owned(), content));
        }
    }
    if files.is_empty() {
        return Err(format!(
            "this thread has no {}/: write plugin.yaml, plugin.py and tests.yaml there first",
            version.dir()
        ));
    }
    Ok(files)
}

/// How many earlier `plugins.test` calls on this thread failed for `version`.
fn failed_tests(context: &ToolContext, version: &PluginVersion) -> u64 {
    let marker = format!("{} ", version.dir());
    context.journal().with(|home| {
        let Ok(thread) = home.resolve_thread(context.thread()) else { return 0 };
        home.steps_back(&thread)
            .take(2000)
            .filter_map(Result::ok)
            .filter(|step| {
                step.kind == StepKind::Tool
                    && step.fact(hal_runner::record::fact::TOOL) == Some("plugins.test")
                    && step.fact(hal_runner::record::fact::OUTCOME) == Some("error")
                    && step.text.starts_with(&marker)
            })
            .count() as u64
    })
}

/// Build `version` (and for [`PluginJob::Test`] run its tests): the report, `Err` when the build or a test fails.
#[allow(clippy::too_many_arguments)]
fn build_and_test(
    kind: PluginJob,
    sandbox: &Sandbox,
    settings: &Settings,
    cache: Option<&std::path::Path>,
    version: &PluginVersion,
    files: PluginFiles,
    tree: ToolContext,
) -> Result<String, String> {
    let dir = version.dir();
    let fail = |what: String| format!("{dir} {what}");
    let cache = cache.ok_or_else(|| fail("cannot be built: there is no cache directory".to_owned()))?;
    let (manifest, files) =
        read_plugin(version, files, Schemas::Compiled).map_err(|e| fail(format!("is invalid: {e}")))?;
    if manifest.language.as_deref() == Some("rust") {
        // Building Rust runs the crate's build scripts and macros on this machine: only what a person merged.
        return Err(fail(
            "is Rust: HAL builds Rust plugins only from main, after a person merged them; write this one in Python"
                .to_owned(),
        ));
    }
    let tests_text =
        files.iter().find(|(path, _)| path == "tests.yaml").map(|(_, b)| String::from_utf8_lossy(b).into_owned());
    let wasm = build(&manifest, &files, cache).map_err(|e| fail(format!("does not build:\n{e}")))?;
    // Code no person has reviewed gets none of the grants of hal.yaml: no hosts, no secrets (only the limits).
    let mut unreviewed = settings.clone();
    unreviewed.sandbox.isolates.clear();
    let isolate = load_plugin(sandbox, &unreviewed, &manifest, &version.name, &wasm)
        .map_err(|e| fail(format!("built, but does not load: {e}")))?;
    let offers: Vec<&str> = isolate.functions.iter().map(|(name, _, _)| name.as_str()).collect();
    let built = format!("built: {} MB, offers {}", wasm.len() / 1_000_000, offers.join(", "));
    if matches!(kind, PluginJob::Build) {
        return Ok(format!("{dir} {built}"));
    }
    let text = tests_text.ok_or_else(|| fail("has no tests.yaml: write at least one case".to_owned()))?;
    let cases = PluginTest::parse_all(&format!("{dir}/tests.yaml"), &text)
        .map_err(|e| fail(format!("has invalid tests: {e}")))?;
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let context =
            CallContext { tree: Some(Box::new(tree.fork())), http: false, secret: Arc::new(|_| None), progress: None };
        let outcome = sandbox
            .call(&isolate, &case.call, &case.arguments.to_string(), context)
            .map(|output| output.result)
            .map_err(|error| error.to_string());
        if let Some(problem) = case.check(&outcome) {
            let label = case.name.clone().unwrap_or_else(|| format!("case {}", n + 1));
            failures.push(format!("- {label}: {}({}) {problem}", case.call, case.arguments));
        }
    }
    if failures.is_empty() {
        Ok(format!("{dir} {built}; all {} tests pass", cases.len()))
    } else {
        Err(format!("{dir} {built}; {} of {} tests fail:\n{}", failures.len(), cases.len(), failures.join("\n")))
    }
}
