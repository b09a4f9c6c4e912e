//! The security promises about code nobody reviewed and about builds that run on the host, each pinned by a test:
//! `plugins.test` on a thread refuses a Rust plugin and builds nothing; plugin code on a thread runs with none of
//! `hal.yaml`'s grants; a Rust-source isolate's build script sees no API key and no secret.

use std::path::Path;

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::{Value, json};

use crate::runs::{KEY, KEY_VAR, commit, hal, hal_command, home_with_model};
use crate::support::{Run, Sandbox};

/// The tool steps of `thread` that called `tool`: (outcome, text).
fn tool_steps(sandbox: &Sandbox, repo: &Path, thread: &str, tool: &str) -> Vec<(String, String)> {
    let log = hal(sandbox, repo, &["thread", "log", thread, "--json"]).ok().json();
    let fact = |step: &Value, key: &str| {
        step["facts"].as_array()?.iter().rev().find(|f| f[0] == key).and_then(|f| f[1].as_str()).map(str::to_owned)
    };
    log.as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["kind"] == "tool" && fact(s, "Hal-Tool").as_deref() == Some(tool))
        .map(|s| (fact(s, "Hal-Outcome").unwrap_or_default(), s["text"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Every git object of `repo`, as text.
fn all_objects(sandbox: &Sandbox, repo: &Path) -> String {
    sandbox.git(repo, &["cat-file", "--batch-all-objects", "--batch"]).ok().stdout
}

/// Every file under `dir`, recursively, as paths.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

/// A crate with no dependencies (so cargo needs no registry to run it) whose build script leaves a mark.
fn marking_crate(mark: &Path) -> [(&'static str, String); 3] {
    let cargo = "[package]\nname = \"rusty\"\nversion = \"0.1.0\"\nedition = \"2024\"\nbuild = \"build.rs\"\n\n[lib]\n\
                 crate-type = [\"cdylib\"]\n";
    let build = format!("fn main() {{\n    std::fs::write({:?}, \"the build script ran\").unwrap();\n}}\n", mark);
    [("Cargo.toml", cargo.to_owned()), ("build.rs", build), ("src/lib.rs", "pub fn nothing() {}\n".to_owned())]
}

/// `plugins.test` (and `plugins.build`) on a thread refuse `language: rust` with the reason, and build nothing:
/// the crate's build script, which would run on the host, never runs. Merged to main, the same crate is built
/// (its build script runs), so the mark would have shown a build on the thread.
#[test]
fn plugins_test_refuses_a_rust_plugin_on_a_thread_and_its_build_script_never_runs() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let mark = sandbox.path("build-script-ran");
    let cache = sandbox.path("cache");
    let dir = "plugins/rusty/v1";
    let manifest = "name: rusty\nversion: 1\ndescription: Rust on a thread\nlanguage: rust\nfunctions:\n  - name: \
                    nothing\n    description: Does nothing\n";
    let mut writes = vec![
        ("files.write", json!({"path": format!("{dir}/plugin.yaml"), "content": manifest})),
        ("files.write", json!({"path": format!("{dir}/tests.yaml"), "content": "- call: nothing\n  expect: null\n"})),
    ];
    for (file, content) in marking_crate(&mark) {
        writes.push(("files.write", json!({"path": format!("{dir}/{file}"), "content": content})));
    }
    server.push([
        Scripted::tools(&writes),
        Scripted::tool("plugins.build", json!({"name": "rusty", "version": 1})),
        Scripted::tool("plugins.test", json!({"name": "rusty", "version": 1})),
        Scripted::finish("ERROR", "Rust plugins are built only from main"),
    ]);
    let mut command = hal_command(&sandbox, &repo, &["help", "run", "plugin-author", "Write it in Rust", "--json"]);
    let run = Run::from(command.env("HAL_CACHE_DIR", &cache).output().expect("run hal"));
    assert_eq!(run.code, 1, "the model finished ERROR: {run:?}");
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();

    let reason = format!(
        "{dir} is Rust: HAL builds Rust plugins only from main, after a person merged them; write this one in Python"
    );
    for tool in ["plugins.build", "plugins.test"] {
        let steps = tool_steps(&sandbox, &repo, &thread, tool);
        assert_eq!(steps.len(), 1, "{tool}: {steps:?}");
        assert_eq!(steps[0].0, "error", "{tool}: {steps:?}");
        assert!(steps[0].1.contains(&reason), "{tool} says why: {steps:?}");
    }
    assert!(!mark.exists(), "the crate's build script ran on the host");
    let cached = files_under(&cache);
    assert!(cached.iter().any(|path| path.contains("/wasm/")), "the run used this cache: {cached:?}");
    assert!(cached.iter().all(|path| !path.contains("rusty")), "nothing of the plugin was built: {cached:?}");

    // The mark is a real witness: once a person merges the crate, HAL builds it from main and its script runs.
    hal(&sandbox, &repo, &["thread", "merge", &thread]).ok();
    // Listing never builds; building on request does.
    let listed = sandbox.hal_command(&repo, &["isolate", "list"]).env("HAL_CACHE_DIR", &cache).output();
    Run::from(listed.expect("run hal")).ok();
    assert!(!mark.exists(), "a read-only command built the crate");
    let built = sandbox.hal_command(&repo, &["isolate", "build"]).env("HAL_CACHE_DIR", &cache).output();
    let built = Run::from(built.expect("run hal"));
    assert!(mark.exists(), "merged to main, the crate is built and its build script runs: {built:?}");
}

/// The plugin's manifest: it asks for the host and the secret that `hal.yaml` grants it.
const PROBE_MANIFEST: &str = r#"name: probe
version: 1
description: Reaches a host and reads a token.
capabilities:
  http: [127.0.0.1]
  secrets: [PROBE_TOKEN]
functions:
  - name: fetch
    description: Fetches a page
  - name: token
    description: Reads the token
"#;

/// The plugin's code; `fetch` posts a request the scripted server (the granted host) accepts.
const PROBE_SOURCE: &str = r#"import hal

ASK = '{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


def fetch(url):
    status, body = hal.fetch(url, "POST", ASK)
    return status


def token():
    hal.secret("PROBE_TOKEN")
    return "read it"
"#;

/// The value `hal secret set` stores, and the one the environment holds under the same name.
const STORED: &str = "probe-stored-4b1e9d7a";
const IN_ENV: &str = "probe-env-c83f2a61";

/// A Python plugin on a thread whose name `hal.yaml` grants a host and a secret (set both in the secret store and
/// in the environment) runs its tests with neither: inside `plugins.test` the fetch and the secret are refused,
/// nothing reaches the host and no value is seen. Merged to main, the same plugin gets both.
#[test]
fn plugins_test_runs_thread_code_with_none_of_hal_yaml_grants() {
    let sandbox = Sandbox::new();
    let site = ScriptedServer::start(vec![Scripted::text("the page")]);
    let url = format!("{}/chat/completions", site.base_url());
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    probe:\n      http: [127.0.0.1]\n      secrets: [PROBE_TOKEN]\n";
    commit(&sandbox, &repo, &[("hal.yaml", &format!("{settings}{grant}"))]);
    sandbox.hal_with_input(&repo, &["secret", "set", "PROBE_TOKEN"], format!("{STORED}\n").as_bytes()).ok();

    let dir = "plugins/probe/v1";
    let tests =
        format!("- call: fetch\n  arguments: {{url: \"{url}\"}}\n  expect: 200\n- call: token\n  expect: read it\n");
    server.push([
        Scripted::tools(&[
            ("files.write", json!({"path": format!("{dir}/plugin.yaml"), "content": PROBE_MANIFEST})),
            ("files.write", json!({"path": format!("{dir}/plugin.py"), "content": PROBE_SOURCE})),
            ("files.write", json!({"path": format!("{dir}/tests.yaml"), "content": tests})),
        ]),
        Scripted::tool("plugins.test", json!({"name": "probe", "version": 1})),
        Scripted::finish("ERROR", "its tests need the network"),
    ]);
    let mut command = hal_command(&sandbox, &repo, &["help", "run", "plugin-author", "Write a probe", "--json"]);
    let run = Run::from(command.env("PROBE_TOKEN", IN_ENV).output().expect("run hal"));
    assert_eq!(run.code, 1, "the model finished ERROR: {run:?}");
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();

    let tested = tool_steps(&sandbox, &repo, &thread, "plugins.test");
    assert_eq!(tested.len(), 1, "{tested:?}");
    let (outcome, report) = &tested[0];
    assert_eq!(outcome, "error", "{report}");
    assert!(report.contains("2 of 2 tests fail"), "both cases failed: {report}");
    assert!(report.contains("isolate `probe` may not fetch from 127.0.0.1"), "the fetch was refused: {report}");
    assert!(report.contains("isolate `probe` may not read the secret PROBE_TOKEN"), "the secret too: {report}");
    assert!(site.requests().is_empty(), "nothing reached the granted host");
    let objects = all_objects(&sandbox, &repo);
    for value in [STORED, IN_ENV] {
        assert!(!objects.contains(value) && !run.stdout.contains(value) && !run.stderr.contains(value), "{value}");
        assert!(server.requests().iter().all(|r| !r.body.to_string().contains(value)), "a model request holds it");
    }

    // The grants are real: merged to main, the same plugin reaches the host and reads the secret.
    hal(&sandbox, &repo, &["thread", "merge", &thread]).ok();
    let call = |function: &str, arguments: &str| {
        let mut command = sandbox.hal_command(&repo, &["isolate", "call", "probe", function, arguments]);
        Run::from(command.env("PROBE_TOKEN", IN_ENV).output().expect("run hal")).ok()
    };
    assert_eq!(call("fetch", &json!({"url": url}).to_string()).out(), "200");
    assert_eq!(site.requests().len(), 1, "the fetch from main reached the host");
    assert_eq!(call("token", "{}").out(), "read it");
}

const DUMP_CARGO: &str = r#"[package]
name = "envdump-isolate"
version = "0.1.0"
edition = "2024"
build = "build.rs"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = { version = "=0.61.1", default-features = false, features = ["macros", "realloc"] }

[profile.release]
opt-level = "s"
panic = "abort"
"#;

/// The build script: its whole environment into `env.txt`, and what it can read of the secret store in the
/// user's home into `store.txt`.
const DUMP_BUILD: &str = r#"use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let mut env = String::new();
    for (name, value) in std::env::vars_os() {
        env.push_str(&format!("{}={}\n", name.to_string_lossy(), value.to_string_lossy()));
    }
    std::fs::write(out.join("env.txt"), env).expect("write env.txt");
    let mut store = String::new();
    let homes = [
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")),
    ];
    for path in homes.into_iter().flatten().map(|config| config.join("hal/secrets.json")) {
        match std::fs::read_to_string(&path) {
            Ok(text) => store.push_str(&format!("{}: {text}\n", path.display())),
            Err(error) => store.push_str(&format!("{}: {error}\n", path.display())),
        }
    }
    std::fs::write(out.join("store.txt"), store).expect("write store.txt");
    println!("cargo:rerun-if-changed=build.rs");
}
"#;

const DUMP_LIB: &str = r##"wit_bindgen::generate!({ world: "isolate", path: "wit" });

const ENV: &str = include_str!(concat!(env!("OUT_DIR"), "/env.txt"));
const STORE: &str = include_str!(concat!(env!("OUT_DIR"), "/store.txt"));

struct Dump;

impl Guest for Dump {
    fn describe() -> Vec<FunctionSpec> {
        ["env", "store"]
            .into_iter()
            .map(|name| FunctionSpec {
                name: name.to_owned(),
                description: format!("What the build script found: {name}"),
                parameters: r#"{"type":"object"}"#.to_owned(),
            })
            .collect()
    }

    fn call(function: String, _arguments: String) -> Result<String, String> {
        match function.as_str() {
            "env" => Ok(ENV.to_owned()),
            "store" => Ok(STORE.to_owned()),
            other => Err(format!("no function {other}")),
        }
    }
}

export!(Dump);
"##;

/// Values no build may see: (what it is, the environment variable that holds it, its value).
const HIDDEN: [(&str, &str, &str); 4] = [
    ("the model's API key", KEY_VAR, KEY),
    ("a granted secret in the environment", "DUMP_ENV_SECRET", "dump-env-secret-5d02c9e7"),
    ("a well-known provider key", "OPENAI_API_KEY", "sk-dump-openai-91ad3f0c"),
    ("another well-known provider key", "ANTHROPIC_API_KEY", "sk-ant-dump-7e64b2d5"),
];
/// The value `hal secret set` stores for the granted secret `DUMP_SECRET`.
const DUMP_STORED: &str = "dump-stored-secret-38c1a4f9";

/// A home repo with the `envdump` isolate as Rust source on main, granted `DUMP_SECRET` and `DUMP_ENV_SECRET`,
/// the first set with `hal secret set`; then `hal isolate call envdump <function>` with every value of
/// [`HIDDEN`] in its environment, on a cache of its own (so the crate is built, and its build script runs, now).
fn envdump_repo(sandbox: &Sandbox, server: &ScriptedServer) -> std::path::PathBuf {
    let repo = home_with_model(sandbox, server, "openai");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    envdump:\n      secrets: [DUMP_SECRET, DUMP_ENV_SECRET]\n";
    let manifest = "name: envdump\nversion: 1\ndescription: Dumps what its build saw\ncapabilities:\n  secrets: \
                    [DUMP_SECRET, DUMP_ENV_SECRET]\n";
    commit(
        sandbox,
        &repo,
        &[
            ("hal.yaml", &format!("{settings}{grant}")),
            ("isolates/envdump/isolate.yaml", manifest),
            ("isolates/envdump/Cargo.toml", DUMP_CARGO),
            ("isolates/envdump/build.rs", DUMP_BUILD),
            ("isolates/envdump/src/lib.rs", DUMP_LIB),
        ],
    );
    sandbox.hal_with_input(&repo, &["secret", "set", "DUMP_SECRET"], format!("{DUMP_STORED}\n").as_bytes()).ok();
    repo
}

/// Call the envdump isolate's `function` in `repo` (built on the first call, into the sandbox's own cache).
fn call_envdump(sandbox: &Sandbox, repo: &Path, function: &str) -> Run {
    let mut command = sandbox.hal_command(repo, &["isolate", "call", "envdump", function]);
    command.env("HAL_CACHE_DIR", sandbox.path("cache")).env("HAL_TEST_HARMLESS", "harmless-but-not-needed");
    for (_, name, value) in HIDDEN {
        command.env(name, value);
    }
    Run::from(command.output().expect("run hal"))
}

/// A Rust-source isolate's build script runs on the host with an environment reduced to what cargo and rustup
/// need: the dump it bakes into the component holds cargo's own variables and `PATH`, and none of the API keys,
/// the granted secrets or anything else of the caller's environment.
///
/// Regression (same build, to build the crate once): the secret store is a file in the user's home, and a build
/// script ran with the user's `HOME`, so it found the stored secrets (which may hold the models' API keys too).
/// Builds get a scratch `HOME` now. (This hides the store from `~`; it does not confine the script, which is why
/// Rust is built only from `main`.)
#[test]
fn a_rust_isolate_build_script_sees_no_key_no_secret_and_no_secret_store_through_its_home() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = envdump_repo(&sandbox, &server);
    let run = call_envdump(&sandbox, &repo, "env");
    assert_eq!(run.code, 0, "{run:?}");
    let dump = &run.stdout;
    let names: Vec<&str> = dump.lines().filter_map(|line| line.split_once('=').map(|(name, _)| name)).collect();
    for expected in ["PATH", "CARGO_PKG_NAME", "OUT_DIR"] {
        assert!(names.contains(&expected), "the dump is a real environment, without {expected}: {dump}");
    }
    assert!(dump.contains("CARGO_PKG_NAME=envdump-isolate\n"), "{dump}");
    for (what, name, value) in HIDDEN {
        assert!(!names.contains(&name), "the build script saw {what} ({name}): {dump}");
        assert!(!dump.contains(value) && !run.stderr.contains(value), "the build script saw {what}'s value");
    }
    assert!(!dump.contains(DUMP_STORED) && !run.stderr.contains(DUMP_STORED), "it saw the stored secret: {dump}");
    assert!(!names.contains(&"HAL_TEST_HARMLESS"), "the caller's environment is cleared, not filtered: {dump}");

    let run = call_envdump(&sandbox, &repo, "store");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("secrets.json"), "the build script looked for the store: {}", run.stdout);
    assert!(!run.stdout.contains(DUMP_STORED), "the build script read the stored secret: {}", run.stdout);
}
