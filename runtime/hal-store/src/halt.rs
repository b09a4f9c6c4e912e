//! The halt switch as git objects: `refs/hal/halt` points at the newest of a chain of commits, each one a halt or a
//! resume with who asked, why, and their detached signature. Every daemon sharing the repo reads the same ref, and
//! a restart finds it where it was. The store only writes and reads the chain; whether a halt counts (an owner
//! signed it) is `hal-trust`'s judgement.

use gix::ObjectId;
use gix::bstr::ByteSlice;

use crate::error::GixContext;
use gix::refs::Target;

use crate::refs::{self, Expect};
use crate::{Home, Result, StoreError};

/// The ref of the halt switch.
pub const HALT_REF: &str = "refs/hal/halt";

/// Trailer names of a halt commit.
pub mod key {
    /// `on` (halt) or `off` (resume).
    pub const HALT: &str = "Hal-Halt";
    /// Who asked.
    pub const ACTOR: &str = "Hal-Actor";
    /// The asker's detached signature of the statement (one line of base64).
    pub const SIGNATURE: &str = "Hal-Signature";
    /// The previous halt commit the statement follows (`none` for the first).
    pub const AFTER: &str = "Hal-After";
}

/// The longest reason a halt may give, in bytes.
pub const MAX_REASON: usize = 2_000;

/// One halt or resume, as its commit says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltRecord {
    /// Its commit.
    pub commit: ObjectId,
    /// The commit before it on the chain.
    pub parent: Option<ObjectId>,
    /// Halt (`true`) or resume.
    pub on: bool,
    /// Who asked (a claim until the signature is checked).
    pub actor: String,
    /// Why (one line, empty when none was given: the commit message's subject after `halt: `).
    pub reason: String,
    /// The asker's signature of the statement.
    pub signature: Option<String>,
    /// The previous halt commit the statement names (`none` for the first).
    pub after: Option<String>,
}

impl Home {
    /// Where `refs/hal/halt` points, whatever is there.
    pub fn halt_tip(&self) -> Result<Option<ObjectId>> {
        refs::read(self.repo(), &refs::full_name(HALT_REF)?)
    }

    /// The newest halt or resume, if the switch was ever used. A commit there that does not read as one (pushed
    /// by hand) is an error the caller reports: it must not pass for "not halted" unnoticed.
    pub fn halt_record(&self) -> Result<Option<HaltRecord>> {
        let name = refs::full_name(HALT_REF)?;
        let Some(tip) = refs::read(self.repo(), &name)? else { return Ok(None) };
        let commit = self.repo().find_commit(tip).git_context(|| format!("reading the halt commit {tip}"))?;
        let message = commit.message_raw_sloppy().to_str_lossy().into_owned();
        let parent = commit.parent_ids().next().map(|id| id.detach());
        let (subject, trailers) = message.trim_end().rsplit_once("\n\n").unwrap_or(("", message.trim_end()));
        let reason = subject.split_once(": ").map_or("", |(_, reason)| reason);
        let get = |name: &str| {
            trailers.lines().filter_map(|line| line.split_once(": ")).find(|(k, _)| *k == name).map(|(_, v)| v)
        };
        let on = match get(key::HALT) {
            Some("on") => true,
            Some("off") => false,
            _ => {
                return Err(StoreError::InvalidFile(format!(
                    "{HALT_REF} points at {tip}, which is not a halt or a resume (no `{}: on|off` trailer)",
                    key::HALT
                )));
            }
        };
        Ok(Some(HaltRecord {
            commit: tip,
            parent,
            on,
            actor: get(key::ACTOR).unwrap_or_default().to_owned(),
            reason: reason.to_owned(),
            signature: get(key::SIGNATURE).map(str::to_owned),
            after: get(key::AFTER).map(str::to_owned),
        }))
    }

    /// Write a halt (`on`) or resume after `expected` (the halt commit the asker's statement follows: the one
    /// believed last, `None` for the first), signed by HAL, carrying the asker's `signature` of the statement, and
    /// point the switch at it in place of `replacing` (where the ref points now, whatever someone put there).
    /// [`StoreError::Moved`] when the ref moved from `replacing` meanwhile.
    pub fn write_halt(
        &self,
        expected: Option<ObjectId>,
        replacing: Option<ObjectId>,
        on: bool,
        actor: &str,
        reason: &str,
        signature: &str,
    ) -> Result<ObjectId> {
        crate::identity::validate(actor)?;
        // One line as signed: nothing the commit message would change.
        if reason.len() > MAX_REASON || reason.contains(['\0', '\n', '\r']) || reason.trim() != reason {
            return Err(StoreError::InvalidText(
                "a halt's reason is one line of at most 2,000 bytes, without spaces around it",
            ));
        }
        if signature.is_empty() || !signature.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) {
            return Err(StoreError::InvalidText("a halt's signature is one line of base64"));
        }
        let (word, title) = if on { ("on", "halt") } else { ("off", "resume") };
        let after = expected.map_or_else(|| "none".to_owned(), |id| id.to_string());
        let message = format!(
            "{title}: {reason}\n\n{}: {word}\n{}: {actor}\n{}: {after}\n{}: {signature}\n",
            key::HALT,
            key::ACTOR,
            key::AFTER,
            key::SIGNATURE,
        );
        // Written, not assumed: `git fsck` wants every tree a commit names in the object database.
        let tree =
            self.repo().write_object(gix::objs::Tree::empty()).git_context(|| "writing an empty tree".to_owned())?;
        let tree = tree.detach();
        let commit = self.write_commit(tree, expected.into_iter().collect(), &self.signature(actor), &message)?;
        let name = refs::full_name(HALT_REF)?;
        let expect = replacing.map_or(Expect::Absent, Expect::At);
        if self.refs().swap_once(&name, expect, Target::Object(commit), None).is_err() {
            let found = refs::read(self.repo(), &name)?.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1));
            return Err(StoreError::Moved {
                branch: HALT_REF.to_owned(),
                expected: replacing.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1)),
                found,
            });
        }
        Ok(commit)
    }
}
