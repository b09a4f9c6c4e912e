//! The halt switch: an owner's signed `hal halt` stops everything from starting, in this process and in a daemon,
//! until `hal resume`; a halt commit nobody trusted signed, or the switch moved back, changes nothing.

use crate::support::{Sandbox, new_thread};

/// The commit message of a halt or resume written by hand (no owner's signature).
fn forged(on: bool) -> String {
    let word = if on { "on" } else { "off" };
    format!("resume: trust me\n\nHal-Halt: {word}\nHal-Actor: alice-example\nHal-After: none\nHal-Signature: AAAA\n")
}

#[test]
fn an_owner_halts_and_nothing_starts_until_they_resume_and_a_forged_or_rewound_resume_changes_nothing() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "work");
    let halted = sandbox.hal(&repo, &["halt", "--reason", "deploy freeze"]).ok();
    assert!(halted.stdout.contains("halted by alice-example: deploy freeze"), "{}", halted.stdout);
    let status = sandbox.hal(&repo, &["status"]).ok().stdout;
    assert!(status.contains("HALTED:   halted by alice-example: deploy freeze"), "{status}");
    let refused = sandbox.hal(&repo, &["thread", "say", &id, "go"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("halted by alice-example: deploy freeze") && refused.stderr.contains("hal resume"));
    let halt = sandbox.git(&repo, &["rev-parse", "refs/hal/halt"]).ok().out().to_owned();
    assert_eq!(sandbox.git(&repo, &["verify-commit", &halt]).code, 0, "HAL signed the halt commit");

    // A resume written by hand on top: not an owner's, so the halt stays.
    let tree = sandbox.git(&repo, &["hash-object", "-w", "-t", "tree", "/dev/null"]).ok().out().to_owned();
    let fake = sandbox.git(&repo, &["commit-tree", &tree, "-p", &halt, "-m", &forged(false)]).ok().out().to_owned();
    sandbox.git(&repo, &["update-ref", "refs/hal/halt", &fake]).ok();
    let status = sandbox.hal(&repo, &["--json", "status"]).ok().json();
    assert_eq!(status["halted"], "halted by alice-example: deploy freeze", "{status:#}");
    assert!(status["warnings"].to_string().contains("is not believed"), "{status:#}");
    sandbox.git(&repo, &["update-ref", "refs/hal/halt", &halt]).ok();

    // The owner resumes: work starts again. Then halts again; the switch put back to the resume does not lift it.
    sandbox.hal(&repo, &["resume"]).ok();
    sandbox.hal(&repo, &["thread", "say", &id, "go"]).ok();
    let resume = sandbox.git(&repo, &["rev-parse", "refs/hal/halt"]).ok().out().to_owned();
    sandbox.hal(&repo, &["halt", "--reason", "again"]).ok();
    sandbox.git(&repo, &["update-ref", "refs/hal/halt", &resume]).ok();
    let status = sandbox.hal(&repo, &["--json", "status"]).ok().json();
    assert_eq!(status["halted"], "halted by alice-example: again", "{status:#}");
    assert!(status["warnings"].to_string().contains("moved back"), "{status:#}");
    let refused = sandbox.hal(&repo, &["thread", "say", &id, "go on"]);
    assert!(refused.stderr.contains("halted by alice-example: again"), "{}", refused.stderr);
}
