//! Paths inside a thread's tree: the one check every writer's paths pass.
//!
//! HAL writes what models and isolates ask for, so a path is hostile until checked. Git's own rules come from
//! `gix-validate` with every protection on (what `core.protectHFS` and `core.protectNTFS` add, and Windows'
//! device names and characters): `.git` in any case and its look-alikes (`.git ` and `.git.`, the 8.3 name
//! `git~1`, NTFS streams such as `.git::$INDEX_ALLOCATION`, `.g\u{200c}it` which HFS+ reads as `.git`). A tree
//! holding one of those fails `git fsck --strict` and is refused by servers that check what is pushed to them,
//! and a checkout of it on macOS or Windows could write into the repository's own `.git`. Beyond git's rules HAL
//! refuses `.gitmodules` (a thread has no submodules; a crafted one is what fsck's `gitmodules*` checks are
//! about) and `.gitattributes` (fsck rejects long lines in one), control characters, backslashes, and names
//! longer than file systems take.

use gix::bstr::ByteSlice;
use gix_validate::path::component::{self, Error as ComponentError, Mode};

use crate::{Result, StoreError};

/// Longest path, in bytes (git's own `PATH_MAX` on Linux).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path component, in bytes (what ext4, APFS and NTFS allow).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Check that `path` names a file inside a thread's tree and return it in canonical form (`/`-separated,
/// no leading `./`). See the module docs for what is refused; the error says which rule and which component.
pub fn normalize(path: &str) -> Result<String> {
    let invalid = |reason: String| StoreError::InvalidPath { path: clipped(path), reason };
    if path.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(invalid(format!("it is {} bytes long; the limit is {MAX_PATH_BYTES}", path.len())));
    }
    if path.starts_with('/') {
        return Err(invalid("it must be relative to the thread's tree, not absolute".to_owned()));
    }
    if path.ends_with('/') {
        return Err(invalid("it names a directory; give a file name".to_owned()));
    }
    if path.contains('\\') {
        return Err(invalid("use `/` to separate directories".to_owned()));
    }
    if path.chars().any(char::is_control) {
        return Err(invalid("it contains a control character".to_owned()));
    }
    let trimmed = path.strip_prefix("./").unwrap_or(path);
    let mut components = Vec::new();
    for name in trimmed.split('/') {
        check_component(name).map_err(|bad| invalid(bad.0))?;
        components.push(name);
    }
    Ok(components.join("/"))
}

/// Why a file or directory name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadName(pub String);

/// Check one path component (a file or directory name) by the same rules as [`normalize`].
pub fn check_component(name: &str) -> std::result::Result<(), BadName> {
    match name {
        "" => return Err(BadName("it has an empty component (`//`)".to_owned())),
        "." | ".." => return Err(BadName("`.` and `..` are not allowed".to_owned())),
        _ => {}
    }
    if name.len() > MAX_COMPONENT_BYTES {
        return Err(BadName(format!("a name in it is {} bytes long; the limit is {MAX_COMPONENT_BYTES}", name.len())));
    }
    let options = component::Options::default();
    gix_validate::path::component(name.as_bytes().as_bstr(), None, options).map_err(|error| {
        BadName(match error {
            ComponentError::DotGitDir => format!("`{name}` is or reads as `.git`, which git never allows in a tree"),
            other => format!("`{name}`: {other}"),
        })
    })?;
    // Asking as if the name were a symlink makes gix-validate tell `.gitmodules` and its look-alikes apart.
    if let Err(ComponentError::SymlinkedGitModules) =
        gix_validate::path::component(name.as_bytes().as_bstr(), Some(Mode::Symlink), options)
    {
        return Err(BadName(format!("`{name}` is or reads as `.gitmodules`, which HAL never writes")));
    }
    if reads_as_gitattributes(name) {
        return Err(BadName(format!("`{name}` is or reads as `.gitattributes`, which HAL never writes")));
    }
    Ok(())
}

/// Whether `name` is `.gitattributes` as git's fsck sees it: in any case, with the code points HFS+ ignores, or as
/// an NTFS short name. fsck checks what such a file holds (line length, size); HAL refuses the name instead, as it
/// refuses `.gitmodules`, rather than judge the content of every write.
fn reads_as_gitattributes(name: &str) -> bool {
    let hfs_ignorable = |c: &char| matches!(*c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}');
    let folded: String = name.chars().filter(|c| !hfs_ignorable(c)).collect::<String>().to_ascii_lowercase();
    if folded == ".gitattributes" {
        return true;
    }
    ["gitatt~", "gi7d29~"]
        .iter()
        .any(|short| folded.strip_prefix(short).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())))
}

/// `path` cut to a length an error message can quote.
fn clipped(path: &str) -> String {
    const QUOTED: usize = 200;
    match path.char_indices().nth(QUOTED) {
        Some((end, _)) => format!("{}…", &path[..end]),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accepts_ordinary_paths() {
        assert_eq!(normalize("notes.md").expect("ok"), "notes.md");
        assert_eq!(normalize("./src/lib.rs").expect("ok"), "src/lib.rs");
        assert_eq!(normalize("a b/ü.txt").expect("ok"), "a b/ü.txt");
        assert_eq!(normalize(".github/workflows/ci.yml").expect("ok"), ".github/workflows/ci.yml");
        assert_eq!(normalize("gitignore/.gitignore").expect("ok"), "gitignore/.gitignore");
        assert_eq!(normalize("docs/gitattributes.md").expect("ok"), "docs/gitattributes.md");
    }

    #[test]
    fn refuses_escapes_and_oddities() {
        for bad in
            ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "dir/", ".git/config", "x/.GIT/y", "a\\b", "a\nb"]
        {
            let error = normalize(bad).expect_err(bad).to_string();
            assert!(error.contains("invalid path"), "{bad}: {error}");
        }
    }

    /// Regression: these passed HAL's check and were stopped only by gix while committing (killing the run), or
    /// were committed and merged, after which `git fsck --strict` failed.
    #[test]
    fn regression_git_lookalike_names_are_refused() {
        for bad in [
            ".git ",
            ".git.",
            "git~1/config",
            "GIT~1",
            ".git::$INDEX_ALLOCATION/config",
            ".g\u{200c}it/config",
            "a/.gi\u{200d}t/hooks/pre-commit",
            ".gitmodules",
            "sub/.GITMODULES",
            "gitmod~1",
            ".gitmodules ",
            ".gitattributes",
            "a/.GitAttributes",
            ".gitattri\u{200c}butes",
            "GITATT~1",
        ] {
            let error = normalize(bad).expect_err(bad).to_string();
            assert!(error.contains("`.git") || error.contains("git"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn regression_windows_names_and_long_names_are_refused() {
        for bad in ["con", "dir/aux.txt", "a:b", "what?", "name.", "name "] {
            normalize(bad).expect_err(bad);
        }
        let long_name = "x".repeat(256);
        let error = normalize(&long_name).expect_err("long name").to_string();
        assert!(error.contains("256 bytes long"), "{error}");
        let long_path = vec!["d"; 2100].join("/");
        let error = normalize(&long_path).expect_err("long path").to_string();
        assert!(error.contains("the limit is 4096"), "{error}");
        assert!(error.len() < 600, "the error quotes a clipped path: {error}");
        normalize(&"x".repeat(255)).expect("255 bytes are fine");
    }
}
