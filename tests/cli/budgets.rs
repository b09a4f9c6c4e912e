//! Budgets: a run that reaches one ends PENDING with a budget request; an owner's `hal approve --amount` grants
//! more and the run goes on, `hal deny` ends it. What runs spent is HAL's record of the replies it wrote: every
//! `hal` process below reads it afresh, as a restarted daemon does.

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

use crate::support::Sandbox;

/// A home repo with the scripted model priced at $1 / $2 per million tokens, a help `writer`, and `budgets`.
fn home_with_budgets(sandbox: &Sandbox, server: &ScriptedServer, budgets: &str) -> std::path::PathBuf {
    let repo = crate::runs::home_with_model(sandbox, server, "openai");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let settings =
        settings.replace("    model: scripted-1\n", "    model: scripted-1\n    price: {input: 1, output: 2}\n");
    crate::runs::commit(
        sandbox,
        &repo,
        &[
            ("hal.yaml", &format!("{settings}budgets:\n{budgets}")),
            ("helps/writer.yaml", "description: Writes files\ncommands: [files]\n"),
        ],
    );
    repo
}

fn write(path: &str) -> Scripted {
    Scripted::tool("files.write", json!({"path": path, "content": "x"})).usage(60, 10)
}

#[test]
fn a_thread_budget_stops_the_run_and_an_owners_grant_lets_it_go_on() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![write("a"), write("b"), Scripted::text("done").usage(10, 5)]);
    let repo = home_with_budgets(&sandbox, &server, "  thread: {tokens: 100}\n");
    let run = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "write a and b", "--json"]);
    assert_eq!(run.code, 3, "PENDING: {}{}", run.stdout, run.stderr);
    let end = run.json();
    // Checked before each model call: the second reply took it past 100, the third was not asked for.
    assert_eq!(
        end["waiting"],
        json!({"for": "budget", "budget": "thread", "unit": "tokens", "spent": 140.0, "limit": 100.0}),
        "{end:#}"
    );
    assert_eq!(server.requests().len(), 2);
    let id = end["thread"].as_str().expect("thread").to_owned();
    let without = crate::runs::hal(&sandbox, &repo, &["approve", &id]);
    assert!(without.code != 0 && without.stderr.contains("--amount"), "{}", without.stderr);
    let wrong = crate::runs::hal(&sandbox, &repo, &["approve", &id, "--amount", "1000", "--scope", "thread"]);
    assert!(wrong.code != 0, "a budget is granted once");
    let granted = crate::runs::hal(&sandbox, &repo, &["approve", &id, "--amount", "1000"]);
    assert_eq!(granted.code, 0, "{}{}", granted.stdout, granted.stderr);
    assert!(granted.stdout.contains("done"), "{}", granted.stdout);
    assert_eq!(server.requests().len(), 3);
    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let decision = log.as_array().expect("steps").iter().find(|s| s["kind"] == "decision").expect("decision").clone();
    assert_eq!(decision["text"], "approved by alice-example: 1000 tokens more of the budget thread", "{decision:#}");
}

#[test]
fn a_help_budget_per_day_in_dollars_holds_across_processes_and_a_denial_ends_the_run() {
    crate::support::clear_of_utc_midnight();
    let sandbox = Sandbox::new();
    // 60 tokens in at $1/M and 10 out at $2/M: $0.00008 a reply.
    let server = ScriptedServer::start(vec![write("a"), Scripted::text("done").usage(60, 10)]);
    let repo = home_with_budgets(&sandbox, &server, "  help_per_day: {usd: 0.0001}\n");
    let first = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "write a", "--json"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    // Deleting the thread that spent it gives nothing back: HAL's record of what runs spent keeps it.
    let spent = format!("threads/alice-example/{}", first.json()["thread"].as_str().expect("thread"));
    sandbox.git(&repo, &["branch", "-D", &spent]).ok();
    // Another thread of the same help, in another process: today's spend is read from HAL's record.
    let second = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "write b", "--json"]);
    assert_eq!(second.code, 3, "{}{}", second.stdout, second.stderr);
    let end = second.json();
    assert!(end["waiting"]["budget"].as_str().is_some_and(|b| b.starts_with("help-per-day writer ")), "{end:#}");
    assert!(end["output"].as_str().expect("output").contains("$0.00016 of $0.0001"), "{end:#}");
    assert_eq!(end["waiting"]["unit"], "usd", "{end:#}");
    assert_eq!(server.requests().len(), 2, "the second run did not reach the model");
    let id = end["thread"].as_str().expect("thread").to_owned();
    let denied = crate::runs::hal(&sandbox, &repo, &["deny", &id, "--reason", "enough for today"]);
    assert_eq!(denied.code, 1, "ERROR: {}{}", denied.stdout, denied.stderr);
    assert!(denied.stdout.contains("alice-example did not grant more budget"), "{}", denied.stdout);
    assert!(denied.stdout.contains("enough for today"), "{}", denied.stdout);
    assert_eq!(server.requests().len(), 2, "nothing more was asked of the model");
}

#[test]
fn a_dollar_budget_without_every_models_price_is_refused() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = crate::runs::home_with_model(&sandbox, &server, "openai");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let budgets = format!("{settings}budgets:\n  thread: {{usd: 1}}\n");
    crate::runs::commit(
        &sandbox,
        &repo,
        &[("hal.yaml", &budgets), ("helps/writer.yaml", "description: W\ncommands: [files]\n")],
    );
    let run = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "write a"]);
    assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("models.scripted: a budget in dollars is set"), "{}", run.stderr);
    assert!(server.requests().is_empty());
}

/// The ledger counts only what HAL wrote: a reply pushed onto the thread claiming a million tokens spends nothing.
#[test]
fn a_reply_pushed_by_someone_else_spends_nothing() {
    let sandbox = Sandbox::new();
    let server =
        ScriptedServer::start(vec![Scripted::text("hello").usage(10, 5), Scripted::text("still here").usage(10, 5)]);
    let repo = home_with_budgets(&sandbox, &server, "  thread: {tokens: 1000}\n");
    let first = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "hi", "--json"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let id = first.json()["thread"].as_str().expect("thread").to_owned();
    let branch = format!("refs/heads/threads/alice-example/{id}");
    let reply =
        sandbox.git(&repo, &["log", "-1", "--format=%H", "--grep=Hal-Kind: reply", &branch]).ok().out().to_owned();
    let message = sandbox.git(&repo, &["log", "-1", "--format=%B", &reply]).ok().stdout;
    assert!(message.contains("Hal-Tokens-In: 10"), "{message}");
    let forged = message.replace("Hal-Tokens-In: 10", "Hal-Tokens-In: 1000000");
    let tip = crate::support::rev(&sandbox, &repo, &branch);
    let tree = crate::support::rev(&sandbox, &repo, &format!("{tip}^{{tree}}"));
    let pushed = sandbox.git(&repo, &["commit-tree", &tree, "-p", &tip, "-m", &forged]).ok().out().to_owned();
    sandbox.git(&repo, &["update-ref", &branch, &pushed]).ok();
    let again = crate::runs::hal(&sandbox, &repo, &["help", "run", "writer", "again", "--thread", &id, "--json"]);
    assert_eq!(again.code, 0, "not stopped by a budget: {}{}", again.stdout, again.stderr);
    assert_eq!(again.json()["output"], "still here");
}

/// Regression: a help whose name has a space (its file's name) runs, and what it spends is counted.
#[test]
fn a_help_named_with_a_space_runs_and_is_counted() {
    crate::support::clear_of_utc_midnight();
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![write("a"), Scripted::text("done").usage(10, 5)]);
    let repo = home_with_budgets(&sandbox, &server, "  help_per_day: {tokens: 80}\n");
    crate::runs::commit(&sandbox, &repo, &[("helps/my writer.yaml", "description: Writes\ncommands: [files]\n")]);
    let first = crate::runs::hal(&sandbox, &repo, &["help", "run", "my writer", "write a", "--json"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let second = crate::runs::hal(&sandbox, &repo, &["help", "run", "my writer", "write b", "--json"]);
    assert_eq!(second.code, 3, "today's 85 tokens are counted: {}{}", second.stdout, second.stderr);
    assert!(second.json()["output"].as_str().expect("output").contains("help my writer's budget"), "{}", second.stdout);
}
