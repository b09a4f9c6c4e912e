//! Plugins in the sandbox: the versions on `main` offered as isolates (the newest as `<name>`, each as
//! `<name>@v<N>`), and the tools a help uses to build and test a plugin on its own thread (`plugins.build`,
//! `plugins.test`).

use std::path::PathBuf;
use std::sync::Arc;

use hal_model::ToolSpec;
use hal_runner::tools::{BoxFuture, Tool, ToolContext, ToolResult, Toolbox};
use hal_spec::{PluginManifest, PluginTest, Settings};
use hal_store::{Home, StepKind};
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

/// A plugin on `main` to offer: its isolate name, where it comes from, and its component and manifest (or why
/// it cannot be offered).
pub(crate) type FoundPlugin = (String, String, Result<(Component, PluginManifest), crate::catalog::Missing>);

/// A built plugin's component: where it is kept, for a Python plugin (whose functions its manifest gives: it is
/// loaded at its first call), or its bytes, for a Rust one (asked for its functions when loaded).
#[derive(Clone)]
pub(crate) enum Component {
    Kept(PathBuf),
    Bytes(Vec<u8>),
}

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

/// A plugin version's manifest and files (paths relative to its directory), checked against its place.
pub fn read_plugin(
    version: &PluginVersion,
    files: PluginFiles,
) -> Result<(PluginManifest, PluginFiles), crate::Unusable> {
    let dir = version.dir();
    let text = files
        .iter()
        .find(|(path, _)| path == "plugin.yaml")
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .ok_or_else(|| format!("{dir} has no plugin.yaml"))?;
    let manifest = PluginManifest::parse(&format!("{dir}/plugin.yaml"), &text).map_err(|e| e.to_string())?;
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

/// A built Python plugin as the isolate `isolate`, with what `settings` grants the plugin's name, its component at
/// `component` loaded at its first call (its functions are its manifest's, as HAL's glue answers them).
pub(crate) fn load_plugin_later(
    sandbox: &Sandbox,
    settings: &Settings,
    manifest: &PluginManifest,
    isolate: &str,
    component: PathBuf,
) -> Isolate {
    let policy = settings.sandbox.isolates.get(&manifest.name);
    let granted = Granted::new(&manifest.name, &manifest.capabilities, policy, false);
    let limits =
        IsolateLimits::resolve(policy.map(|p| p.limits).unwrap_or_default(), manifest.limits, settings.sandbox.limits);
    let functions = manifest.functions.iter().map(|f| (f.name.clone(), f.description.clone(), f.parameters.clone()));
    sandbox.load_later(component, manifest.as_isolate(isolate), granted, limits, functions.collect())
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

/// Every file under `dir` of `commit`, recursively, with paths relative to `dir`; a path that is not plain
/// (`..`, empty or absolute parts: a crafted tree) is refused, as it would be written outside the build.
pub(crate) fn files_under(home: &Home, commit: gix::ObjectId, dir: &str) -> Result<PluginFiles, String> {
    let prefix = format!("{dir}/");
    let mut files = Vec::new();
    for (path, _) in home.list_files(commit, dir).map_err(|e| e.to_string())? {
        let Some(relative) = path.strip_prefix(&prefix) else { continue };
        crate::names::check_relative(relative)?;
        if let Some(content) = home.file_at(commit, &path).map_err(|e| e.to_string())? {
            files.push((relative.to_owned(), content));
        }
    }
    Ok(files)
}

/// The files of the version in `dir`, among `files` (every file of plugins/ with its id), paths relative to `dir`;
/// a path that is not plain is refused, as in [`files_under`].
fn version_files(home: &Home, files: &[(String, gix::ObjectId)], dir: &str) -> Result<PluginFiles, String> {
    let prefix = format!("{dir}/");
    let mut found = Vec::new();
    for (path, id) in files {
        let Some(relative) = path.strip_prefix(&prefix) else { continue };
        crate::names::check_relative(relative)?;
        let blob = home.repo().find_blob(*id).map_err(|e| format!("reading {path}: {e}"))?;
        found.push((relative.to_owned(), blob.detach().data));
    }
    Ok(found)
}

/// The plugins on `main` as isolates to load: `(isolate name, source, component and manifest or why not)`. With
/// [`Builds::CachedOnly`](crate::Builds), a version the cache does not hold is not built, only said to be.
pub(crate) fn repo_plugins(home: &Home, cache: Option<&std::path::Path>, builds: crate::Builds) -> Vec<FoundPlugin> {
    use crate::catalog::Missing;
    let Some(main) = crate::catalog::main_in_force(home) else { return Vec::new() };
    // One walk of plugins/ for every version: each version's files are then read by id, never looked up again.
    let Ok(files) = home.file_ids_under(main, PLUGINS_DIR) else { return Vec::new() };
    let versions = versions_in(files.iter().map(|(path, _)| path.as_str()));
    let mut found = Vec::new();
    // Newest first within each name: `<name>` is the newest version that builds.
    let mut offered: Option<String> = None;
    for version in versions.iter().rev() {
        let built = (|| {
            if RESERVED.contains(&version.name.as_str()) {
                let reason = format!("`{}` is the name of HAL's own commands: rename the plugin", version.name);
                return Err(Missing::Invalid(reason));
            }
            let cache =
                cache.ok_or_else(|| Missing::Invalid("there is no cache directory to build plugins in".into()))?;
            let files = version_files(home, &files, &version.dir())?;
            let (manifest, files) = read_plugin(version, files)?;
            let component = match manifest.language.as_deref() {
                Some("rust") => Component::Bytes(crate::catalog::by_policy(
                    builds,
                    || cached(&manifest, &files, cache),
                    || build(&manifest, &files, cache),
                )?),
                _ => Component::Kept(crate::python::located(&manifest, &files, cache, builds)?),
            };
            Ok((component, manifest))
        })();
        let source = format!("main:{}", version.dir());
        // One the cache does not hold yet may well build: it stands for `<name>` as the daemon would have it.
        let may_serve = matches!(built, Ok(_) | Err(Missing::NotBuilt));
        if may_serve && offered.as_deref() != Some(version.name.as_str()) {
            offered = Some(version.name.clone());
            found.push((version.name.clone(), source.clone(), built.clone()));
        }
        found.push((format!("{}@v{}", version.name, version.version), source, built));
    }
    found
}

/// Names a plugin may not take: HAL's own command groups.
const RESERVED: &[&str] = &["threads", "git", "plugins", "finish"];

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
    for (path, _) in context.list().map_err(|e| e.to_string())? {
        if let Some(relative) = path.strip_prefix(&prefix)
            && let Some(content) = context.read(&path).map_err(|e| e.to_string())?
        {
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
    let (manifest, files) = read_plugin(version, files).map_err(|e| fail(format!("is invalid: {e}")))?;
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
