//! Two writers appending to one thread at the same time lose nothing.

use std::process::Command;

use crate::support::{Sandbox, new_thread};

const PER_WRITER: usize = 500;

#[test]
fn two_processes_appending_500_steps_each_lose_nothing() {
    let sandbox = Sandbox::new();
    let repo = sandbox.home("home");
    let id = new_thread(&sandbox, &repo, "contended");

    let writers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|writer| {
            let script = format!(
                r#"for i in $(seq 1 {PER_WRITER}); do "$HAL" -C "$REPO" thread say "$ID" "{writer}-$i" >/dev/null || exit 1; done"#
            );
            let mut command = Command::new("bash");
            command
                .args(["-c", &script])
                .env("HAL", env!("CARGO_BIN_EXE_hal"))
                .env("REPO", &repo)
                .env("ID", &id);
            sandbox.env(&mut command);
            command.spawn().expect("spawn writer")
        })
        .collect();
    for mut writer in writers {
        assert!(writer.wait().expect("wait").success(), "a writer failed");
    }

    let log = sandbox.hal(&repo, &["thread", "log", &id, "--json"]).ok().json();
    let steps = log.as_array().expect("array");
    assert_eq!(steps.len(), 1 + 2 * PER_WRITER, "every step is there");
    for (index, step) in steps.iter().enumerate() {
        assert_eq!(step["step"], index + 1, "step numbers are contiguous");
    }
    // Each signed after the tip it saw, and landed after the other writer's steps written since: still the person's.
    for step in steps.iter().filter(|s| s["kind"] == "message") {
        assert_eq!(step["trust"]["verdict"], "signed", "{step:#}");
    }
    for writer in ["w1", "w2"] {
        let order: Vec<usize> = steps
            .iter()
            .filter_map(|s| s["text"].as_str()?.strip_prefix(&format!("{writer}-"))?.parse().ok())
            .collect();
        assert_eq!(order, (1..=PER_WRITER).collect::<Vec<_>>(), "{writer}'s steps, each once and in order");
    }
}
