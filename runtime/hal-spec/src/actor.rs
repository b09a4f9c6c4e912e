//! `actor.yaml`: who an actor is and the public keys of the machines it works from (on the branch
//! `actors/<name>`). The file only claims; which keys count is decided from who signed the commits that changed it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::problem::SpecError;
use crate::validate::Schema;

/// The schema every actor file is validated against (`schemas/actor.schema.json`).
pub const ACTOR_SCHEMA: &str = include_str!("../../../schemas/actor.schema.json");

/// A validated actor file. The fields mirror `schemas/actor.schema.json`, which documents them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorFile {
    /// The actor's name.
    pub name: String,
    /// `human` or `machine`.
    pub kind: String,
    /// How to show it.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Its public keys.
    #[serde(default)]
    pub keys: Vec<ActorKey>,
}

/// One public key of an actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorKey {
    /// One OpenSSH public key line.
    pub key: String,
    /// The machine its private half lives on.
    #[serde(default)]
    pub machine: Option<String>,
}

impl ActorFile {
    /// Parse and validate an actor file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<ActorFile, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(ACTOR_SCHEMA)).load(file, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_a_bad_key_is_named_by_line() {
        let good = "name: alice\nkind: human\nkeys:\n  - key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0 alice@box\"\n    machine: box\n";
        let actor = ActorFile::parse("actors/alice/actor.yaml", good).expect("valid");
        assert_eq!(actor.keys[0].machine.as_deref(), Some("box"));
        let bad = "name: alice\nkind: human\nkeys:\n  - key: \"ssh-rsa AAAA\"\n";
        let error = ActorFile::parse("actors/alice/actor.yaml", bad).expect_err("not ed25519");
        assert!(error.to_string().contains("actors/alice/actor.yaml:4"), "{error}");
    }
}
