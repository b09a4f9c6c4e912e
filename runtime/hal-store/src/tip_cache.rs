//! A cache of what `hal thread list` shows for each thread tip.
//!
//! Listing reads one commit per thread; with tens of thousands of threads that is most of the time it takes.
//! What a tip shows (step count, status, title, time) is a fact about that commit and never changes, so it can
//! be cached by commit id with no invalidation: a thread that moved simply has a new tip that is not cached yet.
//! The file lives at `.git/hal/cache/thread-tips`, is rewritten atomically (temporary file + rename) after a
//! listing that found new tips, holds only the current tips, and may be deleted at any time.
//!
//! Whether `main` reaches a tip depends on `main` too: the header records the commit of `main` the `merged` flags
//! were computed at, and [`crate::merged`] brings them up to date when `main` moves.
//!
//! Format: a header line (`hal thread-tips v3 <main>`, `-` for no `main`), then one line per tip:
//! `<commit>\t<steps>\t<time>\t<status>\t<merged>\t<purpose>\t<title>` (`merged` is `1` or `0`, `purpose` a
//! [`ThreadPurpose`] name or `-`). Trailer values never contain tabs or newlines (see [`crate::step`]), so the
//! title can safely come last. A file of an older version reads as empty.

use std::collections::HashMap;
use std::path::PathBuf;

use gix::ObjectId;

use crate::step::{ThreadPurpose, ThreadStatus};

const HEADER: &str = "hal thread-tips v3";

/// What a thread tip shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TipFacts {
    pub(crate) steps: u64,
    pub(crate) time: i64,
    pub(crate) status: ThreadStatus,
    pub(crate) title: String,
    /// What the thread was made for, when it is not a person's work.
    pub(crate) purpose: Option<ThreadPurpose>,
    /// Whether the cache's `main` reaches the tip.
    pub(crate) merged: bool,
}

/// The loaded cache.
pub(crate) struct TipCache {
    path: PathBuf,
    /// The commit of `main` the `merged` flags were computed at.
    main: Option<ObjectId>,
    entries: HashMap<ObjectId, TipFacts>,
}

impl TipCache {
    /// Load the cache of the repository whose common git dir is `common_dir`; an absent or unreadable file
    /// gives an empty cache.
    pub(crate) fn load(common_dir: &std::path::Path) -> TipCache {
        let path = common_dir.join("hal/cache/thread-tips");
        let (main, entries) = std::fs::read_to_string(&path).ok().map(|text| parse(&text)).unwrap_or_default();
        TipCache { path, main, entries }
    }

    /// The commit of `main` the cached `merged` flags hold for.
    pub(crate) fn main(&self) -> Option<ObjectId> {
        self.main
    }

    /// The facts of `tip`, if cached.
    pub(crate) fn get(&self, tip: &ObjectId) -> Option<&TipFacts> {
        self.entries.get(tip)
    }

    /// How many tips are cached.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Replace the file with exactly `current` (the tips of all threads now). Failing to write a cache is not
    /// an error worth failing a listing for; it is logged.
    pub(crate) fn store(&self, main: Option<ObjectId>, current: &[(ObjectId, TipFacts)]) {
        let mut text = String::with_capacity(64 * (current.len() + 1));
        let main_text = main.map_or_else(|| "-".to_owned(), |id| id.to_string());
        text.push_str(&format!("{HEADER} {main_text}\n"));
        for (tip, facts) in current {
            let merged = u8::from(facts.merged);
            let (steps, time, status, title) = (facts.steps, facts.time, &facts.status, &facts.title);
            let purpose = facts.purpose.map_or("-", ThreadPurpose::as_str);
            text.push_str(&format!("{tip}\t{steps}\t{time}\t{status}\t{merged}\t{purpose}\t{title}\n"));
        }
        if let Err(error) = self.write_atomically(text.as_bytes()) {
            tracing::debug!(target: "hal_store::cache", path = %self.path.display(), %error, "could not write the thread cache");
        }
    }

    fn write_atomically(&self, bytes: &[u8]) -> std::io::Result<()> {
        crate::files::write_atomically(&self.path, bytes, crate::files::Readers::Umask)
    }
}

fn parse(text: &str) -> (Option<ObjectId>, HashMap<ObjectId, TipFacts>) {
    let mut lines = text.lines();
    let Some(main) = lines.next().and_then(|header| header.strip_prefix(HEADER)?.strip_prefix(' ')) else {
        return (None, HashMap::new());
    };
    let main = match main {
        "-" => None,
        hex => match ObjectId::from_hex(hex.as_bytes()) {
            Ok(id) => Some(id),
            Err(_) => return (None, HashMap::new()),
        },
    };
    let entries = lines
        .filter_map(|line| {
            let mut fields = line.splitn(7, '\t');
            let tip = ObjectId::from_hex(fields.next()?.as_bytes()).ok()?;
            let steps = fields.next()?.parse().ok()?;
            let time = fields.next()?.parse().ok()?;
            let status = ThreadStatus::parse(fields.next()?);
            let merged = fields.next()? == "1";
            let purpose = ThreadPurpose::parse(fields.next()?);
            let title = fields.next()?.to_owned();
            Some((tip, TipFacts { steps, time, status, title, purpose, merged }))
        })
        .collect();
    (main, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tip = ObjectId::from_hex(b"0123456789abcdef0123456789abcdef01234567").expect("hex");
        let facts = TipFacts {
            steps: 7,
            time: 1_800_000_000,
            status: ThreadStatus::Merged,
            title: "a: b c".into(),
            purpose: Some(ThreadPurpose::Test),
            merged: true,
        };
        TipCache::load(dir.path()).store(Some(tip), &[(tip, facts.clone())]);
        let loaded = TipCache::load(dir.path());
        assert_eq!((loaded.get(&tip), loaded.main()), (Some(&facts), Some(tip)));
        TipCache::load(dir.path()).store(None, &[(tip, facts.clone())]);
        assert_eq!(TipCache::load(dir.path()).main(), None);

        std::fs::write(dir.path().join("hal/cache/thread-tips"), "something else\nzzz\n").expect("write");
        assert!(TipCache::load(dir.path()).get(&tip).is_none());
    }
}
