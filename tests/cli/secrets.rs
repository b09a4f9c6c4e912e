//! Secrets: kept outside git in a 0600 file, set from stdin or a hidden prompt, asked for by a run that needs
//! one (PENDING with the exact command), read by the plugin they are granted to, and never in any git object.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

use crate::runs::{commit, hal, home_with_model};
use crate::support::Sandbox;

/// A value nobody would write by chance: every git object is searched for it.
const VALUE: &str = "hal-test-secret-7f3a9c2e5b1d";

#[test]
fn a_run_waits_for_an_unset_secret_and_the_value_never_reaches_git() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    // A plugin that needs a secret (and, carelessly, returns it).
    let manifest = "name: token\nversion: 1\ndescription: Uses a token.\ncapabilities:\n  secrets: [DECLARED_SECRET]\n\
                    functions:\n  - name: leak\n    description: Uses the token\n";
    let source = "import hal\n\n\ndef leak():\n    return 'the secret is ' + hal.secret('DECLARED_SECRET')\n";
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    token:\n      secrets: [DECLARED_SECRET]\n";
    commit(
        &sandbox,
        &repo,
        &[
            ("hal.yaml", &format!("{settings}{grant}")),
            ("plugins/token/v1/plugin.yaml", manifest),
            ("plugins/token/v1/plugin.py", source),
            ("helps/leaky.yaml", "description: Reads a secret\ncommands: [token]\n"),
        ],
    );

    // Unset: the run asks for it before calling the model, with the command to run.
    let first = hal(&sandbox, &repo, &["help", "run", "leaky", "use the secret", "--json"]);
    assert_eq!(first.code, 3, "PENDING: {first:?}");
    let outcome = first.json();
    let question = outcome["output"].as_str().expect("output");
    assert!(question.contains("hal secret set DECLARED_SECRET") && question.contains("token.leak"), "{question}");
    assert_eq!(server.requests().len(), 0, "the model is not asked while a secret is missing");
    let thread = outcome["thread"].as_str().expect("thread").to_owned();

    let list = hal(&sandbox, &repo, &["secret", "list"]).ok().stdout;
    assert!(list.contains("DECLARED_SECRET") && list.contains("NO") && list.contains("isolate token"), "{list}");
    let bad = sandbox.hal_with_input(&repo, &["secret", "set", "lower-case"], b"x\n");
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("`lower-case` is not a secret name"), "{bad:?}");
    assert!(!sandbox.path(".user-home/.config/hal/secrets.json").exists(), "nothing was stored");
    sandbox.hal_with_input(&repo, &["secret", "set", "DECLARED_SECRET"], format!("{VALUE}\n").as_bytes()).ok();
    let store = sandbox.path(".user-home/.config/hal/secrets.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&store).expect("store").permissions());
    assert_eq!(mode & 0o777, 0o600);
    let list = hal(&sandbox, &repo, &["secret", "list", "--json"]).ok().json();
    let row = list.as_array().expect("rows").iter().find(|r| r["name"] == "DECLARED_SECRET").expect("row").clone();
    assert_eq!(row["set"], true, "{list}");
    assert_eq!(row["source"], "store", "{list}");
    // The model's key comes from this test's environment: the listing says so.
    let key = list.as_array().expect("rows").iter().find(|r| r["name"] == crate::runs::KEY_VAR).expect("key").clone();
    assert_eq!(key["source"], "environment", "{list}");
    let text = hal(&sandbox, &repo, &["secret", "list"]).ok().stdout;
    assert!(text.contains("yes (store)") && text.contains("yes (environment)"), "{text}");

    // Set: answering the thread resumes the run; the isolate reads the value, which is scrubbed from its result.
    server.push([Scripted::tool("token.leak", json!({})), Scripted::finish("DONE", "used it")]);
    let resumed = hal(&sandbox, &repo, &["thread", "say", &thread, "done, go on", "--json"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let log = hal(&sandbox, &repo, &["thread", "log", &thread]).ok().stdout;
    assert!(log.contains("<secret DECLARED_SECRET>"), "the isolate got the value, the record has its name: {log}");
    let request = server.requests().last().expect("request").body.to_string();
    assert!(!request.contains(VALUE), "the model never sees the value");

    // No object in the repository holds the value.
    let objects = sandbox.git(&repo, &["cat-file", "--batch-all-objects", "--batch"]).ok();
    assert!(!objects.stdout.contains(VALUE), "a git object holds the secret");
    assert!(objects.stdout.len() > 1000, "the scan read the objects");
}
