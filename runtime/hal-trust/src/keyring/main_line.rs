//! Reading `main` for trust: the owners in force, that `main` never moved back, the newest commit an owner signed
//! or HAL merged for one (what helps, agents and code come from), and the pinned root.

use std::collections::BTreeMap;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use hal_store::identity::HAL_ACTOR;
use hal_store::keys;
use hal_store::{CONFIG_FILE, Home};

use super::*;
use crate::TrustError;

impl Keyring {
    pub(super) fn read_owners(&mut self, home: &Home, main: ObjectId) -> Result<(), TrustError> {
        let place = format!("main:{CONFIG_FILE}");
        let mut truncated = Vec::new();
        let changes = changes_of(home, main, CONFIG_FILE, &mut truncated)?;
        if let Some(commit) = truncated.first() {
            // The oldest change seen is not the root when older ones were not read: trust no owner at all rather
            // than whoever pushed enough commits on top of their own.
            let text = format!("history longer than {HISTORY_LIMIT} commits: no owner is believed");
            self.problem(&place, *commit, text.clone());
            self.rewritten = Some(text);
            return Ok(());
        }
        for (commit, text) in changes {
            let signer = signer_of(home, commit)?;
            let signed_by = |owners: &BTreeMap<String, Vec<String>>| {
                signer.as_ref().is_some_and(|key| {
                    let line = keys::public_line(key);
                    owners.values().flatten().any(|l| same_key(l, &line))
                })
            };
            let parsed = text.and_then(|text| {
                hal_spec::Settings::parse(&place, &text).map_err(|e| format!("it does not validate ({e})"))
            });
            let owners = match parsed {
                // A hal.yaml without `owners` leaves them as they are: owners change only by being listed, so a
                // file rewritten from scratch does not leave the repo without any.
                Ok(settings) if settings.owners.is_empty() && self.owners_from.is_some() => self.owners.clone(),
                Ok(settings) => settings.owners,
                // An owner's invalid change is in force as far as settings go: the catalogue reports why it does
                // not load (and keeps what loaded before); the owners stay.
                Err(_) if self.owners_from.is_some() && signed_by(&self.owners) => {
                    self.settings_from = Some(commit);
                    continue;
                }
                Err(error) => {
                    self.problem(&place, commit, format!("not applied: {error}"));
                    continue;
                }
            };
            if self.owners_from.is_none() {
                // The root: the first change naming owners, signed by one of them.
                if owners.is_empty() {
                    continue;
                }
                if !signed_by(&owners) {
                    self.problem(&place, commit, "names owners, but none of their keys signed it: not applied".into());
                    continue;
                }
            } else if !signed_by(&self.owners) {
                let what = if owners == self.owners { "changes hal.yaml" } else { "changes the owners" };
                let kept = self.settings_from.map(|c| c.to_hex_with_len(7).to_string()).unwrap_or_default();
                self.problem(&place, commit, format!("{what}, but no owner signed it: not applied ({kept} stays)"));
                continue;
            }
            if owners != self.owners {
                self.owners = owners;
                self.owners_from = Some(commit);
                self.root = self.root.or(Some(commit));
            }
            self.settings_from = Some(commit);
        }
        for (actor, lines) in &self.owners.clone() {
            for line in lines {
                match keys::parse_public(line) {
                    Ok(key) => self.trust(&place, self.owners_from, actor, &key),
                    Err(error) => {
                        let commit = self.owners_from.unwrap_or(main);
                        self.problem(&place, commit, format!("owner {actor}: {error}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The `main` to believe: `main` itself while it grows (along first parents) from the one this repository saw
    /// last (`.git/hal/main-seen`); the one seen last when `main` was moved back or sideways (reset to an older
    /// owner-signed commit, or pointed at another line), so helps, settings and owners never roll back by a push.
    pub(super) fn main_not_moved_back(&mut self, home: &Home, main: ObjectId) -> ObjectId {
        let path = main_seen_path(home);
        let seen = std::fs::read_to_string(&path).ok().and_then(|t| ObjectId::from_hex(t.trim().as_bytes()).ok());
        if let Some(seen) = seen
            && seen != main
            && !home.grows_from(seen, main)
            && home.repo().find_commit(seen).is_ok()
        {
            let text = format!(
                "main was moved from {seen} to {main}, which does not grow from it: what {seen} holds stays in force \
                 (remove {} to accept the move)",
                path.display()
            );
            self.problem("main", main, text);
            return seen;
        }
        if seen != Some(main) {
            write_whole(&path, &format!("{main}\n"));
        }
        main
    }

    /// Find the commit of `main` whose helps and agents are in force (see [`Keyring::main_from`]).
    pub(super) fn read_main_in_force(&mut self, home: &Home, main: ObjectId) -> Result<(), TrustError> {
        // A rewritten main is believed in nothing.
        if self.rewritten.is_some() {
            return Ok(());
        }
        if self.root.is_none() {
            self.main_from = Some(main);
            return Ok(());
        }
        let mut skipped = 0usize;
        let mut next = Some(main);
        while let Some(commit) = next {
            if skipped >= HISTORY_LIMIT {
                break;
            }
            let found =
                home.repo().find_commit(commit).map_err(|e| TrustError::Git(format!("reading {commit}: {e}")))?;
            let counts = signer_of(home, commit)?.is_some_and(|key| {
                self.is_owner_key(&key)
                    || (self.owner_of(&key).is_some_and(|k| k.actor == HAL_ACTOR && !k.revoked)
                        && is_hals_merge(&found.message_raw_sloppy().to_str_lossy()))
            });
            if counts {
                self.main_from = Some(commit);
                break;
            }
            skipped += 1;
            next = found.parent_ids().next().map(|id| id.detach());
        }
        if skipped > 0 {
            let at = self.main_from.map_or_else(|| "the built-ins only".to_owned(), |c| c.to_string());
            let text = format!(
                "the newest {skipped} commit(s) of main are signed by no owner (nor are HAL's merges): the helps, \
                 agents, isolates and plugins in force are those at {at}; an owner signs what they accept (`git \
                 commit -S` with the key `hal init` set up)"
            );
            self.problem("main", main, text);
        }
        Ok(())
    }

    /// Pin the root on first sight; believe no owner when `main`'s root is not the pinned one.
    pub(super) fn check_pin(&mut self, home: &Home, main: ObjectId) {
        let path = pin_path(home);
        let root = self.root.map(|root| root.to_string());
        match std::fs::read_to_string(&path) {
            Ok(pinned) if Some(pinned.trim()) == root.as_deref() => {}
            Ok(pinned) => {
                let text = format!(
                    "main's history was rewritten: its trust root is {}, and this repository first saw {}; no owner \
                     is believed and its hal.yaml is not applied (remove {} to accept the new root)",
                    root.as_deref().unwrap_or("gone"),
                    pinned.trim(),
                    path.display()
                );
                *self = Keyring::default();
                self.problem(&format!("main:{CONFIG_FILE}"), main, text.clone());
                self.rewritten = Some(text);
            }
            Err(_) if root.is_none() => {}
            // First sight: pinned, never half-written.
            Err(_) => write_whole(&path, &format!("{}\n", root.as_deref().unwrap_or_default())),
        }
    }
}
