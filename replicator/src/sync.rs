//! The one way the replicator takes a std mutex outside storage: a
//! poisoned lock is taken anyway.
//!
//! Why: the site's state (its VMs, runs, protection objects, the receiver's
//! busy set) is shared by every task of the process. A panic in one task
//! while it held a lock must not turn every later request into a panic as
//! well; the next holder sees the state as the panicking one left it, and
//! each holder changes it in steps that leave it whole. Storage keeps its
//! own helper, with its own reason, in `storage::tracked_disk`.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking it even if a panicking holder poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
