//! `hal help list/show/validate`: built-in helps, helps committed on main, and located errors.

use crate::support::Sandbox;

#[test]
fn the_catalogue_has_built_ins_and_the_helps_committed_on_main() {
    let sandbox = Sandbox::new();
    let outside = sandbox.path("");
    let builtins = sandbox.hal(&outside, &["help", "list", "--json"]).ok().json();
    let names: Vec<&str> =
        builtins.as_array().expect("array").iter().map(|e| e["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["assessor", "goalie", "hal", "help-author", "plugin-author", "stuck-finder"]);

    let repo = sandbox.home("home");
    std::fs::create_dir(repo.join("helps")).expect("helps dir");
    std::fs::write(repo.join("helps/summary.yaml"), "description: Summarise a text\ninstructions:\n  - Be brief.\n")
        .expect("write");
    std::fs::write(repo.join("helps/hal.yaml"), "description: Our own HAL\n").expect("write");
    std::fs::write(repo.join("helps/broken.yaml"), "runner:\n  tempreature: 1\n").expect("write");
    sandbox.git(&repo, &["add", "helps"]).ok();
    sandbox.git(&repo, &["commit", "-S", "-q", "-m", "Add helps"]).ok();

    let list = sandbox.hal(&repo, &["help", "list", "--json"]).ok().json();
    let find = |name: &str| list.as_array().expect("array").iter().find(|e| e["name"] == name).cloned().expect(name);
    assert_eq!(find("summary")["source"], "main:helps/summary.yaml");
    assert_eq!(find("summary")["spec"]["instructions"][0], "Be brief.");
    assert_eq!(find("hal")["overrides_builtin"], true);
    assert_eq!(find("hal")["spec"]["description"], "Our own HAL");
    assert_eq!(find("goalie")["source"], "built-in");
    let error = find("broken")["error"].as_str().expect("error").to_owned();
    assert!(error.starts_with("main:helps/broken.yaml:2:3: runner.tempreature: unknown field"), "{error}");

    let text = sandbox.hal(&repo, &["help", "list"]).ok().stdout;
    assert!(text.contains("INVALID: main:helps/broken.yaml:2:3"), "{text}");
    let shown = sandbox.hal(&repo, &["help", "show", "summary"]).ok().stdout;
    assert!(shown.contains("Summarise a text"), "{shown}");
    let missing = sandbox.hal(&repo, &["help", "show", "nope"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no help named \"nope\""), "{}", missing.stderr);
}

#[test]
fn validate_reports_every_problem_with_its_place_and_exits_1() {
    let sandbox = Sandbox::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let good = sandbox.hal(&root, &["help", "validate", "helps/hal.yaml", "helps/goalie.yaml", "agents/hal.yaml"]).ok();
    assert_eq!(good.stdout.lines().count(), 3, "{}", good.stdout);

    let bad = sandbox.hal(&root, &["help", "validate", "helps/hal.yaml", "fixtures/helps/invalid/03-wrong-type.yaml"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stdout.contains("ok helps/hal.yaml"), "{}", bad.stdout);
    assert!(
        bad.stderr.contains(
            "fixtures/helps/invalid/03-wrong-type.yaml:3:16: runner.temperature: \"hot\" is not of type \"number\""
        ),
        "{}",
        bad.stderr
    );
    // A file that cannot be read is a usage error (2), not an invalid file (1); the others are still checked.
    let missing =
        sandbox.hal(&root, &["help", "validate", "fixtures/helps/invalid/03-wrong-type.yaml", "no/such/file.yaml"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("no/such/file.yaml: cannot read"), "{}", missing.stderr);
    assert!(missing.stderr.contains("03-wrong-type.yaml:3:16"), "{}", missing.stderr);
}

/// `hal help new` writes a commented skeleton that validates as it is, and never over a file; in a home repo,
/// `hal help validate` checks that each command names a tool, a group of tools, an isolate or a help on main,
/// located at the command, with the names closest to a typo.
#[test]
fn help_new_writes_a_skeleton_that_validates_and_validate_checks_every_command() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let written = sandbox.hal(&repo, &["help", "new", "triage"]).ok();
    assert!(written.stdout.contains("helps/triage.yaml"), "{written:?}");
    let skeleton = std::fs::read_to_string(repo.join("helps/triage.yaml")).expect("written");
    for taught in ["DONE", "PENDING", "NOCANDO", "ERROR", "finish", "done:", "tests:", "commands:", "runner:"] {
        assert!(skeleton.contains(taught), "the skeleton teaches {taught:?}:\n{skeleton}");
    }
    sandbox.hal(&repo, &["help", "validate", "helps/triage.yaml"]).ok();
    let again = sandbox.hal(&repo, &["help", "new", "triage"]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("exists; it is left as it is"), "{again:?}");
    assert_eq!(std::fs::read_to_string(repo.join("helps/triage.yaml")).expect("kept"), skeleton);
    let bad_name = sandbox.hal(&repo, &["help", "new", "Bad Name"]);
    assert_eq!(bad_name.code, 2, "{bad_name:?}");

    let commands = "description: Typos\ncommands:\n  - files\n  - http.fetch\n  - threads.start\n  - triage\n  \
                    - files.raed\n  - nosuch.thing\n";
    std::fs::write(repo.join("helps/typos.yaml"), commands).expect("write");
    let checked = sandbox.hal(&repo, &["help", "validate", "helps/typos.yaml", "helps/triage.yaml"]);
    assert_eq!(checked.code, 1, "{checked:?}");
    assert!(checked.stdout.contains("ok helps/triage.yaml"), "{checked:?}");
    let errors: Vec<&str> = checked.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "files, http.fetch, threads.start and triage are known: {errors:?}");
    assert!(errors[0].starts_with("helps/typos.yaml:7:5: commands[4]: `files.raed` is neither"), "{errors:?}");
    assert!(errors[0].contains("did you mean `files.read`"), "{errors:?}");
    assert!(errors[1].starts_with("helps/typos.yaml:8:5: commands[5]: `nosuch.thing`"), "{errors:?}");
}

/// The help in the README's "Writing a help" is a valid help, as `hal help validate` checks one in a home repo
/// (every command names something there).
#[test]
fn the_readme_help_example_validates() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
        .expect("README.md");
    let section = readme.split("## Writing a help").nth(1).expect("the section");
    let example = section.split("```yaml\n").nth(1).and_then(|rest| rest.split("```").next()).expect("its example");
    std::fs::write(repo.join("minutes.yaml"), example).expect("write");
    let checked = sandbox.hal(&repo, &["help", "validate", "minutes.yaml"]);
    assert_eq!(checked.code, 0, "{checked:?}\n{example}");
}
