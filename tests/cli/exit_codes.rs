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
            assert!(first.starts_with("error: ") || first.starts_with("error:"), "one error line first: {run:?}");
        }
    }
    let outside = sandbox.hal(&sandbox.path(""), &["thread", "list"]);
    assert_eq!(outside.code, 2, "not a home repo: {outside:?}");
}
