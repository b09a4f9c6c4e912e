//! Which turns HAL takes, and on what: replies and steps that are not HAL's own, copies of messages, unsigned
//! messages once a remote exists, members, and the owners' autonomy levels.

use super::*;

/// Regression: a branch pointed at an old reply of HAL's, with a step of HAL's written on top (a merge proposal,
/// say), made that step "the tip HAL left the branch at", and the old reply's calls ran again at the next resume.
#[test]
fn regression_a_step_of_hals_on_a_borrowed_reply_does_not_replay_its_calls() {
    use hal_runner::record::{ReplyData, fact};
    use hal_store::{NewStep, StepKind, ThreadStatus};
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let home = home_with(dir.path(), &[("writer", "description: Writes\ncommands: [files]\n")]);
    let thread = home.new_thread("alice", None, None).expect("thread");
    let reply = call("c1", "files.write", r#"{"path":"a","content":"1"}"#);
    let mut step = NewStep::new(StepKind::Reply, "calls", ThreadStatus::Running).fact(fact::HELP, "writer");
    step.data = Some(serde_json::to_string(&ReplyData { reply, response: None, request_bytes: 0 }).expect("json"));
    let old_reply = home.append_step("hal", &thread, &step).expect("reply").commit;
    drop(home);
    // Another branch points at HAL's reply, and HAL writes a note on it.
    let last = if thread.id.ends_with('x') { 'y' } else { 'x' };
    let borrowed = format!("threads/alice/{}{last}", &thread.id[..10]);
    git(dir.path(), &["update-ref", &format!("refs/heads/{borrowed}"), &old_reply.to_string()]);
    let home = Home::open(dir.path()).expect("open");
    let other = home.resolve_thread(&borrowed).expect("thread");
    let note = NewStep::new(StepKind::System, "a note", ThreadStatus::Running);
    home.append_step("hal", &other, &note).expect("note");
    let other = home.resolve_thread(&borrowed).expect("thread");
    assert!(home.is_tip_written(&other.branch, other.tip).expect("record"), "HAL left the branch at its note");
    drop(home);
    let recording = Arc::new(Recording::new(vec![text("asked again")], vec![]));
    let outcome = runtime()
        .block_on(runner(dir.path()).resume(Arc::new(recording) as Arc<dyn Models>, &other, "alice", "writer"))
        .expect("resume");
    assert_eq!(outcome.output, "asked again");
    let home = Home::open(dir.path()).expect("open");
    let log: Vec<(String, String, String)> = home
        .thread_log(&other.branch, None)
        .expect("log")
        .into_iter()
        .map(|s| (s.kind.to_string(), s.actor, s.text.chars().take(60).collect()))
        .collect();
    assert_eq!(home.file_at(outcome.commit, "a").expect("read"), None, "the borrowed call did not run: {log:?}");
}

/// A plain commit by a person on `branch` with `message`, on top of `tip`; the branch moves to it.
fn push_plain(dir: &Path, branch: &str, tip: &str, message: &str) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Alice", "-c", "user.email=a@example.com", "commit-tree", &format!("{tip}^{{tree}}")])
        .args(["-p", tip, "-m", message])
        .current_dir(dir)
        .output()
        .expect("git commit-tree");
    let commit = String::from_utf8(output.stdout).expect("utf-8").trim().to_owned();
    git(dir, &["update-ref", &format!("refs/heads/{branch}"), &commit, tip]);
    commit
}

/// The turn a plan decided on is the one that runs: a commit pushed after the plan read the tip is not mixed into
/// it (the runner does not read the tip again); it stays on the branch under the run's steps, for the next turn.
#[test]
fn a_turn_answers_the_tip_its_plan_read_not_one_pushed_after() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let home = home_with(dir.path(), &[("writer", "description: Writes\ncommands: [files]\n")]);
    let thread = home.new_thread("alice", None, Some("t")).expect("thread");
    drop(home);
    // A first run names the help the thread's next turns run.
    let first = Arc::new(Recording::new(vec![text("hello")], vec![]));
    let outcome = runtime()
        .block_on(runner(dir.path()).run(Arc::new(first) as Arc<dyn Models>, &thread, "alice", "writer", "hi"))
        .expect("run");
    let home = Home::open(dir.path()).expect("open");
    push_plain(dir.path(), &thread.branch, &outcome.commit.to_string(), "First question.");
    let thread = home.resolve_thread(&thread.id).expect("thread");
    let admit = Admit::for_repo(&home, &Default::default());
    let Plan::Turn { help, agent, actor } = plan_for(&home, &thread, false, admit).expect("plan") else {
        panic!("a message at the tip")
    };
    let turn = Turn::read(&home, &thread, &help, &agent, &actor).expect("read");
    assert_eq!((turn.thread.tip, turn.help.as_str()), (thread.tip, "writer"));
    let pushed = push_plain(dir.path(), &thread.branch, &thread.tip.to_string(), "Second, pushed after the plan.");
    drop(home);

    let recording = Arc::new(Recording::new(vec![text("answered the first")], vec![]).keeping_requests());
    let outcome = runtime()
        .block_on(runner(dir.path()).run_turn(Arc::new(recording.clone()) as Arc<dyn Models>, &turn))
        .expect("turn");
    assert_eq!(outcome.status, Status::Done);
    let messages = &recording.requests()[0].messages;
    assert_eq!(messages.last(), Some(&hal_model::Message::User { text: "First question.".into() }));
    assert!(!format!("{messages:?}").contains("Second, pushed"), "{messages:#?}");
    // The run's steps were built on the pushed commit, which is still there for the next turn to answer.
    let home = Home::open(dir.path()).expect("open");
    let log: Vec<String> =
        home.thread_log(&thread.id, None).expect("log").iter().map(|s| s.commit.to_string()).collect();
    assert!(log.contains(&pushed), "{log:?}");
}

/// A person's plain-git message is answered when it is signed by a key that counts; unsigned, only while the repo
/// has no remote (or `trust.unsigned_messages: accept` says so), otherwise the plan says why it is ignored.
#[test]
fn an_unsigned_plain_message_is_ignored_once_the_repo_has_a_remote_and_a_signed_one_is_answered() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let home = home_with(dir.path(), &[("writer", "description: Writes\ncommands: [files]\n")]);
    let thread = home.new_thread("alice", None, Some("t")).expect("thread");
    let plan = |home: &Home, settings: &hal_spec::TrustSettings| {
        let thread = home.resolve_thread(&thread.id).expect("thread");
        plan_for(home, &thread, false, Admit::for_repo(home, settings)).expect("plan")
    };
    let unsigned = push_plain(dir.path(), &thread.branch, &thread.tip.to_string(), "Unsigned question.");
    assert!(matches!(plan(&home, &Default::default()), Plan::Turn { .. }), "no remote: answered");

    git(dir.path(), &["remote", "add", "origin", "https://example.invalid/repo.git"]);
    let Plan::Ignore { reason } = plan(&home, &Default::default()) else { panic!("a remote: ignored") };
    assert!(reason.contains(&unsigned) && reason.contains("not signed") && reason.contains("has a remote"), "{reason}");
    let accept = hal_spec::TrustSettings { unsigned_messages: Some(hal_spec::UnsignedMessages::Accept) };
    assert!(matches!(plan(&home, &accept), Plan::Turn { .. }), "accept: answered");

    // Signed with the key `hal init` set as git's signing key: answered, remote or not.
    let tree = format!("{unsigned}^{{tree}}");
    let output = Command::new("git")
        .args(["-c", "user.name=Alice", "-c", "user.email=a@example.com", "commit-tree", "-S", &tree, "-p", &unsigned])
        .args(["-m", "Signed question."])
        .current_dir(dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git commit-tree");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let signed = String::from_utf8(output.stdout).expect("utf-8").trim().to_owned();
    git(dir.path(), &["update-ref", &format!("refs/heads/{}", thread.branch), &signed, &unsigned]);
    assert!(matches!(plan(&home, &Default::default()), Plan::Turn { .. }), "signed: answered");

    // The turn that answers it shows the model the signed question, not the unsigned one before it.
    let Plan::Turn { agent, actor, .. } = plan(&home, &Default::default()) else { panic!("a turn") };
    let turn = Turn::read(&home, &home.resolve_thread(&thread.id).expect("thread"), "writer", &agent, &actor);
    let turn = turn.expect("turn");
    drop(home);
    let recording = Arc::new(Recording::new(vec![text("answered")], vec![]).keeping_requests());
    let models = Arc::new(recording.clone()) as Arc<dyn Models>;
    runtime().block_on(runner(dir.path()).run_turn(models, &turn)).expect("turn runs");
    let asked = format!("{:?}", recording.requests()[0].messages);
    assert!(asked.contains("Signed question.") && !asked.contains("Unsigned question."), "{asked}");
    assert!(asked.contains(&format!("step {unsigned} is left out")), "{asked}");
}

/// A person's message copied to a branch of its own (a new thread id, or another actor's branch with the same id)
/// is not answered again: it names another thread, or a run answered it on its own branch already.
#[test]
fn a_message_copied_to_another_branch_is_not_answered_again() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let home = home_with(dir.path(), &[("writer", "description: Writes\ncommands: [files]\n")]);
    let thread = home.new_thread("alice", None, Some("t")).expect("thread");
    let message = home.say("alice", &thread.id, "deploy it").expect("say").commit;
    let thread = home.resolve_thread(&thread.id).expect("thread");
    drop(home);
    let recording = Arc::new(Recording::new(vec![text("deployed")], vec![]));
    let outcome = runtime()
        .block_on(runner(dir.path()).resume(Arc::new(recording) as Arc<dyn Models>, &thread, "alice", "writer"))
        .expect("the first answer");
    assert_eq!(outcome.output, "deployed");

    let plan = |branch: &str| {
        git(dir.path(), &["update-ref", &format!("refs/heads/{branch}"), &message.to_string()]);
        let home = Home::open(dir.path()).expect("open");
        let copy = home.resolve_thread(branch).expect("the copy");
        plan_for(&home, &copy, false, Admit::for_repo(&home, &Default::default())).expect("plan")
    };
    let Plan::Ignore { reason } = plan("threads/alice/0000000000a") else { panic!("a copy under a new id") };
    assert!(reason.contains("says it belongs to thread") && reason.contains("a copy"), "{reason}");
    let Plan::Ignore { reason } = plan(&format!("threads/mallory/{}", thread.id)) else { panic!("same id") };
    assert!(reason.contains("was answered on") && reason.contains("a copy"), "{reason}");
}

/// `policy` in hal.yaml: at AL0 a call is recorded and not run (the model hears "proposed, not executed"); at AL2
/// it runs and the owner is told; a disabled help is not offered as a command.
#[test]
fn autonomy_levels_propose_tell_and_disable() {
    use hal_runner::record::fact;
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let helps = [
        ("proposer", "description: Proposes\ncommands: [files, other]\n"),
        ("teller", "description: Tells\ncommands: [files]\n"),
        ("other", "description: Another\n"),
    ];
    let home = home_with(dir.path(), &helps);
    let settings = std::fs::read_to_string(dir.path().join("hal.yaml")).expect("hal.yaml");
    let policy = "policy:\n  helps:\n    proposer: {files.write: AL0}\n    teller: {files: AL2}\n  disabled: [other]\n";
    std::fs::write(dir.path().join("hal.yaml"), format!("{settings}{policy}")).expect("write");
    git(dir.path(), &["commit", "-q", "-am", "policy"]);
    drop(home);
    let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let run = |help: &str| {
        let home = Home::open(dir.path()).expect("open");
        let thread = home.new_thread("alice", None, Some(help)).expect("thread");
        home.say("alice", &thread.id, "write a").expect("say");
        let thread = home.resolve_thread(&thread.id).expect("thread");
        let catalog = Catalog::load(&home).expect("catalog");
        let told = told.clone();
        let teller = Arc::new(move |_: &str, text: &str| told.lock().expect("lock").push(text.to_owned()));
        let runner = Runner::new(SharedHome::new(home), Arc::new(catalog), write_tool::toolbox()).with_teller(teller);
        let replies = vec![call("c1", "files.write", r#"{"path":"a","content":"1"}"#), text("done")];
        let recording = Arc::new(Recording::new(replies, vec![]).keeping_requests());
        let models = Arc::new(recording.clone()) as Arc<dyn Models>;
        let outcome = runtime().block_on(runner.resume(models, &thread, "alice", help)).expect("run");
        assert_eq!(outcome.status, Status::Done);
        (thread, outcome, recording)
    };

    let (thread, outcome, recording) = run("proposer");
    let home = Home::open(dir.path()).expect("open");
    assert_eq!(home.file_at(outcome.commit, "a").expect("read"), None, "AL0: not run");
    let steps = home.thread_log(&thread.id, None).expect("log");
    let tool = steps.iter().find(|s| s.kind == StepKind::Tool).expect("a tool step");
    assert!(tool.text.starts_with("proposed, not executed: policy.helps.proposer.files.write"), "{}", tool.text);
    assert_eq!(tool.fact(fact::TOOL), Some("files.write"));
    assert_eq!(tool.fact(fact::AUTONOMY), Some("AL0"), "a proposal says so in its trailers");
    let offered: Vec<String> = recording.requests()[0].tools.iter().map(|t| t.name.clone()).collect();
    assert!(!offered.contains(&"other".to_owned()) && offered.contains(&"files.write".to_owned()), "{offered:?}");
    assert!(told.lock().expect("lock").is_empty(), "nothing ran");

    let (_, outcome, _) = run("teller");
    assert_eq!(home.file_at(outcome.commit, "a").expect("read").as_deref(), Some(&b"1"[..]), "AL2: it ran");
    let told = told.lock().expect("lock").clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].starts_with("ran files.write on thread") && told[0].contains("AL2"), "{told:?}");
}

/// With `members` in hal.yaml, HAL answers only them and the owners: a message in anyone else's name is ignored,
/// with the reason.
#[test]
fn only_owners_and_members_are_answered_once_hal_yaml_names_members() {
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let home = home_with(dir.path(), &[("writer", "description: Writes\ncommands: [files]\n")]);
    let settings = std::fs::read_to_string(dir.path().join("hal.yaml")).expect("hal.yaml");
    std::fs::write(dir.path().join("hal.yaml"), format!("{settings}members: [bob]\n")).expect("write");
    git(dir.path(), &["commit", "-q", "-am", "members"]);
    drop(home);
    let home = Home::open(dir.path()).expect("open");
    let catalog = Catalog::load(&home).expect("catalog");
    let admit = Admit::for_repo(&home, &catalog.settings.trust).with_members(catalog.settings.members.as_ref());
    let plan = |actor: &str| {
        let thread = home.new_thread(actor, None, Some(actor)).expect("thread");
        home.say(actor, &thread.id, "do it").expect("say");
        let thread = home.resolve_thread(&thread.id).expect("thread");
        plan_for(&home, &thread, false, admit.clone()).expect("plan")
    };
    assert!(matches!(plan("alice"), Plan::Turn { .. }), "an owner");
    assert!(matches!(plan("bob"), Plan::Turn { .. }), "a member");
    let Plan::Ignore { reason } = plan("carol") else { panic!("carol is neither") };
    assert!(reason.contains("carol is neither an owner nor one of the members"), "{reason}");
}

/// A call HAL started before the owner set its tool to AL0 (it stopped before the result was recorded) is answered
/// as not run again on the resume, never recorded as merely proposed: it may have taken effect.
#[test]
fn a_call_started_before_a_policy_of_propose_only_is_not_recorded_as_proposed() {
    use hal_runner::record::{ReplyData, fact};
    use hal_store::{NewStep, ThreadStatus};
    let dir = Checked(tempfile::tempdir().expect("temp dir"));
    let home = home_with(dir.path(), &[("writer", "description: Writes\ncommands: [files]\n")]);
    let thread = home.new_thread("alice", None, None).expect("thread");
    let request = NewStep::new(StepKind::Message, "write a", ThreadStatus::Running).fact(fact::HELP, "writer");
    home.append_step("alice", &thread, &request).expect("request");
    let mut step = NewStep::new(StepKind::Reply, "calls", ThreadStatus::Running).fact(fact::HELP, "writer");
    let reply = call("c1", "files.write", r#"{"path":"a","content":"1"}"#);
    step.data = Some(serde_json::to_string(&ReplyData { reply, response: None, request_bytes: 0 }).expect("json"));
    let reply = home.append_step("hal", &thread, &step).expect("reply").commit;
    assert!(home.claim_call(reply, 0).expect("journal"), "the call starts; then HAL stops");
    let settings = std::fs::read_to_string(dir.path().join("hal.yaml")).expect("hal.yaml");
    std::fs::write(dir.path().join("hal.yaml"), format!("{settings}policy:\n  tools:\n    files.write: AL0\n"))
        .expect("write");
    git(dir.path(), &["commit", "-q", "-am", "propose only, from now on"]);
    let thread = home.resolve_thread(&thread.id).expect("thread");
    drop(home);
    let recording = Arc::new(Recording::new(vec![text("done")], vec![]));
    let outcome = runtime()
        .block_on(runner(dir.path()).resume(Arc::new(recording) as Arc<dyn Models>, &thread, "alice", "writer"))
        .expect("resume");
    assert_eq!(outcome.status, Status::Done);
    let home = Home::open(dir.path()).expect("open");
    let steps = home.thread_log(&thread.id, None).expect("log");
    let tool = steps.iter().find(|s| s.kind == StepKind::Tool).expect("the call's answer");
    assert!(tool.text.starts_with("not run again"), "{}", tool.text);
    assert_eq!(tool.fact(fact::AUTONOMY), None);
}
