//! Python plugins: the plain functions of `plugin.py` compiled to an isolate component with componentize-py.
//!
//! HAL writes the glue (`hal_plugin_app.py`: `describe` from the manifest, `call` mapping a function name and
//! JSON arguments to a keyword call, exceptions to errors, results to JSON) and a helper module `hal.py` (the
//! thread's files, HTTP, secrets, log), so a plugin's own source stays short. componentize-py is provisioned on
//! first use into a virtual environment in the cache (a pinned version), and every build is cached by the
//! blake3 of everything that goes into it.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use wait_timeout::ChildExt as _;

use hal_spec::PluginManifest;

use crate::source::WIT;

/// The componentize-py version HAL builds with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// Changes when the glue changes, so old builds are not reused.
const GLUE_VERSION: &str = "1";
/// The module componentize-py is pointed at.
const APP_MODULE: &str = "hal_plugin_app";
/// Lines of build output kept in an error.
const ERROR_LINES: usize = 40;
/// Longest a build may take.
const BUILD_LIMIT: Duration = Duration::from_secs(300);
/// Longest installing componentize-py may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// HAL's services for plugin code.
const HELPER: &str = r#""""HAL's services for a plugin: the thread's files, HTTP to granted hosts, granted secrets, log lines.

Each works as far as the plugin's manifest asks and hal.yaml grants; a refusal raises an error saying which
setting would allow it.
"""
from wit_world.imports import tree, http, secrets, log


def read(path):
    """The bytes of a file of the thread, or None when there is none."""
    return tree.read(path)


def write(path, content):
    """Write a file into the thread (str is written as UTF-8)."""
    tree.write(path, content.encode("utf-8") if isinstance(content, str) else bytes(content))


def files(prefix=""):
    """(path, size) of every file under prefix."""
    return list(tree.list_files(prefix))


def fetch(url, method="GET", body=None):
    """(status, body text) of an HTTP request to a granted host."""
    response = http.fetch(method, url, body)
    return response.status, response.body


def secret(name):
    """The value of a secret the plugin declared and was granted."""
    return secrets.get(name)


def info(message):
    """A log line for the person watching."""
    log.write("info", str(message))
"#;

/// The glue for `manifest`'s functions.
fn glue(manifest: &PluginManifest) -> String {
    let functions: Vec<serde_json::Value> = manifest
        .functions
        .iter()
        .map(|f| serde_json::json!({"name": f.name, "description": f.description, "parameters": f.parameters}))
        .collect();
    let functions = serde_json::to_string(&serde_json::to_string(&functions).unwrap_or_default()).unwrap_or_default();
    format!(
        r#"# Written by HAL: connects the plain functions of plugin.py to HAL's isolate interface.
import json

import wit_world
from wit_world.imports import types
from componentize_py_types import Err

import plugin

_FUNCTIONS = json.loads({functions})
_NAMES = [f["name"] for f in _FUNCTIONS]


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return [types.FunctionSpec(f["name"], f["description"], json.dumps(f["parameters"])) for f in _FUNCTIONS]

    def call(self, function, arguments):
        if function not in _NAMES:
            raise Err("no function %r; this plugin offers %s" % (function, ", ".join(_NAMES)))
        target = getattr(plugin, function, None)
        if not callable(target):
            raise Err("plugin.py has no function %r, which plugin.yaml lists" % function)
        try:
            args = json.loads(arguments) if arguments else {{}}
            if not isinstance(args, dict):
                raise TypeError("the arguments must be a JSON object")
            result = target(**args)
        except Err:
            raise
        except BaseException as error:
            raise Err("%s: %s" % (type(error).__name__, error))
        if isinstance(result, str):
            return result
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as error:
            raise Err("the result cannot be sent as JSON: %s" % error)
"#
    )
}

/// The componentize-py program in `cache`, installed there first if need be (once per version, guarded by a
/// lock against concurrent installs), shown while it installs.
pub fn componentize_py(cache: &Path) -> Result<PathBuf, crate::Unusable> {
    let venv = cache.join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"));
    let program = venv.join("bin/componentize-py");
    let done = venv.join(".complete");
    if done.exists() {
        return Ok(program);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    let lock_path = cache.join("componentize-py.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if done.exists() {
        return Ok(program);
    }
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| {
            "building Python plugins needs Python 3.10 or newer with venv: install it (Debian or Ubuntu: \
             `apt install python3 python3-venv`)"
                .to_owned()
        })?;
    let shown = crate::progress::start(format!(
        "installing componentize-py {COMPONENTIZE_PY_VERSION} (once) into {} to build Python plugins",
        venv.display()
    ));
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new(python).args(["-m", "venv"]).arg(&venv), "creating a Python virtual environment", INSTALL_LIMIT)?;
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
        "installing componentize-py from PyPI",
        INSTALL_LIMIT,
    )?;
    std::fs::write(&done, COMPONENTIZE_PY_VERSION).map_err(|e| format!("writing {}: {e}", done.display()))?;
    shown.done();
    Ok(program)
}

/// Run `command` for at most `limit`; its output's tail in the error when it fails, and killed when it takes
/// longer (a plugin that loops when it is imported loops at build time too).
fn run(command: &mut Command, what: &str, limit: Duration) -> Result<(), String> {
    let output = tempfile::tempfile().map_err(|e| format!("{what}: {e}"))?;
    let errors = output.try_clone().map_err(|e| format!("{what}: {e}"))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(output.try_clone().map_err(|e| format!("{what}: {e}"))?))
        .stderr(Stdio::from(errors))
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let status = match child.wait_timeout(limit).map_err(|e| format!("{what}: {e}"))? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{what} did not finish within {} s and was stopped (does the plugin loop when it is imported?)",
                limit.as_secs()
            ));
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut output = output;
    let _ = output.seek(SeekFrom::Start(0)).and_then(|_| output.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    Err(format!("{what} failed:\n{}", lines[lines.len().saturating_sub(ERROR_LINES)..].join("\n")))
}

/// The component of the plugin `manifest` built from `files` before, or why componentize-py refused it, if the
/// cache holds either: never builds.
pub fn cached(
    manifest: &PluginManifest,
    files: &[(String, Vec<u8>)],
    cache: &Path,
) -> Option<Result<Vec<u8>, crate::Unusable>> {
    crate::source::lookup(&built_path(manifest, &glue(manifest), &python_sources(files), cache))
}

/// Where the component of the plugin `manifest` with the source `files` is, as `builds` has it: kept in `cache`
/// (never read here: it is loaded at its first call), built now, or why not.
pub(crate) fn located(
    manifest: &PluginManifest,
    files: &[(String, Vec<u8>)],
    cache: &Path,
    builds: crate::Builds,
) -> Result<PathBuf, crate::catalog::Missing> {
    use crate::catalog::Missing;
    let built = built_path(manifest, &glue(manifest), &python_sources(files), cache);
    let kept = match builds {
        crate::Builds::Retry => None,
        crate::Builds::Run | crate::Builds::CachedOnly if built.is_file() => Some(Ok(())),
        crate::Builds::Run | crate::Builds::CachedOnly => crate::source::failure(&built).map(Err),
    };
    match (kept, builds) {
        (Some(Ok(())), _) => Ok(built),
        (Some(Err(failed)), _) => Err(failed.into()),
        (None, crate::Builds::CachedOnly) => Err(Missing::NotBuilt),
        (None, crate::Builds::Run | crate::Builds::Retry) => {
            build(manifest, files, cache).map(|_| built).map_err(Missing::from)
        }
    }
}

/// The Python files of a plugin, by path.
fn python_sources(files: &[(String, Vec<u8>)]) -> Vec<&(String, Vec<u8>)> {
    let mut sources: Vec<&(String, Vec<u8>)> = files.iter().filter(|(path, _)| path.ends_with(".py")).collect();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    sources
}

/// Where the component of `manifest` built from `sources` with `glue` is kept.
fn built_path(manifest: &PluginManifest, glue: &str, sources: &[&(String, Vec<u8>)], cache: &Path) -> PathBuf {
    let parts = [GLUE_VERSION, COMPONENTIZE_PY_VERSION, WIT, HELPER, glue];
    let key = crate::source::content_key(&parts, sources.iter().copied());
    cache.join("plugins").join(format!("{}-{key}.wasm", manifest.name))
}

/// The component of the plugin `manifest` with the source `files` (paths relative to its version directory),
/// from the cache when this exact plugin was built before. The error of a failed build is componentize-py's
/// output (a Python syntax or import error shows there, with its line).
pub fn build(manifest: &PluginManifest, files: &[(String, Vec<u8>)], cache: &Path) -> Result<Vec<u8>, crate::Unusable> {
    let name = &manifest.name;
    let glue = glue(manifest);
    let sources = python_sources(files);
    let built = built_path(manifest, &glue, &sources, cache);
    if let Ok(bytes) = std::fs::read(&built) {
        return Ok(bytes);
    }
    let builds = cache.join("plugins");
    for (path, _) in &sources {
        crate::names::check_relative(path)?;
    }
    if !sources.iter().any(|(path, _)| path == "plugin.py") {
        return Err(crate::Unusable(format!("plugin `{name}` has no plugin.py beside its plugin.yaml")));
    }
    let program = componentize_py(cache)?;
    let fail = |what: &str, error: std::io::Error| format!("building plugin `{name}`: {what}: {error}");
    std::fs::create_dir_all(&builds).map_err(|e| fail("creating the build cache", e))?;
    let work = tempfile::Builder::new()
        .prefix(&format!("{name}-src-"))
        .tempdir_in(&builds)
        .map_err(|e| fail("creating a build directory", e))?;
    let src = work.path().join("src");
    for (path, content) in &sources {
        let target = src.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("writing the source", e))?;
        }
        std::fs::write(&target, content).map_err(|e| fail("writing the source", e))?;
    }
    std::fs::write(src.join(format!("{APP_MODULE}.py")), glue).map_err(|e| fail("writing the glue", e))?;
    std::fs::write(src.join("hal.py"), HELPER).map_err(|e| fail("writing the glue", e))?;
    std::fs::create_dir_all(work.path().join("wit")).map_err(|e| fail("writing the interface", e))?;
    std::fs::write(work.path().join("wit/isolate.wit"), WIT).map_err(|e| fail("writing the interface", e))?;
    let component = work.path().join("plugin.wasm");
    let shown = crate::progress::start(format!("building plugin `{name}` with componentize-py"));
    let mut command = Command::new(&program);
    command
        .arg("-d")
        .arg(work.path().join("wit"))
        .args(["-w", "isolate", "componentize", APP_MODULE, "-p"])
        .arg(&src)
        .arg("-o")
        .arg(&component)
        .current_dir(work.path())
        // The build imports the plugin's code on this machine: give it no secrets from the environment.
        .env_clear()
        .env("HOME", work.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    run(&mut command, &format!("building plugin `{name}` with componentize-py"), BUILD_LIMIT)
        .inspect_err(|error| crate::source::remember_failure(&built, error))?;
    shown.done();
    let bytes = std::fs::read(&component).map_err(|e| fail("reading the component", e))?;
    crate::source::keep(&built, &bytes).map_err(|e| fail("caching the component", e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_glue_names_every_function_and_escapes_the_manifest() {
        let manifest = PluginManifest::parse(
            "plugin.yaml",
            "name: q\nversion: 1\ndescription: d\nfunctions:\n  - name: say\n    description: 'it''s \"quoted\"'\n",
        )
        .expect("valid");
        let glue = glue(&manifest);
        assert!(glue.contains("import plugin") && glue.contains(r#"\"say\""#), "{glue}");
        assert!(glue.contains(r#"it's \\\"quoted\\\""#), "{glue}");
    }
}
