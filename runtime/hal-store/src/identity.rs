//! Actors: who makes a step.
//!
//! An actor name is used in branch names (`actors/<name>`, `threads/<name>/<id>`), so it is restricted to
//! lowercase ASCII letters, digits, `-`, `_` and `.`. The local human's name comes from `HAL_ACTOR`, the
//! repository's `hal.actor` setting (written by `hal init`), or `user.name`, in that order.

use crate::{Result, StoreError};

/// The actor name of HAL itself.
pub const HAL_ACTOR: &str = "hal";

/// Check an actor name given by a user.
pub fn validate(name: &str) -> Result<()> {
    let invalid = |reason| StoreError::InvalidActor { name: name.to_owned(), reason };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("it must be 1 to 64 characters long"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(invalid("use lowercase letters, digits, `-`, `_` and `.`"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("it must start with a letter or digit"));
    }
    if name.ends_with('.') || name.contains("..") || name.ends_with(".lock") {
        return Err(invalid("git does not allow this in a branch name"));
    }
    Ok(())
}

/// Turn a display name such as `Jane Q. Doe` into an actor name such as `jane-q-doe`. Returns `None` when
/// nothing usable is left.
pub fn slug(display_name: &str) -> Option<String> {
    let mut slug = String::new();
    for ch in display_name.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug: String = slug.chars().take(64).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    (validate(&slug).is_ok()).then_some(slug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_from_display_names() {
        assert_eq!(slug("Jane Q. Doe").as_deref(), Some("jane-q-doe"));
        assert_eq!(slug("  alice ").as_deref(), Some("alice"));
        assert_eq!(slug("Zoë").as_deref(), Some("zo"));
        assert_eq!(slug("---"), None);
        assert_eq!(slug("日本"), None);
    }

    #[test]
    fn validation() {
        assert!(validate("alice").is_ok());
        assert!(validate("bot-7.x").is_ok());
        for bad in ["", "Alice", "a b", "-a", "a.", "a..b", "x.lock", "a/b"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
