//! Files outside git that HAL keeps (`.git/hal/...`, caches, the secret store) and text it cuts to size: one way
//! each, used everywhere.

use std::io::Write;
use std::path::Path;

/// Who may read a file HAL writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    /// This user only (0600): secrets, the daemon's token and address.
    Owner,
    /// Whoever the user's umask lets read a new file (0644 less the umask; written by this user only, since a
    /// write replaces the file rather than writing into it): what other users of a shared repository or cache
    /// need to read (the allowed signers, caches, records of what was believed).
    Umask,
}

/// Write `bytes` to `path` whole or not at all: into a temporary file of its own in the same directory (created
/// when missing) with the permissions `readers` asks for, flushed to disk, renamed over `path`, and the directory
/// flushed so the rename itself survives a power cut. A reader never sees half a file, and two writers at once
/// (threads or processes) never tear each other's; the last rename wins.
pub fn write_atomically(path: &Path, bytes: &[u8], readers: Readers) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    if readers == Readers::Umask {
        use std::os::unix::fs::PermissionsExt as _;
        // open(2) takes the umask off, as for any new file.
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut temporary = builder.tempfile_in(dir)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|error| error.error)?;
    sync_dir(dir);
    Ok(())
}

/// Flush a directory's entries (the rename just made in it) to disk, where the system allows fsync of a directory
/// (Unix); a file system that refuses it (some network and FUSE ones) leaves the rename to its own schedule: the
/// file is written either way, so this is logged, never an error.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(error) = std::fs::File::open(dir).and_then(|dir| dir.sync_all()) {
        tracing::debug!(target: "hal_store", %error, dir = %dir.display(), "cannot flush a directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// The first line of `text` that is not blank (empty when there is none).
pub fn first_line(text: &str) -> &str {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default()
}

/// `text` as it may reach a terminal whoever wrote it (a model, a web page, a pushed commit): every control
/// character, and every character that turns the direction of text, made a space, and cut to `chars` characters.
/// It shows as what it says, never as escape codes or reordered words.
pub fn printable(text: &str, chars: usize) -> String {
    let turns =
        |c: char| matches!(c, '\u{061c}' | '\u{200e}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    text.chars().take(chars).map(|c| if c.is_control() || turns(c) { ' ' } else { c }).collect()
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
    fn a_first_line_skips_blank_ones_and_printable_text_has_no_codes() {
        assert_eq!(first_line("\n  \nhello\nworld"), "hello");
        assert_eq!(first_line(""), "");
        assert_eq!(printable("a\u{1b}[31mb\u{202e}c\td", 100), "a [31mb c d");
        assert_eq!(printable("héllo", 2), "hé");
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/state.json");
        write_atomically(&path, b"one", Readers::Owner).expect("first");
        write_atomically(&path, b"two", Readers::Owner).expect("second");
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

    /// Regression: every file HAL wrote was 0600, so another user of a shared repository could not read its
    /// allowed signers, and git run by them could not check a signature.
    #[cfg(unix)]
    #[test]
    fn a_file_for_anyone_gets_the_umasks_permissions_not_the_owners_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("allowed_signers");
        write_atomically(&path, b"x", Readers::Umask).expect("write");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        // The umask can only take bits away from 0644: 022 or 002 give 0644, 077 gives 0600.
        assert_eq!(mode & !0o644, 0, "never writable by others: {mode:o}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let umask = status.lines().find_map(|line| line.strip_prefix("Umask:")).map(str::trim);
        if let Some(umask) = umask.and_then(|umask| u32::from_str_radix(umask, 8).ok()) {
            assert_eq!(mode, 0o644 & !umask, "umask {umask:o}");
        }
        write_atomically(&path, b"secret", Readers::Owner).expect("write");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a file for its owner replacing one for anyone");
    }
}
