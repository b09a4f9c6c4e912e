//! What a thread was made for, when it is not a person's work: carried on every step of it as the
//! `Hal-Purpose` trailer, like the title.

use serde::Serialize;

/// What a thread was made for, when it is not a person's work: such threads are left out of `hal thread list`
/// unless `--all` is given. A value this version does not know reads as a person's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadPurpose {
    /// A case of `hal help test`.
    Test,
    /// A replay of another thread (`hal thread replay`).
    Replay,
}

impl ThreadPurpose {
    /// The name used in the `Hal-Purpose` trailer.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadPurpose::Test => "test",
            ThreadPurpose::Replay => "replay",
        }
    }

    /// The purpose a trailer value names; `None` for one this version does not know.
    pub fn parse(value: &str) -> Option<ThreadPurpose> {
        match value {
            "test" => Some(ThreadPurpose::Test),
            "replay" => Some(ThreadPurpose::Replay),
            _ => None,
        }
    }
}
