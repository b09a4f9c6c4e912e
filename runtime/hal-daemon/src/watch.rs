//! Noticing ref changes: inotify (through `notify`) on `.git/refs` and `.git/packed-refs` wakes the daemon's
//! scan at once; a timer scans anyway, so a missed or unsupported event costs at most one poll interval.

use std::path::Path;
use std::sync::mpsc::Sender;

use notify::{RecursiveMode, Watcher};

/// Start watching the refs of the git directory `git_dir`; every change sends on `wake`. `None` when the
/// platform's watcher cannot start (the daemon then relies on polling).
pub(crate) fn watch_refs(git_dir: &Path, wake: Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = event.paths.iter().any(|path| {
            let text = path.to_string_lossy();
            text.contains("/refs/") || text.ends_with("packed-refs") || text.ends_with("HEAD")
        });
        if relevant {
            let _ = wake.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(target: "hal_daemon", %error, "cannot watch refs; polling instead");
            return None;
        }
    };
    let refs = git_dir.join("refs");
    let result = watcher
        .watch(&refs, RecursiveMode::Recursive)
        .and_then(|()| watcher.watch(git_dir, RecursiveMode::NonRecursive));
    match result {
        Ok(()) => Some(watcher),
        Err(error) => {
            tracing::warn!(target: "hal_daemon", %error, "cannot watch refs; polling instead");
            None
        }
    }
}
