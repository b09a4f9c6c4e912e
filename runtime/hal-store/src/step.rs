//! Steps and how they are written as commit messages.
//!
//! A step's payload lives in its commit message, so appending a step never rewrites a tree that grows with the
//! thread. The message reads like a line of a transcript and ends with trailers that carry the machine facts:
//!
//! ```text
//! alice: Summarise the design notes in notes/
//!
//! Hal-Thread: 0h2k7f3m9q1xz
//! Hal-Step: 2
//! Hal-Kind: message
//! Hal-Actor: alice
//! Hal-Status: open
//! Hal-Title: design notes
//! ```
//!
//! The subject is `<actor>: <first line of the text>` (shortened to 72 characters). When the text is longer than
//! that one line, the whole text follows as the body, byte for byte, so the text can be recovered exactly. The
//! last paragraph is always the trailer block; a body may contain blank lines and even lines that look like
//! trailers, because only the final paragraph is read as trailers.
//!
//! Every step carries the thread's state after it (`Hal-Step` count, `Hal-Status`, `Hal-Title`), so reading a
//! thread's tip commit is enough to list it.

use serde::Serialize;

pub use crate::purpose::ThreadPurpose;

use crate::{Result, StoreError};

/// Longest subject summary, in characters, before it is shortened with `…`.
const SUMMARY_CHARS: usize = 72;

/// Trailer keys HAL writes.
pub mod key {
    /// The thread the step was made on.
    pub const THREAD: &str = "Hal-Thread";
    /// 1-based number of the step in its conversation.
    pub const STEP: &str = "Hal-Step";
    /// The [`StepKind`](super::StepKind).
    pub const KIND: &str = "Hal-Kind";
    /// Who made the step.
    pub const ACTOR: &str = "Hal-Actor";
    /// The thread's status after the step.
    pub const STATUS: &str = "Hal-Status";
    /// The thread's title after the step.
    pub const TITLE: &str = "Hal-Title";
    /// The file a `write` step wrote.
    pub const PATH: &str = "Hal-Path";
    /// `<thread>@<commit>` a forked thread started from.
    pub const FORKED_FROM: &str = "Hal-Forked-From";
    /// What the thread was made for, when it is not a person's work (see [`ThreadPurpose`](super::ThreadPurpose)),
    /// carried on every step like the title.
    pub const PURPOSE: &str = "Hal-Purpose";
    /// The idempotency key of the command that wrote the step (a fact: see [`crate::NewStep::idempotency_key`]).
    pub const IDEMPOTENCY_KEY: &str = "Hal-Idempotency-Key";
    /// Every trailer key HAL reads into a [`StepRecord`](super::StepRecord) field; other `Hal-*` trailers are
    /// its `facts`.
    pub const CORE: [&str; 9] = [THREAD, STEP, KIND, ACTOR, STATUS, TITLE, PATH, FORKED_FROM, PURPOSE];
}

/// The commit header that carries a step's machine data (see [`crate::NewStep::data`]). Git keeps unknown
/// headers intact through clone, fetch and push, and `git log` does not show them, so the message stays a
/// readable transcript.
pub const DATA_HEADER: &str = "hal-data";

/// The prefix of every trailer key HAL writes.
pub const FACT_PREFIX: &str = "Hal-";

/// Why a commit that says it is a step (it has a `Hal-Step` trailer) cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTrailers(pub String);

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// The thread was created.
    Start,
    /// The thread was forked from a step of another thread.
    Fork,
    /// A user message.
    Message,
    /// A file was written into the thread's tree.
    Write,
    /// The thread's work was merged into `main`.
    Merged,
    /// A model's reply in a run of a help.
    Reply,
    /// A tool call made by a model, with its result.
    Tool,
    /// The end of a run: its status and output.
    Finish,
    /// A note from the runtime to the thread's people: a file on `main` that does not load, a run that could
    /// not start or was interrupted.
    System,
    /// A plain git commit on the thread (no `Hal-Kind` trailer): a person's message when it has text.
    Commit,
    /// The merge commit on `main` that accepts a thread's work (not a step of the thread; its `merged` step is).
    Merge,
    /// A run asks an owner to approve one tool call (autonomy level AL1) and waits: the thread is `pending`.
    Approval,
    /// An owner's signed answer to an approval request, written by HAL: the run goes on from it.
    Decision,
    /// A kind this version of HAL does not know (written by a newer one).
    #[serde(untagged)]
    Other(String),
}

impl StepKind {
    /// The name used in the `Hal-Kind` trailer.
    pub fn as_str(&self) -> &str {
        match self {
            StepKind::Start => "start",
            StepKind::Fork => "fork",
            StepKind::Message => "message",
            StepKind::Write => "write",
            StepKind::Merged => "merged",
            StepKind::Reply => "reply",
            StepKind::Tool => "tool",
            StepKind::Finish => "finish",
            StepKind::System => "system",
            StepKind::Commit => "commit",
            StepKind::Merge => "merge",
            StepKind::Approval => "approval",
            StepKind::Decision => "decision",
            StepKind::Other(other) => other,
        }
    }

    /// Read a kind name; unknown names are kept as [`StepKind::Other`].
    pub fn parse_name(text: &str) -> StepKind {
        match text {
            "start" => StepKind::Start,
            "fork" => StepKind::Fork,
            "message" => StepKind::Message,
            "write" => StepKind::Write,
            "merged" => StepKind::Merged,
            "reply" => StepKind::Reply,
            "tool" => StepKind::Tool,
            "finish" => StepKind::Finish,
            "system" => StepKind::System,
            "commit" => StepKind::Commit,
            "merge" => StepKind::Merge,
            "approval" => StepKind::Approval,
            "decision" => StepKind::Decision,
            other => StepKind::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: `{:<7}` in a listing lines the kinds up.
        f.pad(self.as_str())
    }
}

/// Where a thread stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    /// Open for more steps.
    Open,
    /// Its work has been merged into `main` (a later step reopens it).
    Merged,
    /// A run is in progress: a model or tool step was the last one written.
    Running,
    /// The last run finished its job.
    Done,
    /// The last run needs information from a person; the next message resumes it.
    Pending,
    /// The last run failed.
    Error,
    /// The last run found the job outside what it can do.
    Nocando,
    /// A status this version of HAL does not know.
    #[serde(untagged)]
    Other(String),
}

impl ThreadStatus {
    /// Whether a step leaving the thread this way ends a run: finished (`done`, `error`, `nocando`) or waiting
    /// for a person (`pending`).
    pub fn ends_run(&self) -> bool {
        matches!(self, ThreadStatus::Done | ThreadStatus::Pending | ThreadStatus::Error | ThreadStatus::Nocando)
    }

    /// The name used in the `Hal-Status` trailer.
    pub fn as_str(&self) -> &str {
        match self {
            ThreadStatus::Open => "open",
            ThreadStatus::Merged => "merged",
            ThreadStatus::Running => "running",
            ThreadStatus::Done => "done",
            ThreadStatus::Pending => "pending",
            ThreadStatus::Error => "error",
            ThreadStatus::Nocando => "nocando",
            ThreadStatus::Other(other) => other,
        }
    }

    /// Read a status name; unknown names are kept as [`ThreadStatus::Other`].
    pub fn parse(text: &str) -> ThreadStatus {
        match text {
            "open" => ThreadStatus::Open,
            "merged" => ThreadStatus::Merged,
            "running" => ThreadStatus::Running,
            "done" => ThreadStatus::Done,
            "pending" => ThreadStatus::Pending,
            "error" => ThreadStatus::Error,
            "nocando" => ThreadStatus::Nocando,
            other => ThreadStatus::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for ThreadStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The content of one step, as written into and read back from a commit message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// The thread the step belongs to.
    pub thread: String,
    /// 1-based step number.
    pub number: u64,
    /// What the step did.
    pub kind: StepKind,
    /// Who made it.
    pub actor: String,
    /// The thread's status after it.
    pub status: ThreadStatus,
    /// The thread's title after it (may be empty).
    pub title: String,
    /// The human-readable text, recorded exactly.
    pub text: String,
    /// The path a `write` step wrote.
    pub path: Option<String>,
    /// `<thread>@<commit>` for a fork's first step.
    pub forked_from: Option<String>,
    /// What the thread was made for, when it is not a person's work (carried on every step).
    pub purpose: Option<ThreadPurpose>,
    /// Further `Hal-*` trailers (key with its `Hal-` prefix, value on one line), in order: what a runner records
    /// about a step (help, model, tokens, …).
    pub facts: Vec<(String, String)>,
}

impl StepRecord {
    /// Render the commit message. Fails on text that a commit message cannot hold.
    pub fn to_message(&self) -> Result<String> {
        if self.text.contains('\0') {
            return Err(StoreError::InvalidText("it contains a NUL byte"));
        }
        let summary = summary_of(&self.text);
        let mut message = format!("{}: {}\n\n", self.actor, summary);
        if self.text != summary {
            message.push_str(&self.text);
            message.push_str("\n\n");
        }
        let mut trailer = |key: &str, value: &str| {
            message.push_str(key);
            message.push_str(": ");
            message.push_str(&single_line(value));
            message.push('\n');
        };
        trailer(key::THREAD, &self.thread);
        trailer(key::STEP, &self.number.to_string());
        trailer(key::KIND, self.kind.as_str());
        trailer(key::ACTOR, &self.actor);
        trailer(key::STATUS, self.status.as_str());
        if !self.title.is_empty() {
            trailer(key::TITLE, &self.title);
        }
        if let Some(path) = &self.path {
            trailer(key::PATH, path);
        }
        if let Some(from) = &self.forked_from {
            trailer(key::FORKED_FROM, from);
        }
        if let Some(purpose) = self.purpose {
            trailer(key::PURPOSE, purpose.as_str());
        }
        for (name, value) in &self.facts {
            if !valid_fact_key(name) {
                return Err(StoreError::InvalidText("a fact's key must be `Hal-` and letters, digits or dashes"));
            }
            trailer(name, value);
        }
        Ok(message)
    }

    /// Read a commit message written by [`StepRecord::to_message`]. Returns `None` for a commit that is not
    /// a HAL step (no `Hal-Step` trailer), and an error message for a step whose trailers are broken.
    pub fn from_message(message: &str) -> Option<std::result::Result<StepRecord, BadTrailers>> {
        let trimmed = message.strip_suffix('\n').unwrap_or(message);
        let (head, trailer_block) = trimmed.rsplit_once("\n\n")?;
        let trailers: Vec<(&str, &str)> = trailer_block.lines().filter_map(|line| line.split_once(": ")).collect();
        let get = |wanted: &str| trailers.iter().rev().find(|(k, _)| *k == wanted).map(|(_, v)| *v);
        let number = get(key::STEP)?;
        Some(
            (|| {
                let number: u64 = number.parse().map_err(|_| format!("{} is {number:?}, not a number", key::STEP))?;
                let thread = get(key::THREAD).ok_or(format!("no {} trailer", key::THREAD))?.to_owned();
                let kind = StepKind::parse_name(get(key::KIND).ok_or(format!("no {} trailer", key::KIND))?);
                let actor = get(key::ACTOR).ok_or(format!("no {} trailer", key::ACTOR))?.to_owned();
                let status = ThreadStatus::parse(get(key::STATUS).unwrap_or("open"));
                let (subject, body) = match head.split_once("\n\n") {
                    Some((subject, body)) => (subject, Some(body)),
                    None => (head, None),
                };
                let text = match body {
                    Some(body) => body.to_owned(),
                    None => subject
                        .strip_prefix(&format!("{actor}: "))
                        .ok_or_else(|| format!("subject does not start with `{actor}: `"))?
                        .to_owned(),
                };
                Ok(StepRecord {
                    thread,
                    number,
                    kind,
                    actor,
                    status,
                    title: get(key::TITLE).unwrap_or_default().to_owned(),
                    text,
                    path: get(key::PATH).map(str::to_owned),
                    forked_from: get(key::FORKED_FROM).map(str::to_owned),
                    purpose: get(key::PURPOSE).and_then(ThreadPurpose::parse),
                    facts: trailers
                        .iter()
                        .filter(|(k, _)| k.starts_with(FACT_PREFIX) && !key::CORE.contains(k))
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                })
            })()
            .map_err(BadTrailers),
        )
    }
}

impl StepRecord {
    /// The value of the fact `name` (e.g. `Hal-Model`), if the step has it.
    pub fn fact(&self, name: &str) -> Option<&str> {
        self.facts.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A fact key is `Hal-` followed by letters, digits and dashes, and not one of the core keys.
fn valid_fact_key(name: &str) -> bool {
    name.strip_prefix(FACT_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && !key::CORE.contains(&name)
}

/// The subject line's summary of `text`: its first non-blank line, trimmed and shortened.
fn summary_of(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("");
    if line.chars().count() <= SUMMARY_CHARS {
        line.to_owned()
    } else {
        let mut short: String = line.chars().take(SUMMARY_CHARS - 1).collect();
        short.push('…');
        short
    }
}

/// Trailer values are one line without control characters: runs of them become one space.
fn single_line(value: &str) -> String {
    value.split(char::is_control).filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> StepRecord {
        StepRecord {
            thread: "0h2k7f3m9q1".into(),
            number: 7,
            kind: StepKind::Message,
            actor: "alice".into(),
            status: ThreadStatus::Open,
            title: "a title".into(),
            text: text.into(),
            path: None,
            forked_from: None,
            purpose: Some(ThreadPurpose::Replay),
            facts: Vec::new(),
        }
    }

    fn round_trip(text: &str) {
        let original = record(text);
        let message = original.to_message().expect("valid text");
        let back = StepRecord::from_message(&message).expect("is a step").expect("parses");
        assert_eq!(back, original, "message was:\n{message}");
    }

    #[test]
    fn text_round_trips_exactly() {
        for text in [
            "hello",
            "  padded  ",
            "line one\nline two",
            "trailing newline\n",
            "\nleading newline",
            "para one\n\npara two\n\n\n",
            "looks like a trailer\n\nHal-Step: 99\nHal-Kind: evil",
            "crlf\r\nline\r\n",
            &"x".repeat(500),
            "ünïcödé ✓ and emoji 🚀",
        ] {
            round_trip(text);
        }
    }

    #[test]
    fn short_text_is_the_subject_only() {
        let message = record("hello").to_message().expect("valid");
        assert!(message.starts_with("alice: hello\n\nHal-Thread: "), "{message}");
    }

    #[test]
    fn long_lines_are_shortened_in_the_subject() {
        let message = record(&"y".repeat(100)).to_message().expect("valid");
        let subject = message.lines().next().expect("subject");
        assert_eq!(subject.chars().count(), "alice: ".len() + SUMMARY_CHARS);
        assert!(subject.ends_with('…'));
    }

    #[test]
    fn titles_with_newlines_stay_on_one_trailer_line() {
        let mut step = record("hi");
        step.title = "two\nlines\tand a tab".into();
        let back = StepRecord::from_message(&step.to_message().expect("valid")).expect("step").expect("parses");
        assert_eq!(back.title, "two lines and a tab");
    }

    #[test]
    fn facts_round_trip_in_order_and_core_keys_are_not_facts() {
        let mut step = record("reply text");
        step.kind = StepKind::Reply;
        step.status = ThreadStatus::Running;
        step.facts = vec![
            ("Hal-Help".into(), "goalie".into()),
            ("Hal-Model".into(), "gpt-4.1-mini".into()),
            ("Hal-Tokens-In".into(), "120".into()),
        ];
        let back = StepRecord::from_message(&step.to_message().expect("valid")).expect("step").expect("parses");
        assert_eq!(back, step);
        assert_eq!(back.fact("Hal-Tokens-In"), Some("120"));
        step.facts = vec![("Hal-Step".into(), "1".into())];
        assert!(step.to_message().is_err(), "a fact may not shadow a core trailer");
        step.facts = vec![("Model".into(), "x".into())];
        assert!(step.to_message().is_err(), "facts are Hal-* trailers");
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert!(record("a\0b").to_message().is_err());
    }

    #[test]
    fn plain_commits_are_not_steps() {
        assert!(StepRecord::from_message("Initial commit\n").is_none());
        assert!(StepRecord::from_message("Fix bug\n\nSigned-off-by: A <a@b>\n").is_none());
    }

    #[test]
    fn broken_trailers_are_reported() {
        let broken = "alice: hi\n\nHal-Step: seven\nHal-Thread: x\nHal-Kind: message\nHal-Actor: alice\n";
        let error = StepRecord::from_message(broken).expect("is a step").expect_err("broken");
        assert!(error.0.contains("seven"), "{error}");
    }

    #[test]
    fn unknown_kinds_survive() {
        let mut step = record("hi");
        step.kind = StepKind::Other("tool-call".into());
        round_trip_record(step);
    }

    fn round_trip_record(step: StepRecord) {
        let back = StepRecord::from_message(&step.to_message().expect("valid")).expect("step").expect("parses");
        assert_eq!(back, step);
    }
}
