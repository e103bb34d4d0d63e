//! Time limits: an attempt that runs past its job's `time_limit` is stopped
//! and ends with class `time_limit`.

use raybroker_adapter::RemoteStatus;
use raybroker_core::{Attempt, Job};
use raybroker_queue::QueueError;

use super::Reconciler;
use crate::loops::retry::Outcome;

impl Reconciler {
    /// Stops an attempt that ran out of time and ends it with class
    /// `time_limit` (retried only when the job's policy says so). The stop
    /// is best effort: garbage collection stops the remote job if it outlives
    /// this call, as it no longer belongs to a current attempt.
    pub(super) async fn time_limit_exceeded(
        &self,
        job: &Job,
        attempt: &Attempt,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let cluster = attempt.cluster.as_str();
        let sid = attempt.submission_id.clone();
        let stopped = self
            .clusters
            .call(cluster, "cancel", now_ms, |a| async move {
                a.cancel(&sid).await
            })
            .await;
        let limit = job
            .spec
            .time_limit
            .map(|d| humantime::format_duration(d).to_string())
            .unwrap_or_default();
        let mut detail = format!("timed out: ran past its time limit of {limit} on {cluster}");
        if let Err(err) = stopped {
            detail.push_str(&format!(" (stop not confirmed yet: {err})"));
        }
        self.attempt_failed(job, cluster, Outcome::TimeLimit, None, &detail, now_ms)
            .await
    }
}

/// True when the attempt has run longer than the job's time limit: counted
/// from the cluster's start time when it reports one, else from the submit.
pub(super) fn over_time_limit(
    job: &Job,
    attempt: &Attempt,
    status: &RemoteStatus,
    now_ms: u64,
) -> bool {
    let Some(limit) = job.spec.time_limit else {
        return false;
    };
    let since = status
        .started_at_ms
        .or(attempt.submitted_at_ms)
        .unwrap_or(attempt.created_at_ms);
    now_ms.saturating_sub(since) > limit.as_millis() as u64
}
