//! The lock on a guard session's state, shared by every adapter.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the state even if another thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic mid-decision elsewhere; the state is still the last
    // consistent one written, and refusing all further traffic would not be safer than this.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
