//! The owners' policy beyond one help's own run: a help's rules hold for the sub-helps it calls, and a rule that
//! names a plugin version holds for the name its newest version is offered under.

use super::*;
use hal_model::ToolSpec;
use hal_runner::record::fact;
use hal_runner::tools::{BoxFuture, Tool, ToolContext, ToolResult, Toolbox};

/// A home repo with `helps` on main and `policy` appended to its hal.yaml, signed.
fn home_with_policy(dir: &Path, helps: &[(&str, &str)], policy: &str) {
    drop(home_with(dir, helps));
    let settings = std::fs::read_to_string(dir.join("hal.yaml")).expect("hal.yaml");
    std::fs::write(dir.join("hal.yaml"), format!("{settings}{policy}")).expect("write");
    git(dir, &["commit", "-q", "-am", "policy"]);
}

/// Run `help` on a new thread with `recording`, through `toolbox`; the thread and the outcome.
fn run_with(dir: &Path, toolbox: Toolbox, help: &str, recording: Recording) -> (hal_store::ThreadRef, Home) {
    let recording = Arc::new(recording);
    let home = Home::open(dir).expect("open");
    let thread = home.new_thread("alice", None, Some(help)).expect("thread");
    let catalog = Catalog::load(&home).expect("catalog");
    let runner = Runner::new(SharedHome::new(home), Arc::new(catalog), toolbox);
    let models = Arc::new(recording) as Arc<dyn Models>;
    let outcome = runtime().block_on(runner.run(models, &thread, "alice", help, "go")).expect("run");
    assert_eq!(outcome.status, Status::Done, "{}", outcome.output);
    (thread, Home::open(dir).expect("open"))
}

/// The tool steps of every thread, oldest thread first.
fn tool_steps(home: &Home) -> Vec<hal_store::Step> {
    let mut threads = home.list_threads().expect("threads");
    threads.sort_by(|a, b| a.id.cmp(&b.id));
    let logs = threads.iter().map(|t| home.thread_log(&t.id, None).expect("log"));
    logs.flatten().filter(|s| s.kind == StepKind::Tool).collect()
}

/// Regression: `policy.helps.<help>` held for that help's own calls only, so a help held to AL0 for
/// `files.write` could write through any sub-help it was allowed to call.
#[test]
fn a_helps_own_rule_holds_for_the_sub_helps_it_calls() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let helps = [
        ("outer", "description: Delegates\ncommands: [inner]\n"),
        ("inner", "description: Writes\ncommands: [files]\n"),
    ];
    home_with_policy(dir.path(), &helps, "policy:\n  helps:\n    outer: {files.write: AL0}\n");
    let inner = Arc::new(Recording::new(
        vec![call("w", "files.write", r#"{"path":"a","content":"1"}"#), text("wrote it")],
        vec![],
    ));
    let outer = Recording::new(vec![call("c", "inner", r#"{"input":"write a"}"#), text("done")], vec![inner]);
    let (_, home) = run_with(dir.path(), write_tool::toolbox(), "outer", outer);
    let write = tool_steps(&home).into_iter().find(|s| s.fact(fact::TOOL) == Some("files.write")).expect("a write");
    assert!(write.text.starts_with("proposed, not executed: policy.helps.outer.files.write"), "{}", write.text);
    let threads = home.list_threads().expect("threads");
    for thread in threads {
        let tip = home.resolve_thread(&thread.id).expect("thread").tip;
        assert_eq!(home.file_at(tip, "a").expect("read"), None, "nothing was written on {}", thread.id);
    }

    // Run alone, the sub-help is under its own rules: it writes.
    let alone =
        Recording::new(vec![call("w", "files.write", r#"{"path":"a","content":"1"}"#), text("wrote it")], vec![]);
    let (thread, home) = run_with(dir.path(), write_tool::toolbox(), "inner", alone);
    let tip = home.resolve_thread(&thread.id).expect("thread").tip;
    assert_eq!(home.file_at(tip, "a").expect("read").as_deref(), Some(&b"1"[..]));
}

/// A plugin's newest version, offered as `wc.count`, which is `wc@v2.count`.
struct Count(ToolSpec);

impl Tool for Count {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn policy_names(&self) -> Vec<String> {
        vec!["wc@v2.count".to_owned()]
    }

    fn call<'a>(&'a self, _: serde_json::Value, _: &'a mut ToolContext) -> BoxFuture<'a, ToolResult> {
        Box::pin(async { ToolResult::ok("3 words") })
    }
}

fn toolbox_with_count() -> Toolbox {
    let mut toolbox = write_tool::toolbox();
    let spec = ToolSpec {
        name: "wc.count".into(),
        description: "Count words".into(),
        parameters: serde_json::json!({"type": "object"}),
    };
    toolbox.add(Arc::new(Count(spec))).expect("a valid schema");
    toolbox
}

/// Regression: a rule for `wc@v2` (AL0, or disabled) did not hold for `wc.count`, the same version under the
/// plugin's name while it is the newest: a help naming `wc` ran what the owners had held back.
#[test]
fn a_rule_for_a_plugin_version_holds_under_the_name_its_newest_version_has() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let helps = [("counter", "description: Counts\ncommands: [wc]\n")];
    home_with_policy(dir.path(), &helps, "policy:\n  tools: {wc: AL3, wc@v2: AL0}\n");
    let replies = Recording::new(vec![call("c", "wc.count", "{}"), text("done")], vec![]);
    let (_, home) = run_with(dir.path(), toolbox_with_count(), "counter", replies);
    let count = tool_steps(&home).into_iter().next().expect("the call");
    assert!(count.text.starts_with("proposed, not executed: policy.tools.wc@v2"), "{}", count.text);

    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    home_with_policy(dir.path(), &helps, "policy:\n  disabled: [wc@v2]\n");
    let replies = Recording::new(vec![call("c", "wc.count", "{}"), text("done")], vec![]).keeping_requests();
    let recording = Arc::new(replies);
    let home = Home::open(dir.path()).expect("open");
    let thread = home.new_thread("alice", None, None).expect("thread");
    let catalog = Catalog::load(&home).expect("catalog");
    let runner = Runner::new(SharedHome::new(home), Arc::new(catalog), toolbox_with_count());
    let models = Arc::new(recording.clone()) as Arc<dyn Models>;
    let _ = runtime().block_on(runner.run(models, &thread, "alice", "counter", "go")).expect("run");
    let offered: Vec<String> = recording.requests()[0].tools.iter().map(|t| t.name.clone()).collect();
    assert!(!offered.contains(&"wc.count".to_owned()), "{offered:?}");
}

/// A rate limit naming a plugin version holds for calls under the plugin's name, and counts them.
#[test]
fn a_rate_limit_for_a_plugin_version_counts_calls_under_its_name() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let helps = [("counter", "description: Counts\ncommands: [wc]\n")];
    home_with_policy(dir.path(), &helps, "rate_limits:\n  tools: {wc@v2: 1}\n  wait_seconds: 0\n");
    let home = Home::open(dir.path()).expect("open");
    let thread = home.new_thread("alice", None, Some("counter")).expect("thread");
    let catalog = Catalog::load(&home).expect("catalog");
    let runner = Runner::new(SharedHome::new(home), Arc::new(catalog), toolbox_with_count());
    let twice = Reply {
        tool_calls: vec![
            ToolCall { id: "a".into(), name: "wc.count".into(), arguments: "{}".into() },
            ToolCall { id: "b".into(), name: "wc.count".into(), arguments: "{}".into() },
        ],
        ..Reply::default()
    };
    let models = Arc::new(Arc::new(Recording::new(vec![twice, text("done")], vec![]))) as Arc<dyn Models>;
    let outcome = runtime().block_on(runner.run(models, &thread, "alice", "counter", "go")).expect("run");
    assert_eq!(outcome.status, Status::Pending, "{}", outcome.output);
    assert!(outcome.output.contains("rate_limits.tools.wc@v2 allows 1 calls an hour"), "{}", outcome.output);
}

/// Regression: a run answering a message another help's run relayed, and a person's message that came after it,
/// took the helps whose rules hold from the newest message only: the relaying help's rules were lost.
#[test]
fn a_relaying_helps_rules_hold_for_the_run_that_answers_its_message_with_later_ones() {
    use hal_store::{NewStep, ThreadStatus};
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let helps = [("writer", "description: Writes\ncommands: [files]\n")];
    home_with_policy(dir.path(), &helps, "policy:\n  helps:\n    outer: {files.write: AL0}\n");
    let home = Home::open(dir.path()).expect("open");
    let thread = home.new_thread("alice", None, Some("writer")).expect("thread");
    // What `threads.say` from a run of `outer` writes: HAL's message for alice, its chain recorded.
    let mut relayed = NewStep::new(StepKind::Message, "write a", ThreadStatus::Open)
        .fact(fact::FOR, "alice")
        .fact(fact::HELP, "writer");
    relayed.chain_depth = Some(1);
    relayed.held_by = vec!["outer".to_owned()];
    home.append_step("hal", &thread, &relayed).expect("relayed");
    home.say("alice", &thread.id, "and quickly, please").expect("say");
    let thread = home.resolve_thread(&thread.id).expect("thread");
    let catalog = Catalog::load(&home).expect("catalog");
    let runner = Runner::new(SharedHome::new(home), Arc::new(catalog), write_tool::toolbox());
    let replies = vec![call("w", "files.write", r#"{"path":"a","content":"1"}"#), text("done")];
    let models = Arc::new(Arc::new(Recording::new(replies, vec![]))) as Arc<dyn Models>;
    runtime().block_on(runner.resume(models, &thread, "alice", "writer")).expect("run");
    let home = Home::open(dir.path()).expect("open");
    let write = tool_steps(&home).into_iter().next().expect("the call");
    assert!(write.text.starts_with("proposed, not executed: policy.helps.outer.files.write"), "{}", write.text);
}
