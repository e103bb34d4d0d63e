//! The `retry` and `circuit_breaker` sections: how the broker retries each
//! class of failure, and when it writes a cluster off (docs/failures.md).
//!
//! ```yaml
//! retry:
//!   job_error: {retries: 0}
//!   node_lost: {retries: 3, backoff: {initial: 5s, factor: 2, max: 5m}, exclude_cluster: true}
//! circuit_breaker: {down_after: 3, open_for: 10s, max_open_for: 2m}
//! ```
//!
//! Classes not written keep their defaults ([`RetryPolicy::default`]).

use std::collections::BTreeMap;
use std::time::Duration;

use raybroker_core::FailureClass;
use serde::Deserialize;

use crate::clusters::BreakerSettings;
use crate::loops::retry::{ClassPolicy, RetryPolicy};

/// The `retry` section as written: failure class -> its policy.
#[derive(Deserialize, Default)]
#[serde(transparent)]
pub(super) struct RetrySection(BTreeMap<String, ClassEntry>);

/// One class's policy as written; what is absent keeps its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClassEntry {
    retries: Option<u32>,
    backoff: Option<BackoffEntry>,
    exclude_cluster: Option<bool>,
}

/// A backoff as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackoffEntry {
    initial: Option<String>,
    factor: Option<f64>,
    max: Option<String>,
}

/// The `circuit_breaker` section as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct BreakerSection {
    down_after: Option<u32>,
    open_for: Option<String>,
    max_open_for: Option<String>,
}

/// A duration field: absent keeps `default`; zero allowed when `zero_ok`.
fn duration(
    field: &str,
    text: &Option<String>,
    default: Duration,
    zero_ok: bool,
    bad: &mut dyn FnMut(&str, String),
) -> Duration {
    let Some(text) = text else {
        return default;
    };
    match humantime::parse_duration(text) {
        Ok(d) if zero_ok || !d.is_zero() => d,
        _ => {
            bad(
                field,
                format!("'{text}' is not a duration; write e.g. 0s, 5s or 2m"),
            );
            default
        }
    }
}

impl RetrySection {
    /// The retry policy: defaults overridden by what is written.
    pub(super) fn read(&self, bad: &mut dyn FnMut(&str, String)) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        for (name, entry) in &self.0 {
            let at = format!("retry.{name}");
            let class = FailureClass::ALL.into_iter().find(|c| c.as_str() == name);
            let Some(class) = class else {
                let names: Vec<&str> = FailureClass::ALL.iter().map(|c| c.as_str()).collect();
                bad(
                    &at,
                    format!("unknown failure class; use one of {}", names.join(", ")),
                );
                continue;
            };
            if class == FailureClass::Cancelled {
                bad(
                    &at,
                    "a cancelled job is never retried; remove this entry".into(),
                );
                continue;
            }
            let Some(slot) = policy.classes.get_mut(&class) else {
                continue;
            };
            entry.apply(&at, slot, bad);
        }
        policy
    }
}

impl ClassEntry {
    fn apply(&self, at: &str, slot: &mut ClassPolicy, bad: &mut dyn FnMut(&str, String)) {
        if let Some(retries) = self.retries {
            if retries > 100 {
                bad(&format!("{at}.retries"), "must be at most 100".into());
            } else {
                slot.retries = retries;
            }
        }
        if let Some(exclude) = self.exclude_cluster {
            slot.exclude_cluster = exclude;
        }
        let Some(backoff) = &self.backoff else {
            return;
        };
        let b = &mut slot.backoff;
        b.initial = duration(
            &format!("{at}.backoff.initial"),
            &backoff.initial,
            b.initial,
            true,
            bad,
        );
        b.max = duration(&format!("{at}.backoff.max"), &backoff.max, b.max, true, bad);
        if let Some(factor) = backoff.factor {
            if !(1.0..=100.0).contains(&factor) {
                bad(
                    &format!("{at}.backoff.factor"),
                    "must be between 1 and 100".into(),
                );
            } else {
                b.factor = factor;
            }
        }
        if b.max < b.initial {
            bad(
                &format!("{at}.backoff.max"),
                "must be at least backoff.initial".into(),
            );
        }
    }
}

impl BreakerSection {
    /// The breaker settings: defaults overridden by what is written.
    pub(super) fn read(&self, bad: &mut dyn FnMut(&str, String)) -> BreakerSettings {
        let defaults = BreakerSettings::default();
        let down_after = match self.down_after {
            Some(0) => {
                bad("circuit_breaker.down_after", "must be at least 1".into());
                defaults.down_after
            }
            Some(n) => n,
            None => defaults.down_after,
        };
        let open_for = duration(
            "circuit_breaker.open_for",
            &self.open_for,
            defaults.open_for,
            false,
            bad,
        );
        let max_open_for = duration(
            "circuit_breaker.max_open_for",
            &self.max_open_for,
            defaults.max_open_for.max(open_for),
            false,
            bad,
        );
        if max_open_for < open_for {
            bad(
                "circuit_breaker.max_open_for",
                "must be at least circuit_breaker.open_for".into(),
            );
        }
        BreakerSettings {
            down_after,
            open_for,
            max_open_for: max_open_for.max(open_for),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> (RetryPolicy, BreakerSettings, Vec<String>) {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            retry: RetrySection,
            #[serde(default)]
            circuit_breaker: BreakerSection,
        }
        let doc: Doc = serde_norway::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        let mut bad = |field: &str, _m: String| errors.push(field.to_string());
        let policy = doc.retry.read(&mut bad);
        let breaker = doc.circuit_breaker.read(&mut bad);
        (policy, breaker, errors)
    }

    #[test]
    fn written_classes_override_the_defaults() {
        let (policy, breaker, errors) = read(
            "retry:\n  job_error: {retries: 2, backoff: {initial: 1s, factor: 3, max: 9s}}\n  \
             node_lost: {exclude_cluster: false}\ncircuit_breaker: {down_after: 5, open_for: 3s}\n",
        );
        assert_eq!(errors, Vec::<String>::new());
        let job_error = policy.classes[&FailureClass::JobError];
        assert_eq!(job_error.retries, 2);
        assert_eq!(job_error.backoff.initial, Duration::from_secs(1));
        assert_eq!(job_error.backoff.delay(3), Duration::from_secs(9));
        assert!(!policy.classes[&FailureClass::NodeLost].exclude_cluster);
        assert_eq!(policy.classes[&FailureClass::NodeLost].retries, 3, "kept");
        assert_eq!(breaker.down_after, 5);
        assert_eq!(breaker.open_for, Duration::from_secs(3));
    }

    #[test]
    fn bad_entries_name_their_field() {
        let (_, _, errors) = read(
            "retry:\n  meteor: {retries: 1}\n  cancelled: {retries: 1}\n  \
             oom: {}\n  preempted: {retries: 500, backoff: {initial: soon, factor: 0.5}}\n\
             circuit_breaker: {down_after: 0, open_for: 0s}\n",
        );
        assert_eq!(
            errors,
            [
                "retry.cancelled",
                "retry.meteor",
                "retry.oom",
                "retry.preempted.retries",
                "retry.preempted.backoff.initial",
                "retry.preempted.backoff.factor",
                "circuit_breaker.down_after",
                "circuit_breaker.open_for",
            ]
        );
    }
}
