//! Named crash points for crash-consistency tests.
//!
//! A test starts a process with `FERRY_CRASH_AT=<name>[:<n>]`; the n-th time
//! (default: first) that process reaches `crash_point("<name>")` it aborts on
//! the spot, as a power cut would stop it: no destructors, no flushing.
//! Without the variable a crash point costs one relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Armed {
    name: String,
    remaining: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("FERRY_CRASH_AT").ok()?;
            let (name, n) = match spec.split_once(':') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                remaining: AtomicU64::new(n.max(1)),
            })
        })
        .as_ref()
}

/// Aborts the process here if the test armed this point.
pub fn crash_point(name: &str) {
    if let Some(armed) = armed()
        && armed.name == name
        && armed.remaining.fetch_sub(1, Ordering::Relaxed) == 1
    {
        eprintln!("ferry: crash point {name} reached, aborting");
        std::process::abort();
    }
}
