//! Waiting with a deadline: the one polling loop of the test harnesses.
//!
//! * [`poll_until`]: check a condition every `every` until it holds or the
//!   deadline passes; tells which happened.
//! * [`wait_until`]: the same every 5 ms, panicking with a clear message
//!   when the deadline passes first.

use std::time::{Duration, Instant};

/// How often [`wait_until`] checks its condition.
pub const POLL: Duration = Duration::from_millis(5);

/// Check `cond` (at once, then every `every`) until it returns true —
/// `true` — or `deadline` has passed — `false`.
pub fn poll_until(deadline: Instant, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// As [`poll_until`] every 5 ms; panics with `timed out waiting for
/// <what>` when the deadline passes first.
pub fn wait_until(deadline: Instant, what: &str, cond: impl FnMut() -> bool) {
    let start = Instant::now();
    if !poll_until(deadline, POLL, cond) {
        panic!(
            "timed out waiting for {what} (gave up after {:?})",
            start.elapsed()
        );
    }
}

/// `Instant::now() + d`.
pub fn after(d: Duration) -> Instant {
    Instant::now() + d
}
