//! The home repo shared by the runs of one process, behind a lock.

use std::sync::{Arc, Mutex, PoisonError};

use hal_store::Home;

/// The home repo, shared by the runs of one process. Each store call holds the lock only for that call, never
/// across a model or tool call, so concurrent runs interleave their steps freely.
#[derive(Clone)]
pub struct SharedHome(Arc<Mutex<Home>>);

impl SharedHome {
    /// Share `home`.
    pub fn new(home: Home) -> SharedHome {
        SharedHome(Arc::new(Mutex::new(home)))
    }

    /// A handle of its own on the home repo, for long work that must not hold the lock (its object cache is its
    /// own; refs and objects are the same repository's).
    pub fn handle(&self) -> Home {
        self.with(Home::clone)
    }

    /// Run `f` with the home repo.
    pub fn with<R>(&self, f: impl FnOnce(&Home) -> R) -> R {
        let home = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&home)
    }
}

impl std::fmt::Debug for SharedHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedHome")
    }
}
