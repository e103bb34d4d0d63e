//! Where the simulated cluster's time comes from.
//!
//! The cluster reads the clock on every call and plays everything that
//! happened since (jobs ending, pending jobs starting), so it needs no task
//! of its own: with [`SystemClock`] it keeps real time, with [`ManualClock`]
//! a test or a trace replay moves time forward exactly when it chooses.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch; never goes backwards.
    fn now_ms(&self) -> u64;
}

/// The machine's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A virtual clock that stands still until told to move. Share it
/// (`Arc<ManualClock>`) between the simulated clusters and whatever drives
/// the broker's loops, so both see the same time.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: AtomicU64::new(start_ms),
        }
    }

    /// Moves time forward by `by`; returns the new time.
    pub fn advance(&self, by: Duration) -> u64 {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms
            .fetch_add(by, Ordering::SeqCst)
            .saturating_add(by)
    }

    /// Moves time forward to `at_ms`; a time in the past leaves the clock
    /// where it is (time never runs backwards). Returns the new time.
    pub fn advance_to(&self, at_ms: u64) -> u64 {
        self.now_ms.fetch_max(at_ms, Ordering::SeqCst).max(at_ms)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(clock.advance(Duration::from_secs(2)), 3_000);
        assert_eq!(clock.advance_to(2_000), 3_000);
        assert_eq!(clock.now_ms(), 3_000);
        assert_eq!(clock.advance_to(10_000), 10_000);
        assert_eq!(clock.now_ms(), 10_000);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
