//! One condition wait: poll a check until it passes, or fail at a deadline
//! saying what was awaited and what was last seen. Tests wait on conditions,
//! never for fixed times.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every `every` until it gives `Ok`; at `deadline` panics
/// naming `what` and the last `Err` (what the check saw instead). A
/// failure points at the caller's line.
#[track_caller]
pub fn wait_until<T>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => expired(what, deadline, start, &seen),
        }
        std::thread::sleep(every);
    }
}

/// [`wait_until`] for async checks, polling every 100 ms; `None` means
/// not yet.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        expired(what, deadline, start, "");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Panics once `deadline` has passed since `start`.
#[track_caller]
fn expired(what: &str, deadline: Duration, start: Instant, seen: &str) {
    assert!(
        start.elapsed() < deadline,
        "timed out after {deadline:?} waiting for {what}{}{seen}",
        if seen.is_empty() { "" } else { "; " }
    );
}
