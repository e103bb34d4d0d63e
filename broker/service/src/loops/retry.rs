//! What the broker does when an attempt ends badly: one function names the
//! failure's class ([`classify`]), one policy says per class how often to
//! retry, how long to wait first and whether to leave the cluster
//! ([`RetryPolicy::decide`]). Both are pure, so the reconcile loop only
//! gathers facts and carries out the decision.

use std::collections::BTreeMap;
use std::time::Duration;

use raybroker_adapter::{RemoteState, RemoteStatus};
use raybroker_core::{Failover, FailureClass, Job};

/// What the broker saw of an attempt that did not succeed.
#[derive(Clone, Debug)]
pub enum Outcome<'a> {
    /// The cluster reported the attempt failed or stopped.
    Remote(&'a RemoteStatus),
    /// The cluster did not answer for longer than the lost grace.
    Unreachable,
    /// The cluster answered but no longer knows the attempt, for longer
    /// than the lost grace (a restarted head, a wiped node).
    Unknown,
    /// The attempt's cluster was removed from the configuration.
    ClusterRemoved,
    /// The attempt ran past the job's `time_limit`.
    TimeLimit,
    /// A user cancelled the job.
    Cancelled,
}

/// The class of a failed attempt. The adapter's own class comes first (it
/// knows its backend's words for OOM, preemption, lost nodes); then what the
/// broker knows: a non-zero exit is the job's error, a job stopped without a
/// cancel or failed without an exit code lost its node, and a cluster that
/// cannot be asked, or forgot the attempt, is unreachable.
pub fn classify(outcome: &Outcome<'_>) -> FailureClass {
    match outcome {
        Outcome::Cancelled => FailureClass::Cancelled,
        Outcome::TimeLimit => FailureClass::TimeLimit,
        Outcome::Unreachable | Outcome::Unknown | Outcome::ClusterRemoved => {
            FailureClass::ClusterUnreachable
        }
        Outcome::Remote(status) => match (status.failure, status.exit_code) {
            (Some(class), _) => class,
            (None, Some(code)) if code != 0 && status.state == RemoteState::Failed => {
                FailureClass::JobError
            }
            (None, _) => FailureClass::NodeLost,
        },
    }
}

/// How long to wait before retry `n` (1 for the first retry): `initial`
/// times `factor^(n-1)`, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The wait before the first retry.
    pub initial: Duration,
    /// Each further retry waits this many times longer (>= 1).
    pub factor: f64,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            return self.max;
        }
        Duration::from_secs_f64(secs)
    }
}

/// The policy of one failure class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassPolicy {
    /// Retries of an attempt failed this way (a job may override it).
    pub retries: u32,
    /// The wait before each retry.
    pub backoff: Backoff,
    /// The next attempt avoids the cluster this one failed on, while another
    /// cluster (of any tier) can run the job.
    pub exclude_cluster: bool,
}

/// The retry policy of every failure class.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// By class; a class not listed is never retried.
    pub classes: BTreeMap<FailureClass, ClassPolicy>,
}

impl Default for RetryPolicy {
    /// The job's own errors and time limits are not retried (a crashing
    /// script crashes again; a job that ran out of time would again);
    /// failures of the infrastructure are retried three times, elsewhere.
    fn default() -> Self {
        let infra = ClassPolicy {
            retries: 3,
            backoff: Backoff {
                initial: Duration::from_secs(5),
                factor: 2.0,
                max: Duration::from_secs(300),
            },
            exclude_cluster: true,
        };
        let own = ClassPolicy {
            retries: 0,
            backoff: Backoff {
                initial: Duration::from_secs(10),
                factor: 2.0,
                max: Duration::from_secs(600),
            },
            exclude_cluster: false,
        };
        let classes = FailureClass::ALL
            .into_iter()
            .filter(|c| *c != FailureClass::Cancelled)
            .map(|c| (c, if c.is_infrastructure() { infra } else { own }))
            .collect();
        RetryPolicy { classes }
    }
}

/// What to do with a job whose attempt failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Queue a new attempt, held back and steered by `failover`.
    Retry {
        /// Retries used, this one included.
        used: u32,
        /// Retries allowed for the class.
        allowed: u32,
        /// Where and when the next attempt may go.
        failover: Failover,
    },
    /// End the job failed (or cancelled, for [`FailureClass::Cancelled`]).
    GiveUp {
        /// Retries allowed for the class.
        allowed: u32,
    },
}

impl RetryPolicy {
    /// The same policy with no waits, for tests that count rounds.
    pub fn without_backoff(mut self) -> RetryPolicy {
        for policy in self.classes.values_mut() {
            policy.backoff.initial = Duration::ZERO;
            policy.backoff.max = Duration::ZERO;
        }
        self
    }

    /// Retries the job may have for `class`: its spec's `retry` entry, else
    /// its `max_retries` for infrastructure failures (when set), else the
    /// broker's default. A cancelled job is never retried.
    pub fn retries_for(&self, job: &Job, class: FailureClass) -> u32 {
        if class == FailureClass::Cancelled {
            return 0;
        }
        if let Some(retries) = job.spec.retry.get(&class) {
            return *retries;
        }
        if class.is_infrastructure() && job.spec.max_retries > 0 {
            return job.spec.max_retries;
        }
        self.classes.get(&class).map_or(0, |p| p.retries)
    }

    /// Retry or give up after the job's current attempt failed with `class`
    /// on `cluster`, at `now_ms`. Retries count every earlier retry of the
    /// job, whatever its class, so a job never runs more than
    /// `1 + retries_for(class)` attempts when it fails this way.
    pub fn decide(&self, job: &Job, class: FailureClass, cluster: &str, now_ms: u64) -> Decision {
        let allowed = self.retries_for(job, class);
        let used = job.attempt; // attempt n has used n - 1 retries
        if used > allowed || job.cancel_requested {
            return Decision::GiveUp { allowed };
        }
        let Some(policy) = self.classes.get(&class) else {
            // A retry the job asked for of a class the broker does not list.
            return self.retry(job, used, allowed, cluster, false, Duration::ZERO, now_ms);
        };
        let wait = policy.backoff.delay(used);
        self.retry(
            job,
            used,
            allowed,
            cluster,
            policy.exclude_cluster,
            wait,
            now_ms,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn retry(
        &self,
        job: &Job,
        used: u32,
        allowed: u32,
        cluster: &str,
        exclude: bool,
        wait: Duration,
        now_ms: u64,
    ) -> Decision {
        let mut excluded_clusters = job.failover.excluded_clusters.clone();
        if exclude && !excluded_clusters.iter().any(|c| c == cluster) {
            excluded_clusters.push(cluster.to_string());
        }
        Decision::Retry {
            used,
            allowed,
            failover: Failover {
                excluded_clusters,
                not_before_ms: Some(now_ms + wait.as_millis() as u64),
            },
        }
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
