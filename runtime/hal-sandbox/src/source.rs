//! A home repo's own Rust isolates: `isolates/<name>/` on main with a `Cargo.toml` and no prebuilt `.wasm` is
//! compiled by HAL for `wasm32-wasip2`, the same way the built-ins are.
//!
//! The crate gets HAL's interface as `wit/isolate.wit` beside its `Cargo.toml` (so it says
//! `wit_bindgen::generate!({ world: "isolate", path: "wit" })`). A build is keyed by the blake3 hash of every
//! file of the directory and of the interface, and its component is kept in the cache: the same source is never
//! built twice, on any home repo of the user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target isolates are built for.
pub const TARGET: &str = "wasm32-wasip2";
/// HAL's isolate interface, given to every crate it builds.
pub const WIT: &str = include_str!("../../../schemas/wit/isolate.wit");
/// Lines of compiler output kept in a build error.
const ERROR_LINES: usize = 40;

/// The component built from `files` (paths relative to the crate directory, with their contents), from the
/// cache when this exact source was built before. A build the compiler refused is remembered ([`cached`]
/// answers it), and tried again by the next call of this function.
pub fn build(name: &str, files: &[(String, Vec<u8>)], cache: &Path) -> Result<Vec<u8>, crate::Unusable> {
    let built = built_path(name, files, cache);
    if let Ok(bytes) = std::fs::read(&built) {
        return Ok(bytes);
    }
    let builds = cache.join("builds");
    let fail = |what: &str, error: std::io::Error| format!("building isolate `{name}`: {what}: {error}");
    std::fs::create_dir_all(&builds).map_err(|e| fail("creating the build cache", e))?;
    let source = tempfile::Builder::new()
        .prefix(&format!("{name}-src-"))
        .tempdir_in(&builds)
        .map_err(|e| fail("creating a build directory", e))?;
    for (path, content) in files {
        let target = source.path().join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("writing the source", e))?;
        }
        let mut content = content.clone();
        // The build directory may lie inside some cargo workspace (a cache under a project's target/): an empty
        // `[workspace]` table makes the crate its own workspace wherever it is built.
        if path == "Cargo.toml" && !String::from_utf8_lossy(&content).lines().any(|l| l.trim() == "[workspace]") {
            content.extend_from_slice(b"\n[workspace]\n");
        }
        std::fs::write(&target, content).map_err(|e| fail("writing the source", e))?;
    }
    std::fs::create_dir_all(source.path().join("wit")).map_err(|e| fail("writing the interface", e))?;
    std::fs::write(source.path().join("wit/isolate.wit"), WIT).map_err(|e| fail("writing the interface", e))?;
    // A target directory of its own: a shared one could hand back another build's component.
    let target_dir = source.path().join("target");
    let work = crate::progress::start(format!("building `{name}` with cargo for {TARGET}"));
    let component = compile(name, source.path(), &target_dir, &built)?;
    work.done();
    let bytes = std::fs::read(&component).map_err(|e| fail("reading the component", e))?;
    keep(&built, &bytes).map_err(|e| fail("caching the component", e))?;
    Ok(bytes)
}

/// The component built from `files` before, or why the compiler refused it, if the cache holds either: never
/// builds.
pub fn cached(name: &str, files: &[(String, Vec<u8>)], cache: &Path) -> Option<Result<Vec<u8>, crate::Unusable>> {
    lookup(&built_path(name, files, cache))
}

/// The build kept at `built`, or the failure kept beside it.
pub(crate) fn lookup(built: &Path) -> Option<Result<Vec<u8>, crate::Unusable>> {
    if let Ok(bytes) = std::fs::read(built) {
        return Some(Ok(bytes));
    }
    failure(built).map(Err)
}

/// Why the build meant for `built` failed, when that is kept beside it.
pub(crate) fn failure(built: &Path) -> Option<crate::Unusable> {
    let failed = std::fs::read_to_string(built.with_extension("failed")).ok()?;
    Some(crate::Unusable(format!(
        "{failed}\n(kept from the last build of this source: `hal isolate build` tries again)"
    )))
}

/// Keep why the build meant for `built` failed, so that a read-only command can show it without building. A
/// failure to keep it only costs a build next time.
pub(crate) fn remember_failure(built: &Path, error: &str) {
    if let Err(io) = keep(&built.with_extension("failed"), error.as_bytes()) {
        tracing::warn!(target: "hal_sandbox", path = %built.display(), %io, "cannot keep a build's failure");
    }
}

/// Where the component built from `files` is kept.
fn built_path(name: &str, files: &[(String, Vec<u8>)], cache: &Path) -> PathBuf {
    let key = content_key(&[WIT, TARGET], files.iter());
    cache.join("builds").join(format!("{name}-{key}.wasm"))
}

/// The blake3 key of a build: every part, then every file's path and content, each with its length (so no two
/// different inputs run together the same way).
pub(crate) fn content_key<'a>(parts: &[&str], files: impl Iterator<Item = &'a (String, Vec<u8>)>) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut add = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    for part in parts {
        add(part.as_bytes());
    }
    for (path, content) in files {
        add(path.as_bytes());
        add(content);
    }
    hasher.finalize().to_hex().to_string()
}

/// Put `bytes` in the cache at `path` through a temporary file of its own, renamed into place: a reader never
/// sees half a file, and two builds of the same thing never tear each other's.
pub(crate) fn keep(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    hal_store::files::write_atomically(path, bytes, hal_store::files::Readers::Umask)
}

/// Run cargo in `crate_dir`; the path of the component it built. A refusal by cargo (not a failure to start it)
/// is remembered for `built`.
fn compile(name: &str, crate_dir: &Path, target_dir: &Path, built: &Path) -> Result<PathBuf, String> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(["build", "--release", "--quiet", "--message-format", "short", "--target", TARGET, "--target-dir"])
        .arg(target_dir)
        .current_dir(crate_dir);
    // The build runs the crate's build scripts and macros on this machine: give it only what cargo and rustup
    // need, never the caller's environment (API keys live there), and a scratch HOME, so that nothing reached
    // through `~` (the secret store in ~/.config/hal among it) is found there. Cargo and rustup are told where
    // their own homes are. This hides, it does not confine: a build script can still read any file the user can,
    // which is why Rust is built only from `main`, where a person merged it.
    command.env_clear();
    for variable in ["PATH", "RUSTUP_TOOLCHAIN", "TMPDIR", "LANG"] {
        if let Some(value) = std::env::var_os(variable) {
            command.env(variable, value);
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (variable, default) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        let value = std::env::var_os(variable).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(default)));
        if let Some(value) = value {
            command.env(variable, value);
        }
    }
    let scratch = tempfile::tempdir().map_err(|e| format!("building isolate `{name}`: no scratch home: {e}"))?;
    command.env("HOME", scratch.path());
    let output = command.output().map_err(|e| {
        format!(
            "building isolate `{name}` needs cargo and the {TARGET} target (install Rust with rustup, then \
             `rustup target add {TARGET}`): {e}"
        )
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(ERROR_LINES)..].join("\n");
        let error = format!("building isolate `{name}` failed:\n{tail}");
        remember_failure(built, &error);
        return Err(error);
    }
    let package = package_name(crate_dir).unwrap_or_else(|| name.to_owned()).replace('-', "_");
    let component = target_dir.join(TARGET).join("release").join(format!("{package}.wasm"));
    if component.exists() {
        Ok(component)
    } else {
        let error = format!(
            "building isolate `{name}` made no {package}.wasm: its Cargo.toml needs `[lib] crate-type = [\"cdylib\"]`"
        );
        remember_failure(built, &error);
        Err(error)
    }
}

/// The `name` of the `[package]` section of the crate's Cargo.toml.
fn package_name(crate_dir: &Path) -> Option<String> {
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).ok()?;
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name").map(str::trim_start) {
            let value = value.strip_prefix('=')?.trim().trim_matches('"');
            return Some(value.to_owned());
        }
    }
    None
}
