//! Plugins end to end: `plugin-author` writes a Python plugin on its thread, the first version fails a test,
//! the model fixes it, the second passes; the thread is merged; a help that lists the plugin calls it. The model
//! is the scripted server; componentize-py, the sandbox and git are real.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

use crate::runs::{commit, hal, home_with_model};
use crate::support::{Run, Sandbox, assert_fsck_clean, tree_paths};

const MANIFEST: &str = "name: convert\nversion: 1\ndescription: Converts lengths.\nfunctions:\n  - name: convert\n    \
                        description: Convert a length between m, km, mi and ft.\n    parameters:\n      type: object\n      \
                        required: [value, unit_from, unit_to]\n";

const TESTS: &str = "- call: convert\n  arguments: {value: 2, unit_from: km, unit_to: m}\n  expect: {value: 2000, unit: m}\n\
                     - call: convert\n  arguments: {value: 1, unit_from: km, unit_to: parsec}\n  expect_error: unknown unit\n";

/// A plugin with a wrong factor for kilometres.
const BUGGY: &str = "FACTORS = {\"m\": 1.0, \"km\": 100.0, \"mi\": 1609.344, \"ft\": 0.3048}\n\n\ndef convert(value, unit_from, \
                     unit_to):\n    for unit in (unit_from, unit_to):\n        if unit not in FACTORS:\n            raise \
                     ValueError(\"unknown unit %s\" % unit)\n    return {\"value\": value * FACTORS[unit_from] / \
                     FACTORS[unit_to], \"unit\": unit_to}\n";

fn fixed() -> String {
    BUGGY.replace("\"km\": 100.0", "\"km\": 1000.0")
}

#[test]
fn plugin_author_writes_a_plugin_that_passes_its_tests_on_the_second_try_and_a_help_calls_it_after_the_merge() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let dir = "plugins/convert/v1";
    server.push([
        Scripted::tools(&[
            ("files.write", json!({"path": format!("{dir}/plugin.yaml"), "content": MANIFEST})),
            ("files.write", json!({"path": format!("{dir}/plugin.py"), "content": BUGGY})),
            ("files.write", json!({"path": format!("{dir}/tests.yaml"), "content": TESTS})),
        ]),
        Scripted::tool("plugins.test", json!({"name": "convert", "version": 1})),
        Scripted::tool("files.write", json!({"path": format!("{dir}/plugin.py"), "content": fixed()})),
        Scripted::tool("plugins.test", json!({"name": "convert", "version": 1})),
        Scripted::finish("DONE", "plugins/convert/v1: convert(value, unit_from, unit_to); list `convert` in commands"),
    ]);
    let run = hal(&sandbox, &repo, &["help", "run", "plugin-author", "Write a plugin that converts lengths", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();
    let log = hal(&sandbox, &repo, &["thread", "log", &thread, "--json"]).ok().json();
    let tests: Vec<(String, String)> = log
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["facts"].to_string().contains("plugins.test"))
        .map(|s| {
            let outcome =
                s["facts"].as_array().and_then(|f| f.iter().find(|f| f[0] == "Hal-Outcome")).map(|f| f[1].to_string());
            (outcome.unwrap_or_default(), s["text"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert_eq!(tests.len(), 2, "{tests:#?}");
    assert!(tests[0].0.contains("error") && tests[0].1.contains("1 of 2 tests fail"), "{tests:#?}");
    assert!(tests[0].1.contains("expected {\"unit\":\"m\",\"value\":2000}"), "{tests:#?}");
    assert!(tests[1].0.contains("ok") && tests[1].1.contains("all 2 tests pass"), "{tests:#?}");

    let merged = hal(&sandbox, &repo, &["thread", "merge", &thread]).ok();
    assert!(merged.stdout.contains("merged"), "{merged:?}");
    let files = tree_paths(&sandbox, &repo, "main");
    for file in ["plugin.yaml", "plugin.py", "tests.yaml"] {
        assert!(files.contains(&format!("{dir}/{file}")), "{files:?}");
    }
    let measure = "description: Converts lengths\ncommands: [convert, convert@v1]\n";
    commit(&sandbox, &repo, &[("helps/measure.yaml", measure)]);
    // Listing the plugin, with its functions, loads no component: its manifest says what it offers.
    let mut list = crate::runs::hal_command(&sandbox, &repo, &["isolate", "show", "convert@v1"]);
    let list = crate::support::Run::from(list.env("RUST_LOG", "hal_sandbox=debug").output().expect("hal"));
    assert!(list.stdout.contains("convert@v1.convert("), "{list:?}");
    assert!(!list.stderr.contains("loading a component at its first call"), "{}", list.stderr);
    let isolates = hal(&sandbox, &repo, &["isolate", "list"]).ok().stdout;
    assert!(isolates.contains("convert@v1") && isolates.contains("main:plugins/convert/v1"), "{isolates}");

    server.push([
        Scripted::tools(&[
            ("convert.convert", json!({"value": 2, "unit_from": "km", "unit_to": "m"})),
            ("convert@v1.convert", json!({"value": 1, "unit_from": "km", "unit_to": "m"})),
        ]),
        Scripted::finish("DONE", "2 km is 2000 m"),
    ]);
    let mut run =
        crate::runs::hal_command(&sandbox, &repo, &["help", "run", "measure", "How many metres are 2 km?", "--json"]);
    let run = crate::support::Run::from(run.env("RUST_LOG", "hal_sandbox=debug").output().expect("hal"));
    assert_eq!(run.code, 0, "{run:?}");
    // The calls load the one version they reach, once, under either of its names.
    let loads: Vec<&str> = run.stderr.lines().filter(|l| l.contains("loading a component at its first call")).collect();
    assert_eq!(loads.len(), 1, "{}", run.stderr);
    assert!(loads[0].contains("isolate=convert"), "{loads:?}");
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();
    let log = hal(&sandbox, &repo, &["thread", "log", &thread]).ok().stdout;
    assert!(log.contains("\"value\": 2000.0") && log.contains("\"value\": 1000.0"), "the plugin answered: {log}");

    // A version on main never changes: a thread that edits v1 is refused; a new version merges.
    let edit = crate::support::new_thread(&sandbox, &repo, "edit v1");
    sandbox
        .hal_with_input(&repo, &["thread", "write", &edit, &format!("{dir}/plugin.py")], b"def convert(): pass\n")
        .ok();
    let refused = hal(&sandbox, &repo, &["thread", "merge", &edit]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("a version never changes") && refused.stderr.contains("plugins/convert/v1/"),
        "{refused:?}"
    );
    let sneak = crate::support::new_thread(&sandbox, &repo, "add to v1");
    sandbox.hal_with_input(&repo, &["thread", "write", &sneak, &format!("{dir}/plugin/__init__.py")], b"x = 1\n").ok();
    let main = crate::support::rev(&sandbox, &repo, "main");
    let refused = hal(&sandbox, &repo, &["thread", "merge", &sneak]);
    assert_eq!(refused.code, 1, "adding a file to a version is a change: {refused:?}");
    assert!(
        refused.stderr.contains("a version never changes") && refused.stderr.contains("plugins/convert/v1/"),
        "{refused:?}"
    );
    assert_eq!(crate::support::rev(&sandbox, &repo, "main"), main, "the refused merge changed nothing");
    let bump = crate::support::new_thread(&sandbox, &repo, "v2");
    let v2 = MANIFEST.replace("version: 1", "version: 2");
    sandbox.hal_with_input(&repo, &["thread", "write", &bump, "plugins/convert/v2/plugin.yaml"], v2.as_bytes()).ok();
    hal(&sandbox, &repo, &["thread", "merge", &bump]).ok();
    assert_fsck_clean(&sandbox, &repo);
}

/// A plugin that tries to escape is contained like any isolate: no files, no network, bounded memory and time,
/// no undeclared secret; each attempt is a clear error and the next call is served.
#[test]
fn a_plugin_that_tries_to_escape_is_contained() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let source = "import hal\n\n\ndef passwd():\n    return open('/etc/passwd').read()\n\n\ndef connect():\n    \
                  import socket\n    return str(socket.create_connection(('127.0.0.1', 22)))\n\n\ndef hog():\n    \
                  blocks = []\n    while True:\n        blocks.append(bytearray(64 * 1024 * 1024))\n\n\ndef spin():\n    \
                  while True:\n        pass\n\n\ndef steal():\n    return hal.secret('HOME_SECRET')\n\n\ndef ok():\n    \
                  return 'still here'\n";
    let functions: String = ["passwd", "connect", "hog", "spin", "steal", "ok"]
        .iter()
        .map(|f| format!("  - name: {f}\n    description: {f}\n"))
        .collect();
    let manifest = format!("name: escape\nversion: 1\ndescription: Tries to get out.\nfunctions:\n{functions}");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    commit(
        &sandbox,
        &repo,
        &[
            ("plugins/escape/v1/plugin.yaml", &manifest),
            ("plugins/escape/v1/plugin.py", source),
            ("hal.yaml", &format!("{settings}\nsandbox:\n  limits: {{wall_ms: 3000, memory_mb: 96}}\n")),
        ],
    );
    let call = |function: &str| {
        let mut command = sandbox.hal_command(&repo, &["isolate", "call", "escape", function]);
        command.env("HOME_SECRET", "should-not-be-readable");
        Run::from(command.output().expect("run hal"))
    };
    // Each expected text is the reason, not words of the function's own source; a loop is stopped by whichever
    // limit it reaches first on this machine, and the reason names that limit and its setting.
    let wall = "isolate `escape` ran longer than its limit of 3000 ms (wall_ms)";
    let fuel = "isolate `escape` did more work than its limit of 10000000000 units of fuel (fuel)";
    for (function, reasons) in [
        ("passwd", &["FileNotFoundError: [Errno 44] No such file or directory: '/etc/passwd'"][..]),
        ("connect", &["ModuleNotFoundError: No module named 'socket'"]),
        ("hog", &["MemoryError"]),
        ("spin", &[wall, fuel]),
        ("steal", &["isolate `escape` may not read the secret HOME_SECRET: its isolate.yaml does not declare it"]),
    ] {
        let run = call(function);
        assert_eq!(run.code, 1, "{function}: {run:?}");
        assert!(reasons.iter().any(|reason| run.stderr.contains(reason)), "{function}: {}", run.stderr);
        assert!(!run.stdout.contains("should-not-be-readable") && !run.stderr.contains("should-not-be-readable"));
        let ok = call("ok");
        assert_eq!(ok.code, 0, "after {function}: {ok:?}");
        assert!(ok.stdout.contains("still here"));
    }
}

/// Without Python, a plugin cannot be built, and one line says what to install.
#[test]
fn without_python_one_line_says_what_to_install() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    commit(
        &sandbox,
        &repo,
        &[
            (
                "plugins/echo/v1/plugin.yaml",
                "name: echo\nversion: 1\ndescription: Echo\nfunctions:\n  - name: echo\n    description: Echo\n",
            ),
            ("plugins/echo/v1/plugin.py", "def echo(**kw):\n    return kw\n"),
        ],
    );
    let empty = sandbox.path("empty-path");
    std::fs::create_dir_all(&empty).expect("dir");
    let run = Run::from(
        sandbox
            .hal_command(&repo, &["isolate", "build"])
            .env("PATH", &empty)
            .env("HAL_CACHE_DIR", sandbox.path("fresh-cache"))
            .output()
            .expect("run hal"),
    );
    assert_eq!(run.code, 1, "the plugin does not build: {run:?}");
    let line = run.stdout.lines().find(|l| l.starts_with("echo@v1 ")).expect("listed");
    assert!(line.contains("needs Python 3.10 or newer") && line.contains("apt install python3 python3-venv"), "{line}");
}

/// Regression: a function's argument schema that cannot compile (a bad `pattern`) passed `plugins.test`, was merged,
/// and failed at the function's first call from main. Now the author hears it, located, before anything builds.
#[test]
fn plugins_test_finds_an_argument_schema_that_does_not_compile_before_building() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let dir = "plugins/convert/v1";
    let bad = MANIFEST
        .replace("      required:", "      properties: {unit_to: {type: string, pattern: \"(\"}}\n      required:");
    server.push([
        Scripted::tools(&[
            ("files.write", json!({"path": format!("{dir}/plugin.yaml"), "content": bad})),
            ("files.write", json!({"path": format!("{dir}/plugin.py"), "content": fixed()})),
        ]),
        Scripted::tool("plugins.test", json!({"name": "convert", "version": 1})),
        Scripted::finish("ERROR", "the schema does not compile"),
    ]);
    let run = hal(&sandbox, &repo, &["help", "run", "plugin-author", "Write a plugin that converts lengths", "--json"]);
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();
    let log = hal(&sandbox, &repo, &["thread", "log", &thread, "--json"]).ok().json();
    let test = log
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["facts"].to_string().contains("plugins.test"))
        .expect("a plugins.test step")
        .clone();
    let text = test["text"].as_str().expect("text");
    assert!(text.contains("plugins/convert/v1/plugin.yaml:") && text.contains("functions[0].parameters"), "{text}");
    assert!(text.contains("`convert` does not compile"), "{text}");
    assert!(!text.contains("componentize"), "nothing was built: {text}");
}
