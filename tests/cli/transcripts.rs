//! Executable transcripts: `tests/transcripts/*.md` show a newcomer what they will type and see, and this test
//! runs them. In each file, the ```` ```console ```` blocks hold commands (`$ ` lines, run in order by one bash in a
//! scratch directory, so `cd` and shell variables carry over) each followed by its expected output: stdout and
//! stderr together, as a terminal shows them. In an expected line, `[..]` stands for any text (ids, commits, times);
//! a line that is just `...` stands for any number of lines. A command must exit 0 unless its output ends with
//! `[exit N]`. Any difference fails the test, naming the file and line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::Sandbox;

/// What a transcript's script prints after each command: where one command's output ends, and its exit code.
const MARKER: &str = "@@hal-transcript-exit";

/// One command of a transcript, with the output it shows.
struct Step {
    /// The line of the `$ ` line in the file.
    line: usize,
    command: String,
    expected: Vec<String>,
    exit: i32,
}

/// The commands of the transcript `text`.
fn steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block && line.trim() == "```console";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step { line: number + 1, command: command.to_owned(), expected: Vec::new(), exit: 0 });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_owned());
        }
    }
    for step in &mut steps {
        let exit = step.expected.last().and_then(|last| last.strip_prefix("[exit ")?.strip_suffix(']')?.parse().ok());
        if let Some(exit) = exit {
            step.exit = exit;
            step.expected.pop();
        }
    }
    steps
}

/// Whether `actual` is what the expected `line` shows, `[..]` standing for any text.
fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("[..]").collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else { return false };
    if parts.len() == 1 {
        return expected == actual;
    }
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() || !actual.ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the `actual` lines are what the `expected` ones show, `...` standing for any number of lines.
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((first, rest)) => {
            actual.split_first().is_some_and(|(line, more)| line_matches(first, line) && lines_match(rest, more))
        }
    }
}

/// Run the transcript at `path`; every difference, described.
fn run(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read the transcript");
    let steps = steps(&text);
    assert!(!steps.is_empty(), "{} has no ```console block with `$ ` commands", path.display());
    let sandbox = Sandbox::new();
    let work = sandbox.path("work");
    std::fs::create_dir_all(&work).expect("work dir");
    // A pipeline fails when any command of it does (`hal … | tail` hides nothing); each command has two minutes.
    // A pipeline fails when any command of it does: `hal … | tail` hides no failure.
    let mut script = String::from("set -o pipefail\ncd \"$TRANSCRIPT_DIR\"\n");
    for step in &steps {
        // The marker on a line of its own, even after output without a final newline (the empty line this makes
        // is dropped below).
        script.push_str(&format!("{{ {}\n}} 2>&1 </dev/null; printf '\\n{MARKER} %d\\n' $?\n", step.command));
    }
    let hal = PathBuf::from(env!("CARGO_BIN_EXE_hal"));
    let path_var =
        format!("{}:{}", hal.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    // Bounded: a command that hangs ends the transcript (and fails it) after ten minutes.
    let mut command = Command::new("timeout");
    command.args(["600", "bash", "-c"]).arg(&script).stdin(Stdio::null());
    sandbox.env(&mut command);
    let output = command.env("PATH", path_var).env("TRANSCRIPT_DIR", &work).output().expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut outputs: Vec<(Vec<&str>, i32)> = Vec::new();
    let mut lines = Vec::new();
    for line in stdout.lines() {
        match line.strip_prefix(MARKER) {
            Some(code) => {
                let mut output = std::mem::take(&mut lines);
                if output.last() == Some(&"") {
                    output.pop();
                }
                outputs.push((output, code.trim().parse().unwrap_or(-1)));
            }
            None => lines.push(line.trim_end()),
        }
    }
    let mut problems = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let at = format!("{}:{}: $ {}", path.display(), step.line, step.command);
        let Some((actual, exit)) = outputs.get(index) else {
            problems.push(format!("{at}\n  did not run (the script stopped before it)"));
            continue;
        };
        let expected: Vec<String> = step.expected.iter().map(|l| l.trim_end().to_owned()).collect();
        if *exit != step.exit || !lines_match(&expected, actual) {
            problems.push(format!(
                "{at}\n  expected (exit {}):\n    {}\n  got (exit {exit}):\n    {}",
                step.exit,
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    problems
}

#[test]
fn every_transcript_shows_what_hal_prints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/transcripts")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let problems: Vec<String> = files.iter().flat_map(|file| run(file)).collect();
    assert!(problems.is_empty(), "{} difference(s):\n\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn the_matcher_takes_wildcards_and_skipped_lines() {
    assert!(line_matches("thread [..] step 2 [..]", "thread 6bn557f8z9m step 2 f187d11"));
    assert!(!line_matches("thread [..] step 2", "thread 6bn step 3"));
    assert!(line_matches("[..]", ""));
    let expected: Vec<String> = ["a", "...", "z"].map(str::to_owned).to_vec();
    assert!(lines_match(&expected, &["a", "b", "c", "z"]));
    assert!(lines_match(&expected, &["a", "z"]));
    assert!(!lines_match(&expected, &["a", "b"]));
    let parsed = steps("text\n```console\n$ hal x\nout\n[exit 2]\n$ hal y\n```\n$ not run\n");
    assert_eq!(parsed.len(), 2);
    assert_eq!((parsed[0].exit, parsed[0].expected.clone(), parsed[0].line), (2, vec!["out".to_owned()], 3));
    assert!(parsed[1].expected.is_empty());
}
