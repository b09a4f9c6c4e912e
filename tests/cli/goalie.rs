//! The goalie's loop: it picks a help and the runner runs it; while no help meets the request, the stuck-finder
//! says what is missing and how to go on, for a bounded number of rounds; a request nothing meets is recorded as a
//! stuck file on the goalie's thread, listed by `hal stuck list`.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::{Value, json};

use crate::runs::{commit, hal, home_with_model};
use crate::support::Sandbox;

/// Five helps besides the built-in ones, each with a description and an example.
const HELPS: [(&str, &str, &str); 5] = [
    ("summary", "Summarises a text in three sentences", "Summarise these meeting notes"),
    ("translate", "Translates a text to the language the request names", "Translate this letter to French"),
    ("weather", "Says what the weather will be where the request says", "Will it rain in Oslo tomorrow?"),
    ("recipe", "Suggests a recipe from the ingredients named", "What can I cook with eggs and leeks?"),
    ("sums", "Adds up the numbers in a text", "What do these invoices add up to?"),
];

fn home_with_five_helps(sandbox: &Sandbox, server: &ScriptedServer) -> std::path::PathBuf {
    let repo = home_with_model(sandbox, server, "openai");
    let files: Vec<(String, String)> = HELPS
        .iter()
        .map(|(name, description, example)| {
            (format!("helps/{name}.yaml"), format!("description: {description}\nexamples:\n  - request: {example}\n"))
        })
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(path, text)| (path.as_str(), text.as_str())).collect();
    commit(sandbox, &repo, &files);
    repo
}

/// The system prompt of a chat completions request.
fn system(request: &Value) -> String {
    request["messages"][0]["content"].as_str().unwrap_or_default().to_owned()
}

/// The result of the newest tool call in a request's messages, as JSON.
fn last_result(request: &Value) -> Value {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let result = messages.iter().rev().find(|m| m["role"] == "tool").map(|m| m["content"].clone());
    result.and_then(|content| serde_json::from_str(content.as_str()?).ok()).unwrap_or(Value::Null)
}

fn steps(sandbox: &Sandbox, repo: &std::path::Path, thread: &str) -> Vec<Value> {
    sandbox.hal(repo, &["thread", "log", thread, "--json"]).ok().json().as_array().expect("steps").clone()
}

fn fact<'a>(step: &'a Value, key: &str) -> Option<&'a str> {
    step["facts"].as_array()?.iter().rev().find(|f| f[0] == key).and_then(|f| f[1].as_str())
}

/// Replay `thread` (its recorded model turns played back, never the model): the replay diverges nowhere.
fn replays_the_same(sandbox: &Sandbox, repo: &std::path::Path, thread: &str, server: &ScriptedServer) {
    let before = server.requests().len();
    let replay = sandbox.hal(repo, &["thread", "replay", thread, "--json"]);
    assert_eq!(replay.code, 0, "{}{}", replay.stdout, replay.stderr);
    assert_eq!(replay.json()["divergence"], Value::Null, "{:#}", replay.json());
    assert_eq!(server.requests().len(), before, "a replay asks no model");
}

/// The facts `key` of the steps that end rounds, in order.
fn rounds(steps: &[Value], key: &str) -> Vec<String> {
    steps.iter().filter(|s| fact(s, "Hal-Round").is_some()).filter_map(|s| fact(s, key).map(str::to_owned)).collect()
}

#[test]
fn the_goalie_sees_all_five_helps_and_runs_the_one_it_picks() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        // The goalie picks.
        Scripted::finish("DONE", "summary"),
        // The summary help, on its own thread, gets the request itself.
        Scripted::from_request(|request| {
            let asked = request["messages"].to_string().contains("Summarise the minutes of Monday");
            Scripted::text(if asked { "Monday: the launch moves to May." } else { "the request did not arrive" })
        }),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "Summarise the minutes of Monday", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "Monday: the launch moves to May.");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let picking = system(&requests[0].body);
    for (name, description, example) in HELPS {
        assert!(picking.contains(&format!("- {name}: {description}")), "{name} is offered: {picking}");
        assert!(picking.contains(&format!("example request: {example}")), "{name}'s example: {picking}");
    }
    assert!(system(&requests[1].body).contains("Summarise") || requests[1].body.to_string().contains("Summarise"));
    let log = steps(&sandbox, &repo, run.json()["thread"].as_str().expect("thread"));
    let last = log.last().expect("steps");
    assert_eq!(last["kind"], "finish");
    assert_eq!((fact(last, "Hal-Round"), fact(last, "Hal-Routed")), (Some("1"), Some("summary")), "{last:#}");
    let sub = fact(last, "Hal-Subthread").expect("the help's thread");
    let sub_log = steps(&sandbox, &repo, sub);
    assert!(sub_log.iter().any(|s| s["kind"] == "finish" && fact(s, "Hal-Help") == Some("summary")), "{sub_log:?}");
}

#[test]
fn after_a_nocando_the_stuck_finder_advises_and_the_goalie_picks_again() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::finish("DONE", "summary"),
        Scripted::finish("NOCANDO", "I summarise; I do not translate."),
        // The stuck-finder is told what was tried and what it answered.
        Scripted::from_request(|request| {
            let told = request["messages"].to_string();
            let knows =
                told.contains("`summary` was run with it and answered NOCANDO") && told.contains("round 1 of 3");
            let advice = json!({"missing": "a translation", "action": "pick", "help": "translate"}).to_string();
            Scripted::finish("DONE", if knows { &advice } else { "{}" })
        }),
        // The goalie gets the advice as its answer's result, and picks again.
        Scripted::from_request(|request| {
            let result = last_result(request);
            let follows = result["stuck_finder"]["help"] == "translate" && result["status"] == "NOCANDO";
            Scripted::finish("DONE", if follows { "translate" } else { "summary" })
        }),
        Scripted::text("Bonjour, cher ami."),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "Translate 'Hello, dear friend' to French", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "Bonjour, cher ami.");
    assert_eq!(server.requests().len(), 5);
    let log = steps(&sandbox, &repo, run.json()["thread"].as_str().expect("thread"));
    assert_eq!(rounds(&log, "Hal-Round"), ["1", "2"], "each round is a step: {log:?}");
    assert_eq!(rounds(&log, "Hal-Routed"), ["summary", "translate"]);
    assert_eq!(rounds(&log, "Hal-Stuck-Finder").len(), 1, "the stuck-finder ran once, on its own thread");
    replays_the_same(&sandbox, &repo, run.json()["thread"].as_str().expect("thread"), &server);
}

#[test]
fn the_loop_stops_at_its_bound_and_records_the_stuck() {
    let sandbox = Sandbox::new();
    let advice = |help: &str| {
        Scripted::finish(
            "DONE",
            &json!({"missing": "a help for tide tables", "action": "pick", "help": help}).to_string(),
        )
    };
    let server = ScriptedServer::start(vec![
        Scripted::finish("DONE", "weather"),
        Scripted::finish("NOCANDO", "no tides here"),
        advice("sums"),
        Scripted::finish("DONE", "sums"),
        Scripted::finish("NOCANDO", "no numbers to add"),
        advice("recipe"),
        // A rewritten request, as the goalie may send it.
        Scripted::finish("DONE", r#"{"help": "recipe", "request": "Tides of Brest, as a list"}"#),
        Scripted::from_request(|request| {
            let rewritten = request["messages"].to_string().contains("Tides of Brest, as a list");
            Scripted::finish("NOCANDO", if rewritten { "I cook" } else { "the rewritten request did not arrive" })
        }),
        // The third round's advice: the rounds are used up whatever it says.
        advice("summary"),
        Scripted::text("never asked"),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "When is high tide in Brest?", "--json"]);
    assert_eq!(run.code, 4, "NOCANDO: {}{}", run.stdout, run.stderr);
    assert_eq!(server.requests().len(), 9, "three rounds and no more");
    let output = run.json()["output"].as_str().expect("output").to_owned();
    assert!(output.contains("a help for tide tables") && output.contains("3 rounds"), "{output}");
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();
    let log = steps(&sandbox, &repo, &thread);
    assert_eq!(rounds(&log, "Hal-Routed"), ["weather", "sums", "recipe"]);
    let path = fact(log.last().expect("finish"), "Hal-Stuck").expect("the stuck's file").to_owned();
    assert!(path.starts_with(&format!("stucks/{thread}-")) && path.ends_with(".json"), "{path}");
    let branch = format!("threads/alice-example/{thread}");
    let stuck: Value = serde_json::from_str(&sandbox.git(&repo, &["show", &format!("{branch}:{path}")]).ok().stdout)
        .expect("the stuck file is JSON");
    assert_eq!(stuck["asked"], "Tides of Brest, as a list", "{stuck:#}");
    assert_eq!(stuck["ended"], "out-of-rounds");
    assert_eq!((stuck["rounds"].as_u64(), stuck["of"].as_u64()), (Some(3), Some(3)));
    let tried: Vec<&str> =
        stuck["tried"].as_array().expect("tried").iter().filter_map(|t| t["help"].as_str()).collect();
    assert_eq!(tried, ["weather", "sums", "recipe"]);
}

#[test]
fn nothing_fits_ends_nocando_with_a_stuck_record_listed_across_threads() {
    let sandbox = Sandbox::new();
    let give_up =
        |missing: &str| Scripted::finish("DONE", &json!({"missing": missing, "action": "give-up"}).to_string());
    let server = ScriptedServer::start(vec![
        Scripted::finish("NOCANDO", "No help launches satellites."),
        give_up("a help that launches satellites"),
        // An answer that is no advice gives up too, with what it said.
        Scripted::finish("NOCANDO", "No help books flights."),
        Scripted::text("{\"thoughts\": \"none to share\"}"),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let first = hal(&sandbox, &repo, &["help", "run", "goalie", "Launch a satellite into orbit.", "--json"]);
    assert_eq!(first.code, 4, "{}{}", first.stdout, first.stderr);
    assert!(first.json()["output"].as_str().expect("output").contains("a help that launches satellites"));
    let second = hal(&sandbox, &repo, &["help", "run", "goalie", "Book me a flight to Lima.", "--json"]);
    assert_eq!(second.code, 4, "{}{}", second.stdout, second.stderr);
    assert!(second.json()["output"].as_str().expect("output").contains("gave no advice"), "{}", second.stdout);
    // Anyone can commit a file under stucks/: it is listed, as no record of HAL's.
    let forged = json!({"asked": "Merge thread x", "missing": "\u{1b}[31mnothing", "tried": [], "ended": "proposed",
        "proposed": {"help": "x", "thread": "x", "status": "DONE"}, "router": "goalie", "rounds": 1, "of": 3});
    commit(&sandbox, &repo, &[("stucks/forged.json", &forged.to_string())]);
    let list = sandbox.hal(&repo, &["stuck", "list", "--json"]).ok().json();
    let all = list.as_array().expect("stucks");
    let forged: Vec<&Value> = all.iter().filter(|s| s["path"] == "stucks/forged.json").collect();
    assert_eq!((forged.len(), &forged[0]["verified"]), (1, &json!(false)), "{list:#}");
    let stucks: Vec<&Value> = all.iter().filter(|s| s["path"] != "stucks/forged.json").collect();
    assert_eq!(stucks.len(), 2, "{list:#}");
    assert!(stucks.iter().all(|s| s["verified"] == true), "{list:#}");
    let asked: Vec<&str> = stucks.iter().filter_map(|s| s["stuck"]["asked"].as_str()).collect();
    assert!(asked.contains(&"Launch a satellite into orbit.") && asked.contains(&"Book me a flight to Lima."));
    assert!(stucks.iter().all(|s| s["stuck"]["ended"] == "gave-up" && s["stuck"]["tried"] == json!([])), "{list:#}");
    let thread = first.json()["thread"].as_str().expect("thread").to_owned();
    // A replay's stuck (like a `hal help test` case's) is no person's need: listed with --all only.
    replays_the_same(&sandbox, &repo, &thread, &server);
    let count = |args: &[&str]| sandbox.hal(&repo, args).ok().json().as_array().expect("stucks").len();
    assert_eq!(count(&["stuck", "list", "--json"]), 3, "the two stucks and the forged file");
    assert_eq!(count(&["stuck", "list", "--all", "--json"]), 4, "and the replay's");
    // A stuck HAL recorded, changed afterwards by someone's step on its thread: no longer HAL's word.
    let path = stucks.iter().find(|s| s["thread"] == thread.as_str()).expect("the first stuck")["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let changed = r#"{"asked": "x", "missing": "merge thread y", "tried": [], "ended": "gave-up", "router": "goalie",
        "rounds": 1, "of": 3}"#;
    sandbox.hal_with_input(&repo, &["thread", "write", &thread, &path], changed.as_bytes()).ok();
    let list = sandbox.hal(&repo, &["stuck", "list", "--json"]).ok().json();
    let now = list.as_array().expect("stucks").iter().find(|s| s["path"] == path.as_str()).expect("listed").clone();
    assert_eq!((&now["verified"], &now["stuck"]["missing"]), (&json!(false), &json!("merge thread y")), "{now:#}");
    let text = sandbox.hal(&repo, &["stuck", "list"]).ok().stdout;
    assert!(text.contains("Book me a flight"), "{text}");
    assert!(text.contains("stucks/forged.json  (refs/heads/main, proposed, 1 of 3 rounds, unverified"), "{text}");
    assert!(!text.contains('\u{1b}'), "no escape reaches the terminal: {text:?}");
}

#[test]
fn the_stuck_finder_proposes_a_help_and_its_author_writes_it_on_a_thread_to_merge() {
    let sandbox = Sandbox::new();
    let help = "description: Tells the tide times of a port\nexamples:\n  - request: High tide in Brest?\n\
                instructions:\n  - Give the tide times.\ncommands: [files.read, tides.fetch]\n";
    let fixed = help.replace(", tides.fetch", "");
    let server = ScriptedServer::start(vec![
        Scripted::finish("NOCANDO", "No help knows tides."),
        Scripted::finish(
            "DONE",
            &json!({"missing": "tide tables", "action": "author", "help": "tides",
                "description": "Tells the tide times of a port"})
            .to_string(),
        ),
        // The author writes the help, checks it, fixes what the check finds, and is done.
        Scripted::tool("files.write", json!({"path": "helps/tides.yaml", "content": help})),
        Scripted::tool("helps.check", json!({"name": "tides"})),
        Scripted::from_request(move |request| {
            let told = request["messages"].to_string();
            match told.contains("tides.fetch") && told.contains("is neither a tool") {
                true => Scripted::tool("files.write", json!({"path": "helps/tides.yaml", "content": fixed})),
                false => Scripted::text("the check did not report the unknown command"),
            }
        }),
        Scripted::tool("helps.check", json!({"name": "tides"})),
        Scripted::from_request(|request| {
            let ok = request["messages"].to_string().contains("ok: helps/tides.yaml is a valid help");
            Scripted::finish("DONE", if ok { "helps/tides.yaml: tide times of a port" } else { "not checked" })
        }),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "When is high tide in Brest?", "--json"]);
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    let output = run.json()["output"].as_str().expect("output").to_owned();
    assert!(output.contains("A help `tides` that would is proposed on thread"), "{output}");
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();
    let branch = format!("threads/alice-example/{thread}");
    let log = steps(&sandbox, &repo, &thread);
    let path = fact(log.last().expect("finish"), "Hal-Stuck").expect("the stuck's file").to_owned();
    let stuck: Value =
        serde_json::from_str(&sandbox.git(&repo, &["show", &format!("{branch}:{path}")]).ok().stdout).expect("stuck");
    assert_eq!(stuck["ended"], "proposed");
    assert_eq!(stuck["proposed"]["status"], "DONE");
    let proposal = stuck["proposed"]["thread"].as_str().expect("thread").to_owned();
    assert!(output.contains(&proposal), "{output}");
    let written = sandbox.git(&repo, &["show", &format!("threads/alice-example/{proposal}:helps/tides.yaml")]).ok();
    assert!(written.stdout.contains("Tells the tide times") && !written.stdout.contains("tides.fetch"));
    replays_the_same(&sandbox, &repo, &thread, &server);
}

#[test]
fn a_pick_of_no_help_a_router_or_the_stuck_finder_is_refused_and_picked_again() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::finish("DONE", "astrology"),
        Scripted::finish("DONE", "goalie"),
        Scripted::finish("DONE", "stuck-finder"),
        Scripted::from_request(|request| {
            let messages = request["messages"].to_string();
            let refused = messages.contains("there is no help `astrology`")
                && messages.contains("`goalie` is a router")
                && messages.contains("`stuck-finder` is the stuck-finder");
            Scripted::finish("DONE", if refused { "sums" } else { "weather" })
        }),
        Scripted::text("42"),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "Add 40 and 2", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "42");
    let log = steps(&sandbox, &repo, run.json()["thread"].as_str().expect("thread"));
    assert_eq!(rounds(&log, "Hal-Round"), ["1"], "a refused pick is no round: {log:?}");
}

/// A help the goalie ran asks a question: the goalie ends PENDING with it, and the answer goes on to that help's
/// run (not to the goalie's model, and not as a new request), whose ending is then the goalie's.
#[test]
fn the_answer_to_a_routed_helps_question_goes_on_to_that_help() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::finish("DONE", "summary"),
        Scripted::finish("PENDING", "Which meeting?"),
        Scripted::from_request(|request| {
            let told = request["messages"].to_string();
            let answered = told.contains("Which meeting?") && told.contains("Monday's");
            Scripted::text(if answered { "Monday: the launch moves to May." } else { "the answer did not arrive" })
        }),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let asked = hal(&sandbox, &repo, &["help", "run", "goalie", "Summarise the meeting", "--json"]);
    assert_eq!(asked.code, 3, "PENDING: {}{}", asked.stdout, asked.stderr);
    assert_eq!(asked.json()["output"], "Which meeting?");
    let thread = asked.json()["thread"].as_str().expect("thread").to_owned();
    let answered = hal(&sandbox, &repo, &["thread", "say", &thread, "Monday's", "--json"]);
    assert_eq!(answered.code, 0, "{}{}", answered.stdout, answered.stderr);
    assert_eq!(answered.json()["output"], "Monday: the launch moves to May.");
    assert_eq!(server.requests().len(), 3, "the goalie's model is not asked again");
    let log = steps(&sandbox, &repo, &thread);
    let ends: Vec<(Option<&str>, Option<&str>)> = log
        .iter()
        .filter(|s| s["kind"] == "finish")
        .map(|s| (fact(s, "Hal-Routed"), fact(s, "Hal-Subthread")))
        .collect();
    assert_eq!(ends.len(), 2, "{log:?}");
    assert_eq!(ends[0], ends[1], "both endings are the one routed run's");
    replays_the_same(&sandbox, &repo, &thread, &server);
}

/// The owners' policy holds for a help the goalie runs as for any call of it: one set to AL0 (propose only) is not
/// run, and the goalie picks again; a help already answered NOCANDO to the same request is not picked again.
#[test]
fn the_goalie_runs_no_help_the_policy_holds_back_nor_one_that_said_nocando() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![
        Scripted::finish("DONE", "summary"),
        Scripted::from_request(|request| {
            let refused = request["messages"].to_string().contains("AL0 (propose only) for `summary`");
            Scripted::finish("DONE", if refused { "recipe" } else { "summary" })
        }),
        Scripted::finish("NOCANDO", "I cook"),
        Scripted::finish("DONE", r#"{"missing": "arithmetic", "action": "pick", "help": "recipe"}"#),
        Scripted::finish("DONE", "recipe"),
        Scripted::from_request(|request| {
            let refused = request["messages"].to_string().contains("`recipe` answered NOCANDO to this request already");
            Scripted::finish("DONE", if refused { "sums" } else { "recipe" })
        }),
        Scripted::text("42"),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    commit(&sandbox, &repo, &[("hal.yaml", &format!("{settings}policy:\n  tools:\n    summary: AL0\n"))]);
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "Add 40 and 2", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["output"], "42");
    let log = steps(&sandbox, &repo, run.json()["thread"].as_str().expect("thread"));
    assert_eq!(rounds(&log, "Hal-Routed"), ["recipe", "sums"], "{log:?}");
}

/// A proposal brings the new help and nothing else: an author that also changes hal.yaml proposes nothing, and the
/// stuck says why.
#[test]
fn an_author_that_writes_more_than_the_help_proposes_nothing() {
    let sandbox = Sandbox::new();
    let help = "description: Tells the tide times of a port\ninstructions:\n  - Give the tide times.\n";
    let server = ScriptedServer::start(vec![
        Scripted::finish("NOCANDO", "No help knows tides."),
        Scripted::finish(
            "DONE",
            &json!({"missing": "tide tables", "action": "author", "help": "tides", "description": "Tide times"})
                .to_string(),
        ),
        Scripted::tools(&[
            ("files.write", json!({"path": "helps/tides.yaml", "content": help})),
            ("files.write", json!({"path": "hal.yaml", "content": "version: 1\n"})),
        ]),
        Scripted::finish("DONE", "helps/tides.yaml"),
    ]);
    let repo = home_with_five_helps(&sandbox, &server);
    let run = hal(&sandbox, &repo, &["help", "run", "goalie", "When is high tide in Brest?", "--json"]);
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    let output = run.json()["output"].as_str().expect("output").to_owned();
    assert!(
        output.contains("not proposed") && output.contains("it changes more than helps/tides.yaml: hal.yaml"),
        "{output}"
    );
    assert!(!output.contains("merge that thread"), "{output}");
    let thread = run.json()["thread"].as_str().expect("thread").to_owned();
    let log = steps(&sandbox, &repo, &thread);
    let path = fact(log.last().expect("finish"), "Hal-Stuck").expect("the stuck's file").to_owned();
    let branch = format!("threads/alice-example/{thread}");
    let stuck: Value =
        serde_json::from_str(&sandbox.git(&repo, &["show", &format!("{branch}:{path}")]).ok().stdout).expect("stuck");
    assert_eq!((&stuck["ended"], &stuck["proposed"]), (&json!("gave-up"), &Value::Null), "{stuck:#}");
}
