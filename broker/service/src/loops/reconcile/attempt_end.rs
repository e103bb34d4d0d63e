//! How an attempt ends: lost once the grace runs out, cancelled, failed (then
//! retried or given up as the retry policy decides), or moved to a new state.
//! Every change goes through [`Reconciler::end`], which the queue fences: a
//! superseded attempt cannot move the job.

use raybroker_core::{FailureClass, Job, JobState};
use raybroker_queue::{AttemptEnd, QueueError};

use super::Reconciler;
use crate::loops::retry::{classify, Decision, Outcome};

impl Reconciler {
    /// Counts an unknown or unreachable attempt as failed once the grace
    /// runs out.
    pub(super) async fn maybe_lost(
        &self,
        job: &Job,
        cluster: &str,
        outcome: Outcome<'_>,
        why: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let since = *self
            .missing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((job.id.clone(), job.attempt))
            .or_insert(now_ms);
        if now_ms.saturating_sub(since) < self.settings.lost_grace.as_millis() as u64 {
            return Ok(());
        }
        if job.cancel_requested {
            return self
                .cancelled(job, &format!("cancelled; {why}"), None, now_ms)
                .await;
        }
        let detail = format!("{why} for {}s", (now_ms - since) / 1000);
        self.attempt_failed(job, cluster, outcome, None, &detail, now_ms)
            .await
    }

    /// The job's cancel took effect.
    pub(super) async fn cancelled(
        &self,
        job: &Job,
        reason: &str,
        exit: Option<i32>,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        // The final reason also says why the cancel was asked for (a user,
        // a group cancel, a sweep's early stopping), not only where it ended.
        let asked = job
            .history
            .iter()
            .rev()
            .find_map(|t| t.reason.strip_prefix("cancel requested: "));
        let reason = match asked {
            Some(why) => format!("{reason}: {why}"),
            None => reason.to_string(),
        };
        self.end(
            job,
            JobState::Cancelled,
            &reason,
            exit,
            Some(FailureClass::Cancelled),
            None,
            now_ms,
        )
        .await
    }

    /// The current attempt ended badly: classify it, then retry it or end
    /// the job as the retry policy says.
    pub(super) async fn attempt_failed(
        &self,
        job: &Job,
        cluster: &str,
        outcome: Outcome<'_>,
        exit: Option<i32>,
        detail: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        self.missing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(job.id.clone(), job.attempt));
        let class = classify(&outcome);
        let metrics = self.clusters.metrics();
        metrics.failure(class, cluster);
        let n = job.attempt;
        match self.settings.retry.decide(job, class, cluster, now_ms) {
            Decision::Retry {
                used,
                allowed,
                failover,
            } => {
                let mut reason = format!(
                    "attempt {n} failed ({class}): {detail}; retrying (retry {used} of {allowed}"
                );
                if !failover.excluded_clusters.is_empty() {
                    reason.push_str(&format!(
                        ", avoiding {}",
                        failover.excluded_clusters.join(", ")
                    ));
                }
                let wait_ms = failover
                    .not_before_ms
                    .map_or(0, |at| at.saturating_sub(now_ms));
                if wait_ms > 0 {
                    reason.push_str(&format!(", after {}s", wait_ms.div_ceil(1000)));
                }
                reason.push(')');
                metrics.retry(class);
                self.end(
                    job,
                    JobState::Queued,
                    &reason,
                    exit,
                    Some(class),
                    Some(&failover),
                    now_ms,
                )
                .await
            }
            Decision::GiveUp { allowed } => {
                let why_not = if allowed == 0 {
                    format!("{class} is not retried")
                } else {
                    format!("no retries left ({allowed} used)")
                };
                let (to, reason) = if class == FailureClass::Cancelled {
                    (JobState::Cancelled, detail.to_string())
                } else {
                    (
                        JobState::Failed,
                        format!("attempt {n} failed ({class}): {detail}; {why_not}"),
                    )
                };
                self.end(job, to, &reason, exit, Some(class), None, now_ms)
                    .await
            }
        }
    }

    /// Moves the job to `to` with no failure (it runs, or it succeeded).
    pub(super) async fn update(
        &self,
        job: &Job,
        to: JobState,
        reason: &str,
        exit: Option<i32>,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        self.end(job, to, reason, exit, None, None, now_ms).await
    }

    /// Moves the current attempt; refused by the queue when the attempt was
    /// superseded meanwhile (fencing).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn end(
        &self,
        job: &Job,
        to: JobState,
        reason: &str,
        exit: Option<i32>,
        failure: Option<FailureClass>,
        failover: Option<&raybroker_core::Failover>,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let change = AttemptEnd {
            to,
            reason,
            exit_code: exit,
            failure,
            failover,
        };
        let ended = self
            .queue
            .end_attempt(&job.id, job.attempt, &change, now_ms)
            .await?;
        tracing::info!(job = %job.id, attempt = job.attempt, from = %job.state, to = %ended, failure = failure.map(FailureClass::as_str), reason, "job changed on cluster");
        Ok(())
    }
}
