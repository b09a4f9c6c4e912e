//! Paths inside a thread's tree.

use crate::{Result, StoreError};

/// Check that `path` names a file inside a thread's tree and return it in canonical form (`/`-separated,
/// no leading `./`).
///
/// Refused: absolute paths, empty components, `.` and `..`, `.git` in any case (git itself refuses such
/// trees), backslashes (a Windows checkout would read them as separators), control characters, and a
/// trailing `/`.
pub fn normalize(path: &str) -> Result<String> {
    let invalid = |reason: &str| StoreError::InvalidPath { path: path.to_owned(), reason: reason.to_owned() };
    if path.is_empty() {
        return Err(invalid("it is empty"));
    }
    if path.starts_with('/') {
        return Err(invalid("it must be relative to the thread's tree, not absolute"));
    }
    if path.ends_with('/') {
        return Err(invalid("it names a directory; give a file name"));
    }
    if path.contains('\\') {
        return Err(invalid("use `/` to separate directories"));
    }
    if path.chars().any(char::is_control) {
        return Err(invalid("it contains a control character"));
    }
    let trimmed = path.strip_prefix("./").unwrap_or(path);
    let mut components = Vec::new();
    for component in trimmed.split('/') {
        match component {
            "" => return Err(invalid("it has an empty component (`//`)")),
            "." | ".." => return Err(invalid("`.` and `..` are not allowed")),
            name if name.eq_ignore_ascii_case(".git") => {
                return Err(invalid("`.git` cannot be part of a tracked path"));
            }
            name => components.push(name),
        }
    }
    Ok(components.join("/"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accepts_ordinary_paths() {
        assert_eq!(normalize("notes.md").expect("ok"), "notes.md");
        assert_eq!(normalize("./src/lib.rs").expect("ok"), "src/lib.rs");
        assert_eq!(normalize("a b/ü.txt").expect("ok"), "a b/ü.txt");
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
}
