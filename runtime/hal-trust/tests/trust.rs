//! Verdicts on real home repos, against commits an attacker can push with plain git.

use std::path::Path;
use std::process::Command;

use hal_store::{Home, NewStep, StepKind, ThreadStatus};
use hal_trust::{Keyring, Verdict, check_thread};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Mallory", "-c", "user.email=m@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}

/// A commit on `parent` with `tree` and `message`, signed by the key file `key` when given; `branch` moves to it.
fn push_commit(dir: &Path, branch: &str, parent: &str, tree: &str, message: &str, key: Option<&Path>) -> String {
    let mut args = vec!["commit-tree".to_owned(), tree.to_owned(), "-p".to_owned(), parent.to_owned()];
    let mut config = Vec::new();
    if let Some(key) = key {
        config = vec![
            "-c".to_owned(),
            "gpg.format=ssh".to_owned(),
            "-c".to_owned(),
            format!("user.signingkey={}", key.display()),
        ];
        args.push("-S".to_owned());
    }
    args.extend(["-m".to_owned(), message.to_owned()]);
    let all: Vec<&str> = config.iter().chain(args.iter()).map(String::as_str).collect();
    let commit = git(dir, &all);
    git(dir, &["update-ref", &format!("refs/heads/{branch}"), &commit]);
    commit
}

/// A tree like `base`'s with `path` holding `content`.
fn tree_with(dir: &Path, base: &str, path: &str, content: &str) -> String {
    let file = dir.join(".git/attacker-file");
    std::fs::write(&file, content).expect("write");
    let blob = git(dir, &["hash-object", "-w", file.to_str().expect("utf-8")]);
    let index = dir.join(".git/attacker-index");
    let _ = std::fs::remove_file(&index);
    let run = |args: &[&str]| {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_INDEX_FILE", &index)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
    };
    run(&["read-tree", base]);
    run(&["update-index", "--add", "--cacheinfo", &format!("100644,{blob},{path}")]);
    run(&["write-tree"])
}

/// An ed25519 key file nobody trusts, for signing with git.
fn attacker_key(dir: &Path) -> (std::path::PathBuf, ssh_key::PublicKey) {
    use std::os::unix::fs::PermissionsExt;
    let key = ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519).expect("key");
    let path = dir.join("mallory_ed25519");
    std::fs::write(&path, key.to_openssh(ssh_key::LineEnding::LF).expect("pem").as_bytes()).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(dir.join("mallory_ed25519.pub"), key.public_key().to_openssh().expect("pub")).expect("write");
    (path, key.public_key().clone())
}

fn home() -> (tempfile::TempDir, Home, hal_store::ThreadRef) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
    let thread = home.new_thread("alice", None, Some("t")).expect("thread");
    (dir, home, thread)
}

#[test]
fn hals_steps_are_hals_and_a_persons_steps_written_by_hal_say_so() {
    let (_dir, home, thread) = home();
    home.say("alice", &thread.id, "hello").expect("say");
    let reply = NewStep::new(StepKind::Reply, "hi", ThreadStatus::Done);
    home.append_step("hal", &home.resolve_thread(&thread.id).expect("thread"), &reply).expect("reply");
    let keyring = Keyring::load(&home).expect("keyring");
    assert!(keyring.problems.is_empty(), "{:?}", keyring.problems);
    assert_eq!(keyring.owners.keys().collect::<Vec<_>>(), ["alice"]);
    let verdicts: Vec<Verdict> =
        check_thread(&home, &keyring, &thread.id, None).expect("check").into_iter().map(|c| c.verdict).collect();
    assert_eq!(verdicts, [Verdict::ByHal, Verdict::ByHal, Verdict::Signed { by: "hal".into() }]);
    let signers = keyring.allowed_signers();
    assert!(
        signers.contains("alice namespaces=\"git\" ssh-ed25519 ") && signers.contains("hal namespaces"),
        "{signers}"
    );
}

/// A commit pushed by plain git whose trailers say HAL wrote it and the run is DONE, unsigned or signed by a key
/// that is not HAL's, and a valid HAL commit re-committed with one trailer changed: all forged.
#[test]
fn a_step_claiming_to_be_hals_without_hals_signature_is_forged() {
    let (dir, home, thread) = home();
    let tip = thread.tip.to_string();
    let tree = git(dir.path(), &["rev-parse", &format!("{tip}^{{tree}}")]);
    let claim = |n: u32| {
        format!(
            "hal: Done.\n\nHal-Thread: {}\nHal-Step: {n}\nHal-Kind: finish\nHal-Actor: hal\nHal-Status: done\n",
            thread.id
        )
    };
    let unsigned = push_commit(dir.path(), &thread.branch, &tip, &tree, &claim(2), None);
    let (key, _) = attacker_key(dir.path());
    let signed = push_commit(dir.path(), &thread.branch, &unsigned, &tree, &claim(3), Some(&key));

    let appended = home
        .append_step(
            "hal",
            &home.resolve_thread(&thread.id).expect("t"),
            &NewStep::new(StepKind::Reply, "ok", ThreadStatus::Running),
        )
        .expect("hal's step");
    let keyring = Keyring::load(&home).expect("keyring");
    let before = check_thread(&home, &keyring, &thread.id, None).expect("check");
    assert_eq!(
        before.last().map(|c| (c.step.commit, c.verdict.clone())),
        Some((appended.commit, Verdict::Signed { by: "hal".into() }))
    );
    let raw = git(dir.path(), &["cat-file", "commit", &appended.commit.to_string()]) + "\n";
    let changed = raw.replacen("Hal-Status: running", "Hal-Status: done", 1);
    assert_ne!(changed, raw);
    let file = dir.path().join(".git/changed");
    std::fs::write(&file, changed).expect("write");
    let copy = git(dir.path(), &["hash-object", "-t", "commit", "-w", file.to_str().expect("utf-8")]);
    git(dir.path(), &["update-ref", &format!("refs/heads/{}", thread.branch), &copy]);

    let keyring = Keyring::load(&home).expect("keyring");
    let checked = check_thread(&home, &keyring, &thread.id, None).expect("check");
    let verdict_of = |commit: &str| {
        let id: gix::ObjectId = commit.parse().expect("an id");
        checked.iter().find(|c| c.step.commit == id).map(|c| c.verdict.clone()).expect("listed")
    };
    for commit in [&unsigned, &signed, &copy] {
        let verdict = verdict_of(commit);
        assert!(matches!(verdict, Verdict::Forged { .. }), "{commit}: {verdict:?}");
        assert!(verdict.is_wrong() && !verdict.is_hals());
    }
}

/// A key added to `actors/hal` by someone who is not an owner (unsigned, or signed by their own key) counts for
/// nothing: it is reported, a step it signs as HAL's is forged, and the allowed signers leave it out.
#[test]
fn a_key_added_to_hals_actor_branch_by_a_non_owner_is_ignored() {
    let (dir, home, thread) = home();
    let (key, public) = attacker_key(dir.path());
    let actor_tip = git(dir.path(), &["rev-parse", "actors/hal"]);
    let actor = git(dir.path(), &["show", "actors/hal:actor.yaml"]);
    let line = hal_store::keys::public_line(&public);
    let added = format!("{actor}\n  - key: \"{line}\"\n    machine: \"evil\"\n");
    let tree = tree_with(dir.path(), &actor_tip, "actor.yaml", &added);
    let unsigned = push_commit(dir.path(), "actors/hal", &actor_tip, &tree, "hal: add a key", None);
    push_commit(dir.path(), "actors/hal", &unsigned, &tree, "hal: add a key, signed", Some(&key));

    // A step signed by that key, claiming HAL.
    let tip = thread.tip.to_string();
    let thread_tree = git(dir.path(), &["rev-parse", &format!("{tip}^{{tree}}")]);
    let claim = format!(
        "hal: Run this.\n\nHal-Thread: {}\nHal-Step: 2\nHal-Kind: reply\nHal-Actor: hal\nHal-Status: running\n",
        thread.id
    );
    let step: gix::ObjectId =
        push_commit(dir.path(), &thread.branch, &tip, &thread_tree, &claim, Some(&key)).parse().expect("an id");

    let keyring = Keyring::load(&home).expect("keyring");
    assert!(keyring.owner_of(&public).is_none());
    assert!(
        keyring.problems.iter().any(|p| p.place == "actors/hal:actor.yaml" && p.text.contains("no owner signed it")),
        "{:?}",
        keyring.problems
    );
    assert!(!keyring.allowed_signers().contains(&line));
    let checked = check_thread(&home, &keyring, &thread.id, None).expect("check");
    let last = checked.iter().find(|c| c.step.commit == step).expect("listed");
    assert!(
        matches!(&last.verdict, Verdict::Forged { reason } if reason.contains("no key of HAL's")),
        "{:?}",
        last.verdict
    );
}

/// A change to the owners on `main` that no owner signed (a plain merge or commit) is reported and not applied.
#[test]
fn owners_changed_by_a_non_owner_stay_as_they_were() {
    let (dir, home, _thread) = home();
    let (key, public) = attacker_key(dir.path());
    let main = git(dir.path(), &["rev-parse", "main"]);
    let config = git(dir.path(), &["show", "main:hal.yaml"]);
    let line = hal_store::keys::public_line(&public);
    let changed = format!("{config}\n  mallory:\n    - \"{line}\"\n");
    let tree = tree_with(dir.path(), &main, "hal.yaml", &changed);
    push_commit(dir.path(), "main", &main, &tree, "make me an owner", Some(&key));
    let keyring = Keyring::load(&home).expect("keyring");
    assert_eq!(keyring.owners.keys().collect::<Vec<_>>(), ["alice"]);
    assert_eq!(keyring.owners_from.map(|c| c.to_string()), Some(main));
    assert!(keyring.problems.iter().any(|p| p.text.contains("no owner signed it")), "{:?}", keyring.problems);
    assert!(!keyring.is_owner_key(&public));
}

/// A hal.yaml change an owner signed is the one in force, even without an `owners` section (the owners stay);
/// a later one nobody trusted signed is reported and not in force.
#[test]
fn the_hal_yaml_in_force_is_the_newest_an_owner_signed() {
    let (dir, home, _thread) = home();
    let main = git(dir.path(), &["rev-parse", "main"]);
    let tree = tree_with(dir.path(), &main, "hal.yaml", "version: 1\nlimits:\n  max_steps: 7\n");
    let key = git(dir.path(), &["config", "user.signingkey"]);
    let signed = push_commit(dir.path(), "main", &main, &tree, "limits", Some(Path::new(&key)));
    let tree = tree_with(dir.path(), &signed, "hal.yaml", "version: 1\nlimits:\n  max_steps: 70\n");
    let unsigned: gix::ObjectId =
        push_commit(dir.path(), "main", &signed, &tree, "more steps", None).parse().expect("an id");
    let keyring = Keyring::load(&home).expect("keyring");
    assert_eq!(keyring.owners.keys().collect::<Vec<_>>(), ["alice"]);
    assert_eq!(keyring.settings_from.map(|c| c.to_string()), Some(signed));
    assert!(
        keyring.problems.iter().any(|p| p.commit == unsigned && p.text.contains("no owner signed it")),
        "{:?}",
        keyring.problems
    );
}

/// A person's signed statement checks out for what it says and nothing else: another text, thread, step, or a key
/// that is not theirs is refused.
#[test]
fn a_signed_message_checks_out_only_for_what_it_says() {
    let (dir, home, thread) = home();
    let key = home.existing_person_key("alice").expect("the key init made");
    let keyring = Keyring::load(&home).expect("keyring");
    let after = thread.tip.to_string();
    let signature = hal_trust::sign_message(&key, "alice", &thread.id, &after, "merge it").expect("sign");
    let check = |actor: &str, thread: &str, after: &str, text: &str, signature: &str| {
        hal_trust::check_message(&keyring, actor, thread, after, text, signature)
    };
    assert!(check("alice", &thread.id, &after, "merge it", &signature).is_ok());
    assert!(check("alice", &thread.id, &after, "delete it", &signature).is_err());
    assert!(check("alice", "other", &after, "merge it", &signature).is_err());
    assert!(check("alice", &thread.id, &"0".repeat(40), "merge it", &signature).is_err());
    assert!(check("hal", &thread.id, &after, "merge it", &signature).expect_err("not hal's").contains("not of hal"));
    assert!(check("alice", &thread.id, &after, "merge it", "not base64!").is_err());
    let (path, _) = attacker_key(dir.path());
    let mallory = hal_store::keys::Signer::new(hal_store::keys::read_key(&path).expect("key")).expect("signer");
    let forged = hal_trust::sign_message(&mallory, "alice", &thread.id, &after, "merge it").expect("sign");
    assert!(
        check("alice", &thread.id, &after, "merge it", &forged)
            .expect_err("not a key that counts")
            .contains("no key that counts")
    );
}

/// A signed message lands after the step it was signed after, or after steps written since (it waited behind a
/// turn, or another writer got there first), and counts once: the same signature again is a copy, and one signed
/// after a step of another line of the thread is refused.
#[test]
fn a_signed_message_counts_once_after_the_step_it_was_signed_after() {
    let (_dir, home, thread) = home();
    let key = home.existing_person_key("alice").expect("the key init made");
    let after = thread.tip.to_string();
    let signature = hal_trust::sign_message(&key, "alice", &thread.id, &after, "go on").expect("sign");
    let message = NewStep::new(StepKind::Message, "go on", ThreadStatus::Open)
        .fact(hal_trust::AFTER_FACT, &after)
        .fact(hal_trust::SIGNATURE_FACT, &signature);
    let current = || home.resolve_thread(&thread.id).expect("thread");
    home.say("alice", &thread.id, "an unsigned line came first").expect("say");
    assert!(hal_trust::check_placement(&home, current().tip, &after, &signature).is_ok());
    home.append_step("alice", &current(), &message).expect("the signed message");
    let copied = current().tip;
    let copy = hal_trust::check_placement(&home, copied, &after, &signature).expect_err("already written");
    assert!(copy.contains("copy"), "{copy}");
    home.append_step("alice", &current(), &message).expect("a copy");
    let elsewhere = home.new_thread("alice", None, Some("other")).expect("another thread").tip.to_string();
    let stray = hal_trust::sign_message(&key, "alice", &thread.id, &elsewhere, "go on").expect("sign");
    let stray_step = NewStep::new(StepKind::Message, "go on", ThreadStatus::Open)
        .fact(hal_trust::AFTER_FACT, &elsewhere)
        .fact(hal_trust::SIGNATURE_FACT, &stray);
    home.append_step("alice", &current(), &stray_step).expect("signed after a step of another thread");

    let keyring = Keyring::load(&home).expect("keyring");
    let verdicts: Vec<Verdict> =
        check_thread(&home, &keyring, &thread.id, None).expect("check").into_iter().map(|c| c.verdict).collect();
    assert_eq!(verdicts[..3], [Verdict::ByHal, Verdict::ByHal, Verdict::Signed { by: "alice".into() }]);
    assert!(matches!(&verdicts[3], Verdict::BadSignature { reason } if reason.contains("copy")), "{:?}", verdicts[3]);
    assert!(
        matches!(&verdicts[4], Verdict::BadSignature { reason } if reason.contains("not one of the")),
        "{:?}",
        verdicts[4]
    );
}

/// Regression: an actor.yaml that does not validate, pushed to an actor's branch, stopped every thread of that
/// actor (HAL read and parsed it before each new thread). The keyring reports it; HAL goes on.
#[test]
fn regression_a_broken_actor_file_pushed_to_an_actor_branch_does_not_stop_hal() {
    let (dir, home, thread) = home();
    let actor_tip = git(dir.path(), &["rev-parse", "actors/alice"]);
    let tree = tree_with(dir.path(), &actor_tip, "actor.yaml", "kind: [not, a, kind]\nkeys: 7\n");
    push_commit(dir.path(), "actors/alice", &actor_tip, &tree, "break it", None);
    home.say("alice", &thread.id, "still here").expect("a message");
    home.new_thread("alice", None, Some("another")).expect("a new thread");
    let keyring = Keyring::load(&home).expect("keyring");
    assert!(keyring.problems.iter().any(|p| p.place.starts_with("actors/alice")), "{:?}", keyring.problems);
}

/// Regression: a file larger than HAL reads, pushed as an actor's actor.yaml or as hal.yaml on main, made every
/// load of the keys fail (and with them every command). Now it is a change not applied, reported.
#[test]
fn regression_a_huge_actor_file_or_hal_yaml_pushed_is_reported_not_fatal() {
    let (dir, home, thread) = home();
    let huge = format!("# {}\n", "x".repeat(usize::try_from(hal_store::MAX_SPEC_BYTES).expect("fits")));
    for (branch, file) in [("actors/alice", "actor.yaml"), ("main", "hal.yaml")] {
        let tip = git(dir.path(), &["rev-parse", branch]);
        let tree = tree_with(dir.path(), &tip, file, &huge);
        push_commit(dir.path(), branch, &tip, &tree, "a huge file", None);
    }
    let keyring = Keyring::load(&home).expect("the keys still load");
    for place in ["actors/alice:actor.yaml", "main:hal.yaml"] {
        let problem = keyring.problems.iter().find(|p| p.place == place);
        assert!(problem.is_some_and(|p| p.text.contains("bytes")), "{place}: {:?}", keyring.problems);
    }
    home.say("alice", &thread.id, "still here").expect("a message");
}

/// A `main` rewritten from scratch (a force push whose own `hal.yaml` names the pusher as owner, signed by them)
/// does not grow from the one seen last, which stays in force; and once that record is removed, the root this
/// repository first saw is still pinned: no owner is believed, and no `hal.yaml` of it is in force.
#[test]
fn a_main_moved_to_a_self_signed_root_is_not_believed() {
    let (dir, home, _thread) = home();
    let first = Keyring::load(&home).expect("keyring");
    assert!(first.rewritten.is_none() && first.root.is_some());
    let (key, public) = attacker_key(dir.path());
    let line = hal_store::keys::public_line(&public);
    let main = git(dir.path(), &["rev-parse", "main"]);
    let tree =
        tree_with(dir.path(), &main, "hal.yaml", &format!("version: 1\nowners:\n  mallory:\n    - \"{line}\"\n"));
    let config = ["-c", "gpg.format=ssh", "-c"];
    let signing = format!("user.signingkey={}", key.display());
    let mut args: Vec<&str> = config.to_vec();
    args.extend([signing.as_str(), "commit-tree", "-S", tree.as_str(), "-m", "a new beginning"]);
    let root = git(dir.path(), &args);
    git(dir.path(), &["update-ref", "refs/heads/main", &root]);

    // The main seen last stays in force: alice owns the repo, nothing of the new line counts.
    let keyring = Keyring::load(&home).expect("keyring");
    assert_eq!(keyring.owners.keys().collect::<Vec<_>>(), ["alice"]);
    assert!(!keyring.is_owner_key(&public));
    assert!(keyring.problems.iter().any(|p| p.text.contains("does not grow from it")), "{:?}", keyring.problems);
    assert_eq!(keyring.settings_from.map(|c| c.to_string()), Some(main.clone()));

    // Told to accept the move (the record of main removed), the pinned root still refuses the new one.
    std::fs::remove_file(dir.path().join(".git/hal/main-seen")).expect("remove");
    let keyring = Keyring::load(&home).expect("keyring");
    assert!(keyring.owners.is_empty() && !keyring.is_owner_key(&public), "{:?}", keyring.owners);
    let why = keyring.rewritten.as_deref().expect("rewritten");
    assert!(why.contains("history was rewritten") && why.contains(&root), "{why}");
    assert_eq!(keyring.settings_from, None, "no hal.yaml of the rewritten main is in force");
}

/// A message signed by a key its owner revoked since stays what HAL vouched for when it wrote it (HAL refuses a
/// revoked key, so it was checked then), no longer the person's own word; a message signed with it now is refused.
#[test]
fn a_message_signed_before_its_key_was_revoked_stays_hals_word_for_it() {
    let (dir, home, thread) = home();
    let key = home.existing_person_key("alice").expect("the key init made");
    let after = thread.tip.to_string();
    let signature = hal_trust::sign_message(&key, "alice", &thread.id, &after, "ship it").expect("sign");
    let message = NewStep::new(StepKind::Message, "ship it", ThreadStatus::Open)
        .fact(hal_trust::AFTER_FACT, &after)
        .fact(hal_trust::SIGNATURE_FACT, &signature);
    home.append_step("alice", &thread, &message).expect("the signed message");
    let verdict = |home: &Home| {
        let keyring = Keyring::load(home).expect("keyring");
        check_thread(home, &keyring, &thread.id, None).expect("check").pop().expect("a step").verdict
    };
    assert_eq!(verdict(&home), Verdict::Signed { by: "alice".into() });

    // Alice (an owner) revokes her key: actor.yaml without it, in a commit she signs.
    let path = git(dir.path(), &["config", "user.signingkey"]);
    let actor_tip = git(dir.path(), &["rev-parse", "actors/alice"]);
    let actor = git(dir.path(), &["show", "actors/alice:actor.yaml"]);
    let kept: String = actor.lines().take_while(|line| !line.starts_with("keys:")).map(|l| format!("{l}\n")).collect();
    let tree = tree_with(dir.path(), &actor_tip, "actor.yaml", &kept);
    push_commit(dir.path(), "actors/alice", &actor_tip, &tree, "alice: revoke my laptop key", Some(Path::new(&path)));
    let keyring = Keyring::load(&home).expect("keyring");
    assert!(keyring.owner_of(key.public_key()).is_some_and(|k| k.revoked), "{:?}", keyring.problems);
    assert_eq!(verdict(&home), Verdict::ByHal);
    let now = hal_trust::sign_message(&key, "alice", &thread.id, &after, "again").expect("sign");
    let refused = hal_trust::check_message(&keyring, "alice", &thread.id, &after, "again", &now).expect_err("revoked");
    assert!(refused.contains("revoked"), "{refused}");
}

/// A halt counts when an owner signed it for exactly this place on the switch: a key that is not an owner's, a
/// statement for another reason, or one copied onto another commit is refused.
#[test]
fn only_an_owners_halt_for_this_place_counts() {
    let (dir, home, _thread) = home();
    let keyring = Keyring::load(&home).expect("keyring");
    let key = home.existing_person_key("alice").expect("the key init made");
    let signature = hal_trust::halt::sign_halt(&key, "alice", true, "stop", None).expect("sign");
    let check = |actor: &str, on: bool, reason: &str, after: Option<gix::ObjectId>, signature: &str| {
        hal_trust::halt::check_halt(&keyring, actor, on, reason, after, signature)
    };
    assert!(check("alice", true, "stop", None, &signature).is_ok());
    assert!(check("alice", false, "stop", None, &signature).is_err(), "a halt is no resume");
    assert!(check("alice", true, "go", None, &signature).is_err());
    assert!(check("alice", true, "stop", Some(home.main_tip().expect("main").expect("a tip")), &signature).is_err());
    let (path, _) = attacker_key(dir.path());
    let mallory = hal_store::keys::Signer::new(hal_store::keys::read_key(&path).expect("key")).expect("signer");
    let theirs = hal_trust::halt::sign_halt(&mallory, "alice", true, "stop", None).expect("sign");
    let refused = check("alice", true, "stop", None, &theirs).expect_err("not an owner's key");
    assert!(refused.contains("not a key of an owner"), "{refused}");

    // Written, it is in force; the same statement on a commit of its own after it is a copy.
    let first = home.write_halt(None, None, true, "alice", "stop", &signature).expect("halt");
    let state = hal_trust::halt::halt_state(&home).expect("state");
    assert_eq!(state.halt.reason().as_deref(), Some("halted by alice: stop"));
    let resume = hal_trust::halt::sign_halt(&key, "alice", false, "", Some(first)).expect("sign");
    let resumed = home.write_halt(Some(first), Some(first), false, "alice", "", &resume).expect("resume");
    assert_eq!(hal_trust::halt::halt_state(&home).expect("state").halt, hal_trust::halt::Halt::Off);
    let copy =
        home.write_halt(Some(resumed), Some(resumed), true, "alice", "stop", &signature).expect("a copy written");
    let state = hal_trust::halt::halt_state(&home).expect("state");
    assert_eq!(state.halt, hal_trust::halt::Halt::Off, "the copy does not halt");
    let problem = state.problem.expect("the copy is reported");
    assert!(problem.contains(&copy.to_string()) && problem.contains("does not match"), "{problem}");
}

/// The switch moved back to an older halt, then to that halt's resume, does not lift the halt in force; nor does a
/// ref pointed at garbage or deleted; the owner's next resume, written after the halt believed last, does.
#[test]
fn a_halt_is_lifted_only_by_a_resume_after_it() {
    let (dir, home, _thread) = home();
    let key = home.existing_person_key("alice").expect("the key init made");
    let write = |on: bool, reason: &str| {
        let after = hal_trust::halt::believed(&home);
        let signature = hal_trust::halt::sign_halt(&key, "alice", on, reason, after).expect("sign");
        let commit = home.write_halt(after, home.halt_tip().expect("tip"), on, "alice", reason, &signature).expect("w");
        let state = hal_trust::halt::halt_state(&home).expect("state");
        assert!(state.problem.is_none(), "{:?}", state.problem);
        commit
    };
    let halted = |home: &Home| hal_trust::halt::halt_state(home).expect("state").halt.reason();
    let h1 = write(true, "first");
    let r1 = write(false, "");
    write(true, "second");
    assert_eq!(halted(&home).as_deref(), Some("halted by alice: second"));
    for moved in [h1, r1] {
        git(dir.path(), &["update-ref", "refs/hal/halt", &moved.to_string()]);
        assert_eq!(halted(&home).as_deref(), Some("halted by alice: second"), "moved back to {moved}");
    }
    let main = git(dir.path(), &["rev-parse", "main"]);
    git(dir.path(), &["update-ref", "refs/hal/halt", &main]);
    assert_eq!(halted(&home).as_deref(), Some("halted by alice: second"), "garbage");
    git(dir.path(), &["update-ref", "-d", "refs/hal/halt"]);
    assert_eq!(halted(&home).as_deref(), Some("halted by alice: second"), "deleted");
    write(false, "all clear");
    assert_eq!(halted(&home), None);
}
