//! The README's exit-code table, row by row: `0` done and OK, `1` done and not OK, `2` usage or environment,
//! (`3` PENDING and `4` NOCANDO are the runs' own, tested with the runs in `runs.rs`).

use crate::support::Sandbox;

#[test]
fn every_row_of_the_readme_exit_code_table_holds() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    std::fs::create_dir_all(repo.join("helps")).expect("dir");
    std::fs::write(repo.join("helps/bad.yaml"), "runner: {steps: 3}\n").expect("write");
    std::fs::write(repo.join("helps/good.yaml"), "description: Good\n").expect("write");
    let thread = crate::support::new_thread(&sandbox, &repo, "t");
    let table: &[(&[&str], i32)] = &[
        (&["status"], 0),
        (&["help", "validate", "helps/good.yaml"], 0),
        (&["isolate", "show", "files"], 0),
        (&["isolate", "call", "files", "read", r#"{"path": "nothing-here.txt"}"#, "--thread", &thread], 1),
        (&["help", "validate", "helps/bad.yaml"], 1),
        (&["help", "validate", "helps/missing.yaml"], 2),
        (&["thread", "log", "nosuchthread"], 2),
        (&["isolate", "show", "nosuch"], 2),
        (&["help", "run", "good", "hello"], 2),
        (&["--no-such-flag"], 2),
    ];
    for (args, code) in table {
        let run = sandbox.hal(&repo, args);
        assert_eq!(run.code, *code, "hal {}: {run:?}", args.join(" "));
        if *code == 2 {
            let first = run.stderr.lines().next().unwrap_or_default();
            assert!(first.starts_with("error: "), "one error line first: {run:?}");
        }
    }
    let outside = sandbox.hal(&sandbox.path(""), &["thread", "list"]);
    assert_eq!(outside.code, 2, "not a home repo: {outside:?}");
}

/// Completions and the manual page come from the command line's own definition: every command is in them.
#[test]
fn completions_and_the_manual_are_generated_from_the_command_line() {
    let sandbox = Sandbox::new();
    let here = sandbox.path("");
    for shell in ["bash", "zsh", "fish"] {
        let script = sandbox.hal(&here, &["completions", shell]).ok().stdout;
        for command in ["thread", "isolate", "secret", "completions", "validate"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let man = sandbox.hal(&here, &["man"]).ok().stdout;
    assert!(man.starts_with(".ie") || man.contains(".TH hal 1"), "{man}");
    assert!(man.contains("thread") && man.contains("daemon"), "{man}");
    assert_eq!(sandbox.hal(&here, &["completions", "tcsh"]).code, 2, "an unknown shell is a usage error");
}
