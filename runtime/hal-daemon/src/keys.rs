//! One holder per idempotency key at a time: a command with a key holds it from its look-up to its write, so
//! two tries of one key never both write, while commands with other keys (and without one) go on meanwhile (a
//! keyed replay may run for minutes).

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, PoisonError};

/// The keys held now.
#[derive(Default)]
pub(crate) struct KeyLocks {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

/// A key held until dropped.
pub(crate) struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
}

impl KeyLocks {
    /// Hold `key`, waiting while another command holds it.
    pub(crate) fn hold(&self, key: &str) -> KeyGuard<'_> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        while held.contains(key) {
            held = self.released.wait(held).unwrap_or_else(PoisonError::into_inner);
        }
        held.insert(key.to_owned());
        KeyGuard { locks: self, key: key.to_owned() }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.locks.held.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
        self.locks.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_key_waits_for_its_holder_and_other_keys_do_not() {
        let locks = Arc::new(KeyLocks::default());
        let first = locks.hold("a");
        let other = locks.hold("b");
        drop(other);
        let taken = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (locks, taken) = (locks.clone(), taken.clone());
            std::thread::spawn(move || {
                let _held = locks.hold("a");
                taken.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!taken.load(Ordering::SeqCst), "the second holder of `a` waits");
        drop(first);
        waiter.join().expect("the waiter ends");
        assert!(taken.load(Ordering::SeqCst));
    }
}
