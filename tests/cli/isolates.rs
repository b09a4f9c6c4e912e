//! `hal isolate list/show/call`: the built-in isolates, a prebuilt one committed on main, grants in hal.yaml.

use std::path::{Path, PathBuf};

use crate::support::{Run, Sandbox, assert_fsck_clean, new_thread};

/// The hostile guest built by hal-sandbox's build script, found beside this test binary (the newest, when
/// several builds of hal-sandbox left one).
pub(crate) fn hostile_wasm() -> PathBuf {
    let deps = std::env::current_exe().expect("test binary").parent().expect("deps dir").to_owned();
    let build = deps.parent().expect("profile dir").join("build");
    std::fs::read_dir(&build)
        .expect("build dir")
        .flatten()
        .map(|entry| entry.path().join("out/hostile.wasm"))
        .filter_map(|path| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
        .max()
        .map(|(_, path)| path)
        .expect("hal-sandbox's build script built the hostile guest")
}

/// Put the hostile guest (component and manifest) in `repo`'s work tree as `isolates/hostile/`, not committed.
pub(crate) fn add_hostile_isolate(repo: &Path) {
    let dir = repo.join("isolates/hostile");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(hostile_wasm(), dir.join("hostile.wasm")).expect("copy");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/isolates/hostile/isolate.yaml");
    std::fs::copy(manifest, dir.join("isolate.yaml")).expect("copy manifest");
}

fn commit(sandbox: &Sandbox, repo: &Path, message: &str) {
    sandbox.git(repo, &["add", "-A"]).ok();
    sandbox.git(repo, &["commit", "-S", "-q", "-m", message]).ok();
}

#[test]
fn built_in_isolates_are_listed_and_files_writes_become_a_step() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let list = sandbox.hal(&repo, &["isolate", "list", "--json"]).ok().json();
    let names: Vec<&str> = list.as_array().expect("array").iter().map(|e| e["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["files", "http"]);
    let text = sandbox.hal(&repo, &["isolate", "show", "files"]).ok().stdout;
    assert!(
        text.contains("files.read(path: string)") && text.contains("granted:  tree write"),
        "text by default: {text}"
    );
    let files = sandbox.hal(&repo, &["isolate", "show", "files", "--json"]).ok().json();
    let functions: Vec<&str> =
        files["functions"].as_array().expect("functions").iter().map(|f| f["name"].as_str().expect("name")).collect();
    assert_eq!(functions, ["files.read", "files.list", "files.write", "files.search"]);
    assert_eq!(files["functions"][0]["parameters"]["required"][0], "path");
    assert_eq!(files["granted"]["tree"], "write");

    let thread = new_thread(&sandbox, &repo, "scratch");
    let wrote = sandbox
        .hal(
            &repo,
            &["isolate", "call", "files", "write", r#"{"path": "a/b.txt", "content": "hello"}"#, "--thread", &thread],
        )
        .ok();
    assert_eq!(wrote.out(), "wrote a/b.txt (5 bytes)");
    let read =
        sandbox.hal(&repo, &["isolate", "call", "files", "read", r#"{"path": "a/b.txt"}"#, "--thread", &thread]).ok();
    assert_eq!(read.out(), "hello");
    let log = sandbox.hal(&repo, &["thread", "log", &thread, "--json"]).ok().json();
    let steps = log.as_array().expect("steps");
    assert_eq!(steps.len(), 2, "the write is one step, the read none: {log}");
    assert_eq!(steps[1]["kind"], "write", "a call by hand is the person's change, not a model's tool step");
    assert_eq!(sandbox.git(&repo, &["status", "--porcelain"]).ok().stdout, "", "main's work tree is untouched");
    let missing = sandbox.hal(&repo, &["isolate", "call", "files", "read", r#"{"path": "nope"}"#, "--thread", &thread]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("there is no file nope"), "{}", missing.stderr);
    assert_fsck_clean(&sandbox, &repo);
}

#[test]
fn a_prebuilt_isolate_on_main_gets_only_what_hal_yaml_grants() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    add_hostile_isolate(&repo);
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    // A wall limit a loaded machine leaves the quick calls room under, met by the spin before its fuel runs out.
    let limits = "\nsandbox:\n  limits:\n    wall_ms: 1000\n    fuel: 1000000000000\n";
    std::fs::write(repo.join("hal.yaml"), format!("{settings}{limits}")).expect("write");
    commit(&sandbox, &repo, "add the hostile isolate");

    let list = sandbox.hal(&repo, &["isolate", "list"]).ok().stdout;
    assert!(list.contains("hostile") && list.contains("main:isolates/hostile"), "{list}");
    let spin = sandbox.hal(&repo, &["isolate", "call", "hostile", "spin"]);
    assert_eq!(spin.code, 1);
    assert!(spin.stderr.contains("ran longer than its limit of 1000 ms"), "{}", spin.stderr);
    let passwd = sandbox.hal(&repo, &["isolate", "call", "hostile", "passwd", "--json"]);
    assert_eq!(passwd.code, 1);
    assert!(passwd.json()["error"].as_str().expect("error").contains("cannot read /etc/passwd"));

    let thread = new_thread(&sandbox, &repo, "t");
    let refused = sandbox.hal(&repo, &["isolate", "call", "hostile", "write", "--thread", &thread]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("sandbox.isolates.hostile.tree: write"), "{}", refused.stderr);

    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    std::fs::write(repo.join("hal.yaml"), format!("{settings}  isolates:\n    hostile:\n      tree: write\n"))
        .expect("write");
    commit(&sandbox, &repo, "grant the tree");
    sandbox.hal(&repo, &["isolate", "call", "hostile", "write", "--thread", &thread]).ok();
    let written = sandbox.git(&repo, &["show", &format!("threads/alice-example/{thread}:escape.txt")]).ok().stdout;
    assert_eq!(written, "written by the guest");
    assert!(!repo.join("escape.txt").exists());
}

#[test]
fn the_http_isolate_reaches_granted_hosts_only() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let server = hal_testmodel::ScriptedServer::start(vec![hal_testmodel::Scripted::text("hello from loopback")]);
    let url = format!("{}/chat/completions", server.base_url());
    let arguments = serde_json::json!({"url": url, "method": "POST", "body": crate::runs::CHAT_BODY}).to_string();

    let refused = sandbox.hal(&repo, &["isolate", "call", "http", "fetch", &arguments]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("may not fetch from 127.0.0.1: add it to `sandbox.isolates.http.http`"),
        "{}",
        refused.stderr
    );
    assert!(server.requests().is_empty(), "nothing left the sandbox");

    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "\nsandbox:\n  isolates:\n    http:\n      http: [127.0.0.1]\n";
    std::fs::write(repo.join("hal.yaml"), format!("{settings}{grant}")).expect("write");
    commit(&sandbox, &repo, "grant loopback");
    let fetched = sandbox.hal(&repo, &["isolate", "call", "http", "fetch", &arguments]).ok().json();
    assert_eq!(fetched["status"], 200);
    assert!(fetched["body"].as_str().expect("body").contains("chat.completion.chunk"), "{fetched}");
    assert_eq!(server.requests().len(), 1);
    let other = serde_json::json!({"url": "http://localhost:9/"}).to_string();
    let refused = sandbox.hal(&repo, &["isolate", "call", "http", "fetch", &other]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("may not fetch from localhost: add it to `sandbox.isolates.http.http`"),
        "{}",
        refused.stderr
    );
}

const NOTES_CARGO: &str = r#"[package]
name = "notes-isolate"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = { version = "=0.61.1", default-features = false, features = ["macros", "realloc"] }

[profile.release]
opt-level = "s"
panic = "abort"
"#;

const NOTES_LIB: &str = r##"wit_bindgen::generate!({ world: "isolate", path: "wit" });

struct Notes;

impl Guest for Notes {
    fn describe() -> Vec<FunctionSpec> {
        vec![FunctionSpec {
            name: "shout".to_owned(),
            description: "Upper-cases its arguments".to_owned(),
            parameters: r#"{"type":"object"}"#.to_owned(),
        }]
    }

    fn call(_function: String, arguments: String) -> Result<String, String> {
        Ok(arguments.to_uppercase())
    }
}

export!(Notes);
"##;

#[test]
fn a_rust_isolate_committed_as_source_is_built_by_hal() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let dir = repo.join("isolates/notes");
    std::fs::create_dir_all(dir.join("src")).expect("dir");
    std::fs::write(dir.join("Cargo.toml"), NOTES_CARGO).expect("write");
    std::fs::write(dir.join("src/lib.rs"), NOTES_LIB).expect("write");
    std::fs::write(dir.join("isolate.yaml"), "name: notes\nversion: 1\ndescription: Shouts\n").expect("write");
    commit(&sandbox, &repo, "add the notes isolate");
    let shout = sandbox.hal(&repo, &["isolate", "call", "notes", "shout", r#"{"text": "quiet please"}"#]).ok();
    assert_eq!(shout.out(), r#"{"TEXT": "QUIET PLEASE"}"#);

    std::fs::write(dir.join("src/lib.rs"), NOTES_LIB.replace("to_uppercase()", "to_uppercase(")).expect("write");
    commit(&sandbox, &repo, "break it");
    // Listing never builds; building on request shows the compiler's refusal, which listing then shows too.
    let built = sandbox.hal(&repo, &["isolate", "build", "notes"]);
    assert_eq!(built.code, 1, "{built:?}");
    let list = sandbox.hal(&repo, &["isolate", "list"]).ok().stdout;
    let line = list.lines().find(|l| l.starts_with("notes")).expect("listed");
    assert!(line.contains("INVALID: building isolate `notes` failed"), "{list}");
    let shown = sandbox.hal(&repo, &["isolate", "show", "notes", "--json"]);
    assert_eq!(shown.code, 1, "an isolate that does not build is not OK: {shown:?}");
    let shown = shown.json();
    let error = shown["error"].as_str().expect("error");
    assert!(
        error.contains("src/lib.rs:") && error.contains("mismatched closing delimiter"),
        "the compiler's words are kept: {shown}"
    );

    // The same crate as a versioned plugin (`language: rust`) goes the plugins' way (its build is cached).
    sandbox.git(&repo, &["rm", "-rq", "isolates/notes"]).ok();
    let plugin = repo.join("plugins/notes/v1");
    std::fs::create_dir_all(plugin.join("src")).expect("dir");
    std::fs::write(plugin.join("Cargo.toml"), NOTES_CARGO).expect("write");
    std::fs::write(plugin.join("src/lib.rs"), NOTES_LIB).expect("write");
    std::fs::write(
        plugin.join("plugin.yaml"),
        "name: notes\nversion: 1\ndescription: Shouts\nlanguage: rust\nfunctions:\n  - name: shout\n    description: Shouts\n",
    )
    .expect("write");
    commit(&sandbox, &repo, "notes as a plugin");
    let shout = sandbox.hal(&repo, &["isolate", "call", "notes@v1", "shout", r#"{"text": "psst"}"#]).ok();
    assert_eq!(shout.out(), r#"{"TEXT": "PSST"}"#);
}

/// `hal status`, `hal isolate list` and `hal isolate show` never build: Rust source the cache holds no build of is
/// said to be not built yet, and how it gets built. `hal isolate build` builds it; a build the compiler refused
/// is remembered, so the read-only commands show its error without building again; one that could not start
/// (no cargo) is not, and stays "not built".
#[test]
fn read_only_commands_never_build_and_isolate_build_does() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let cache = sandbox.path("cache");
    let hal = |args: &[&str], cargo: Option<&str>| {
        let mut command = sandbox.hal_command(&repo, args);
        command.env("HAL_CACHE_DIR", &cache);
        if let Some(cargo) = cargo {
            command.env("CARGO", cargo);
        }
        Run::from(command.output().expect("run hal"))
    };
    let dir = repo.join("isolates/notes");
    std::fs::create_dir_all(dir.join("src")).expect("dir");
    // A manifest cargo refuses at once: a real compiler failure, without compiling anything.
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"notes\"\nversion = \"not a version\"\n")
        .expect("write");
    std::fs::write(dir.join("src/lib.rs"), NOTES_LIB).expect("write");
    std::fs::write(dir.join("isolate.yaml"), "name: notes\nversion: 1\ndescription: Shouts\n").expect("write");
    commit(&sandbox, &repo, "add the notes isolate");

    let status = hal(&["status"], Some("/nonexistent/cargo")).ok().stdout;
    assert!(status.contains("isolate:  notes not built yet"), "{status}");
    assert!(!status.contains("invalid"), "not built is not invalid: {status}");
    let list = hal(&["isolate", "list", "--json"], Some("/nonexistent/cargo")).ok().json();
    let notes = list.as_array().expect("list").iter().find(|i| i["name"] == "notes").expect("notes").clone();
    assert_eq!(notes["not_built"], true, "{list}");
    assert!(notes["error"].as_str().expect("error").contains("`hal isolate build`"), "{list}");
    let shown = hal(&["isolate", "show", "notes"], Some("/nonexistent/cargo"));
    assert_eq!(shown.code, 1, "{shown:?}");
    assert!(!cache.join("builds").exists(), "nothing was built or written for a build");

    let no_cargo = hal(&["isolate", "build", "notes"], Some("/nonexistent/cargo"));
    assert_eq!(no_cargo.code, 1, "{no_cargo:?}");
    assert!(no_cargo.stdout.contains("needs cargo"), "{no_cargo:?}");
    let list = hal(&["isolate", "list"], None).ok().stdout;
    assert!(list.lines().any(|l| l.starts_with("notes") && l.contains("not built yet")), "not remembered: {list}");

    let refused = hal(&["isolate", "build", "notes"], None);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("building isolate `notes` failed"), "{refused:?}");
    let list = hal(&["isolate", "list"], Some("/nonexistent/cargo")).ok().stdout;
    let line = list.lines().find(|l| l.starts_with("notes")).expect("listed");
    assert!(line.contains("INVALID: building isolate `notes` failed"), "remembered: {list}");
    let shown = hal(&["isolate", "show", "notes", "--json"], Some("/nonexistent/cargo"));
    assert_eq!(shown.code, 1, "{shown:?}");
    let error = shown.json()["error"].as_str().expect("error").to_owned();
    assert!(error.contains("not a version") && error.contains("`hal isolate build` tries again"), "{error}");
    assert_eq!(hal(&["isolate", "build"], None).code, 1, "every isolate is judged when none is named");
}
