//! Files outside git that HAL keeps (`.git/hal/...`, caches, the secret store) and text it cuts to size: one way
//! each, used everywhere.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` whole or not at all: into a temporary file of its own in the same directory (created
/// when missing), readable by this user only (0600), flushed to disk, then renamed over `path`. A reader never sees
/// half a file, and two writers at once (threads or processes) never tear each other's; the last rename wins.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map(drop).map_err(|error| error.error)
}

/// The longest start of `text` that is at most `max` bytes and ends between characters.
pub fn prefix(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// `text` cut to at most `max` bytes (between characters), saying how much was cut and why
/// (`…\n[… 1234 more bytes<why>]`); `text` itself when it fits.
pub fn clip(text: &str, max: usize, why: &str) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let kept = prefix(text, max);
    format!("{kept}\n[… {} more bytes{why}]", text.len() - kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_whole_characters_and_says_what_was_cut() {
        assert_eq!(prefix("héllo", 2), "h", "é is two bytes: not split");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(clip("short", 10, ""), "short");
        assert_eq!(clip("héllo world", 3, " cut"), "hé\n[… 9 more bytes cut]");
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/state.json");
        write_atomically(&path, b"one").expect("first");
        write_atomically(&path, b"two").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sub")).expect("dir").flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
