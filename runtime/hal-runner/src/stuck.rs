//! "Stucks": what a router (the goalie) records when no help meets a request, as a file on its thread, so that a
//! person can see across threads which needs no help meets yet (`hal stuck list`). One file per request that got
//! stuck, `stucks/<thread>-<request>.json`: the request, what was missing, the helps tried, and how the route ended.

use serde::{Deserialize, Serialize};

/// The folder of a thread's tree that holds its stucks.
pub const STUCKS_DIR: &str = "stucks";

/// One request no help met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stuck {
    /// The request, as the last round had it (rewritten, maybe).
    pub asked: String,
    /// What no help offers, in the stuck-finder's words (or the router's, when the stuck-finder could not say).
    pub missing: String,
    /// The helps tried, in order.
    pub tried: Vec<Tried>,
    /// How the route ended.
    pub ended: Ended,
    /// The help proposed to meet the need, when the stuck-finder proposed one and its author ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed: Option<Proposed>,
    /// The router that got stuck.
    pub router: String,
    /// Rounds used, of how many allowed.
    pub rounds: u32,
    /// Rounds allowed.
    pub of: u32,
}

/// A help a route tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// The help.
    pub help: String,
    /// The thread it ran on.
    pub thread: String,
}

/// How a route that found no help ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    /// The stuck-finder said nothing here can meet the request.
    GaveUp,
    /// The rounds allowed (`route.rounds`) were used up.
    OutOfRounds,
    /// The stuck-finder proposed a new help, and its author wrote one on a thread to merge.
    Proposed,
}

impl Ended {
    /// The name in records and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::GaveUp => "gave-up",
            Ended::OutOfRounds => "out-of-rounds",
            Ended::Proposed => "proposed",
        }
    }
}

/// A new help proposed for a stuck request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposed {
    /// The name the stuck-finder gave it.
    pub help: String,
    /// The thread its author worked on: merge it to add the help.
    pub thread: String,
    /// How the author's run ended (`DONE`, …).
    pub status: String,
}

impl Stuck {
    /// The file of the stuck a route on thread `thread` recorded for the request `key` (its commit, short).
    pub fn path(thread: &str, key: &str) -> String {
        format!("{STUCKS_DIR}/{thread}-{key}.json")
    }

    /// The file's content: pretty JSON, for people reading the thread's diff as much as for HAL.
    pub fn to_file(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text.into_bytes()
    }

    /// Read a stuck file back; `Err` with why when it is not one (anyone can push a file under `stucks/`).
    pub fn from_file(bytes: &[u8]) -> Result<Stuck, String> {
        serde_json::from_slice(bytes).map_err(|error| error.to_string())
    }
}
