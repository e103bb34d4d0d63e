//! A cluster's health as a circuit breaker over the outcomes of the calls the
//! broker makes to it (snapshots, submits, status reads).
//!
//! - `healthy`: the last call succeeded;
//! - `degraded`: recent calls failed, fewer than `down_after` in a row; the
//!   cluster stays in placement (a submit failure alone takes it out until
//!   its next good snapshot);
//! - `down` (open): `down_after` failures in a row. The cluster leaves
//!   placement and the broker stops calling it, except for one probe (the
//!   snapshot) once `open_for` has passed (half-open). A good probe brings it
//!   back to healthy; a failed one keeps it down and doubles `open_for`, up
//!   to `max_open_for`.

use std::time::Duration;

use serde::Serialize;

/// The three health states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Calls succeed.
    #[default]
    Healthy,
    /// Some calls fail; still placed on.
    Degraded,
    /// Written off until a probe succeeds.
    Down,
}

impl HealthState {
    /// The state's name (API, CLI, metric value docs).
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Down => "down",
        }
    }

    /// The metric's value: 0 healthy, 1 degraded, 2 down.
    pub fn level(self) -> i64 {
        match self {
            HealthState::Healthy => 0,
            HealthState::Degraded => 1,
            HealthState::Down => 2,
        }
    }
}

/// When the breaker opens and how long it stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that take a cluster down.
    pub down_after: u32,
    /// How long a down cluster is left alone before the first probe.
    pub open_for: Duration,
    /// The longest wait between probes of a cluster that stays down.
    pub max_open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            down_after: 3,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(120),
        }
    }
}

/// One cluster's breaker.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Breaker {
    /// The state.
    pub state: HealthState,
    /// Failed calls in a row.
    pub consecutive_failures: u32,
    /// When it last went down, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_since_ms: Option<u64>,
    /// When the next probe may go, while down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_probe_ms: Option<u64>,
    /// The current wait between probes.
    #[serde(skip)]
    open_for: Duration,
    /// A probe is out (half-open): no other call goes until it answers.
    #[serde(skip)]
    probing: bool,
}

impl Breaker {
    /// Records a successful call: the cluster is healthy again.
    pub fn succeeded(&mut self) {
        self.state = HealthState::Healthy;
        self.consecutive_failures = 0;
        self.down_since_ms = None;
        self.next_probe_ms = None;
        self.open_for = Duration::ZERO;
        self.probing = false;
    }

    /// Records a failed call at `now_ms`.
    pub fn failed(&mut self, settings: &BreakerSettings, now_ms: u64) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.state == HealthState::Down {
            if self.probing {
                // The probe failed: wait longer before the next.
                self.probing = false;
                self.open_for = (self.open_for * 2).min(settings.max_open_for);
                self.next_probe_ms = Some(now_ms + self.open_for.as_millis() as u64);
            }
            return;
        }
        if self.consecutive_failures >= settings.down_after.max(1) {
            self.state = HealthState::Down;
            self.down_since_ms = Some(now_ms);
            self.open_for = settings.open_for;
            self.next_probe_ms = Some(now_ms + settings.open_for.as_millis() as u64);
            self.probing = false;
        } else {
            self.state = HealthState::Degraded;
        }
    }

    /// Whether a call may go to the cluster now. A down cluster gets one
    /// probe once its wait is over; the call that is allowed is the probe,
    /// and its outcome must be recorded.
    pub fn allows_call(&mut self, now_ms: u64) -> bool {
        if self.state != HealthState::Down {
            return true;
        }
        if self.probing || self.next_probe_ms.is_some_and(|at| now_ms < at) {
            return false;
        }
        self.probing = true;
        true
    }

    /// Whether a call would go now, without taking the probe.
    pub fn is_callable(&self, now_ms: u64) -> bool {
        self.state != HealthState::Down
            || (!self.probing && self.next_probe_ms.is_none_or(|at| now_ms >= at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            down_after: 3,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(25),
        }
    }

    #[test]
    fn failures_degrade_then_open_the_breaker() {
        let s = settings();
        let mut b = Breaker::default();
        assert_eq!(b.state, HealthState::Healthy);
        b.failed(&s, 1_000);
        assert_eq!(b.state, HealthState::Degraded);
        b.succeeded();
        assert_eq!((b.state, b.consecutive_failures), (HealthState::Healthy, 0));
        b.failed(&s, 1_000);
        b.failed(&s, 2_000);
        assert_eq!(b.state, HealthState::Degraded);
        assert!(b.allows_call(2_000), "degraded clusters are still called");
        b.failed(&s, 3_000);
        assert_eq!(b.state, HealthState::Down);
        assert_eq!(b.down_since_ms, Some(3_000));
        assert_eq!(b.next_probe_ms, Some(13_000));
    }

    #[test]
    fn a_down_cluster_gets_one_probe_after_its_wait() {
        let s = settings();
        let mut b = Breaker::default();
        for at in [0, 0, 0] {
            b.failed(&s, at);
        }
        assert!(!b.is_callable(9_999));
        assert!(!b.allows_call(9_999), "still open");
        assert!(b.is_callable(10_000));
        assert!(b.allows_call(10_000), "half-open: the probe");
        assert!(!b.allows_call(10_001), "one probe at a time");
        assert!(!b.is_callable(10_001));
        // The probe fails: the wait doubles.
        b.failed(&s, 11_000);
        assert_eq!(b.state, HealthState::Down);
        assert_eq!(b.next_probe_ms, Some(31_000));
        assert!(b.allows_call(31_000));
        // Fails again: capped at max_open_for.
        b.failed(&s, 31_000);
        assert_eq!(b.next_probe_ms, Some(56_000));
        assert!(b.allows_call(56_000));
        // A good probe closes the breaker.
        b.succeeded();
        assert_eq!(b.state, HealthState::Healthy);
        assert!(b.allows_call(56_001));
        assert_eq!((b.down_since_ms, b.next_probe_ms), (None, None));
        // And a fresh failure streak starts from scratch.
        b.failed(&s, 60_000);
        assert_eq!(b.state, HealthState::Degraded);
    }

    #[test]
    fn failures_of_other_calls_while_down_do_not_push_the_probe_back() {
        let s = settings();
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.failed(&s, 0);
        }
        b.failed(&s, 5_000); // a status read that raced the opening
        assert_eq!(b.next_probe_ms, Some(10_000));
    }
}
