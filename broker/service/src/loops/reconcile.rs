//! The reconcile loop: brings the broker's view of every job on a cluster in
//! line with the cluster's, keeps the job's log, carries cancels to clusters,
//! enforces time limits, and garbage-collects what this broker left on a
//! cluster that no current attempt owns.
//!
//! An attempt that ends badly is classified ([`super::retry::classify`]) and
//! the retry policy decides: a new attempt (after a backoff, avoiding the
//! cluster) or the end of the job. Only the current attempt moves the job
//! (the queue refuses a superseded one), and garbage collection stops the
//! remote jobs of superseded attempts when their cluster comes back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use raybroker_adapter::{RemoteState, RemoteStatus};
use raybroker_core::{Attempt, FailureClass, Job, JobId, JobState};
use raybroker_queue::{AttemptEnd, JobQueue, QueueError};
use tracing::Instrument as _;

use super::retry::{classify, Decision, Outcome, RetryPolicy};
use crate::clusters::ClusterRegistry;

/// How the reconcile loop behaves.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// Pause between rounds.
    pub tick: Duration,
    /// How long a cluster may not know a job, or not answer, before the
    /// attempt counts as lost.
    pub lost_grace: Duration,
    /// Pause between garbage collections of orphaned remote jobs.
    pub gc_every: Duration,
    /// Jobs reconciled at once.
    pub concurrency: usize,
    /// Retries, backoff and failover per failure class.
    pub retry: RetryPolicy,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            tick: Duration::from_millis(500),
            lost_grace: Duration::from_secs(30),
            gc_every: Duration::from_secs(15),
            concurrency: 16,
            retry: RetryPolicy::default(),
        }
    }
}

/// The reconcile loop's state.
pub struct Reconciler {
    queue: JobQueue,
    clusters: Arc<ClusterRegistry>,
    settings: ReconcileSettings,
    /// Since when (ms) an attempt has been unknown to or unreachable on its
    /// cluster; in memory only, so a restart merely restarts the grace period.
    missing_since: Mutex<HashMap<(JobId, u32), u64>>,
}

impl Reconciler {
    /// A reconciler over the queue and clusters.
    pub fn new(
        queue: JobQueue,
        clusters: Arc<ClusterRegistry>,
        settings: ReconcileSettings,
    ) -> Reconciler {
        Reconciler {
            queue,
            clusters,
            settings,
            missing_since: Mutex::new(HashMap::new()),
        }
    }

    /// Runs rounds until `shutdown` turns true, and garbage collection
    /// beside them.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let this = Arc::new(self);
        // A collection can take seconds (Ray deletes a finished job only a
        // few seconds after its end, and cleanup waits for that); in a task
        // of its own it does not hold back the rounds that follow jobs.
        let collector = tokio::spawn(
            this.clone()
                .collect_garbage_every(shutdown.clone())
                .in_current_span(),
        );
        loop {
            if let Err(err) = this.round(super::now_ms()).await {
                tracing::warn!(error = %err, "reconcile round failed");
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(this.settings.tick) => {}
            }
        }
        let _ = collector.await;
    }

    /// Collects garbage every `gc_every` until `shutdown` turns true. The
    /// first collection comes one `gc_every` after start, not at start: a
    /// broker restarted again and again (a crash loop) would otherwise list
    /// and clean every cluster on each start, whatever `gc_every` says. A
    /// collection cut short by shutdown is harmless: every step is idempotent.
    async fn collect_garbage_every(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(self.settings.gc_every) => {}
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                result = self.collect_garbage() => {
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "garbage collection failed");
                    }
                }
            }
        }
    }

    /// One pass over every job on a cluster, then over pending cancels.
    pub async fn round(&self, now_ms: u64) -> Result<(), QueueError> {
        let mut ids = self.queue.ids_in_state(JobState::Submitted, 10_000).await?;
        ids.extend(self.queue.ids_in_state(JobState::Running, 10_000).await?);
        ids.extend(self.queue.pending_cancels().await?);
        ids.sort();
        ids.dedup();
        let results: Vec<Result<(), QueueError>> = stream::iter(ids)
            .map(|id| async move { self.reconcile_one(&id, now_ms).await })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for result in results {
            match result {
                Ok(()) | Err(QueueError::Conflict { .. }) | Err(QueueError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    async fn reconcile_one(&self, id: &JobId, now_ms: u64) -> Result<(), QueueError> {
        let Some(job) = self.queue.get(id).await? else {
            return Ok(());
        };
        if !job.state.is_on_cluster() {
            return Ok(()); // a pending cancel of a dispatching job: the dispatcher handles it
        }
        let Some(attempt) = job
            .attempts
            .last()
            .filter(|a| a.number == job.attempt)
            .cloned()
        else {
            return Ok(());
        };
        let cluster = attempt.cluster.as_str();
        let n = attempt.number;
        if self.clusters.adapter(cluster).is_none() {
            let detail = format!("cluster {cluster} is no longer configured");
            return self
                .attempt_failed(
                    &job,
                    cluster,
                    Outcome::ClusterRemoved,
                    None,
                    &detail,
                    now_ms,
                )
                .await;
        }
        let sid = attempt.submission_id.clone();
        if job.cancel_requested {
            // Best effort each round until the cluster reports the job stopped.
            let _ = self
                .clusters
                .call(cluster, "cancel", now_ms, |a| async move {
                    a.cancel(&sid).await
                })
                .await;
        }
        let sid = attempt.submission_id.clone();
        let status = match self
            .clusters
            .call(cluster, "status", now_ms, |a| async move {
                a.status(&sid).await
            })
            .await
        {
            Ok(status) => status,
            Err(why) => {
                let detail = format!("{cluster} unreachable: {why}");
                return self
                    .maybe_lost(&job, cluster, Outcome::Unreachable, &detail, now_ms)
                    .await;
            }
        };
        if status.state != RemoteState::NotFound {
            self.missing_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(job.id.clone(), job.attempt));
        }
        crate::telemetry::keep_remote_times(&self.queue, &job.id, n, &status).await?;
        if matches!(status.state, RemoteState::Running) || status.state.is_final() {
            self.keep_logs(&job, cluster, &attempt.submission_id, now_ms)
                .await?;
        }
        match status.state {
            RemoteState::Pending if job.cancel_requested => {
                // Ray cannot stop a job that waits for resources; the broker's
                // job ends now and garbage collection stops the remote one if
                // it ever starts.
                let detail = format!("cancelled while pending on {cluster}");
                self.cancelled(&job, &detail, None, now_ms).await
            }
            RemoteState::Running
                if !job.cancel_requested && over_time_limit(&job, &attempt, &status, now_ms) =>
            {
                self.time_limit_exceeded(&job, &attempt, now_ms).await
            }
            RemoteState::Pending => Ok(()),
            RemoteState::Running if job.state == JobState::Submitted => {
                self.update(
                    &job,
                    JobState::Running,
                    &format!("running on {cluster} (attempt {n})"),
                    None,
                    now_ms,
                )
                .await
            }
            RemoteState::Running => Ok(()),
            RemoteState::Succeeded => {
                self.update(
                    &job,
                    JobState::Succeeded,
                    &format!("succeeded on {cluster}"),
                    status.exit_code.or(Some(0)),
                    now_ms,
                )
                .await
            }
            RemoteState::Stopped | RemoteState::Failed if job.cancel_requested => {
                let detail = format!("cancelled on {cluster}");
                self.cancelled(&job, &detail, status.exit_code, now_ms)
                    .await
            }
            RemoteState::Failed | RemoteState::Stopped => {
                let detail = match (status.state, status.exit_code) {
                    (RemoteState::Failed, Some(code)) if code != 0 => format!(
                        "entrypoint exited with code {code} on {cluster}: {}",
                        status.message
                    ),
                    (RemoteState::Failed, _) => {
                        format!("failed on {cluster}: {}", status.message)
                    }
                    _ => format!("stopped on {cluster} without a cancel: {}", status.message),
                };
                self.attempt_failed(
                    &job,
                    cluster,
                    Outcome::Remote(&status),
                    status.exit_code,
                    &detail,
                    now_ms,
                )
                .await
            }
            RemoteState::NotFound => {
                let detail = format!("{cluster} does not know attempt {n}");
                self.maybe_lost(&job, cluster, Outcome::Unknown, &detail, now_ms)
                    .await
            }
        }
    }

    /// Stops an attempt that ran out of time and ends it with class
    /// `time_limit` (retried only when the job's policy says so). The stop
    /// is best effort: garbage collection stops the remote job if it outlives
    /// this call, as it no longer belongs to a current attempt.
    async fn time_limit_exceeded(
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

    /// Counts an unknown or unreachable attempt as failed once the grace
    /// runs out.
    async fn maybe_lost(
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
    async fn cancelled(
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
    async fn attempt_failed(
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

    async fn update(
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
    async fn end(
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

    /// Fetches the attempt's new log text and keeps it in the broker.
    async fn keep_logs(
        &self,
        job: &Job,
        cluster: &str,
        submission_id: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let cursor = self.queue.log_cursor(&job.id, job.attempt).await?;
        let sid = submission_id.to_string();
        let logs = self
            .clusters
            .call(cluster, "logs", now_ms, |a| async move {
                a.logs(&sid, cursor).await
            })
            .await;
        let Ok(chunk) = logs else {
            return Ok(()); // logs are best effort; the next round tries again
        };
        if chunk.next_cursor == cursor {
            return Ok(());
        }
        let text = if cursor == 0 && job.attempt > 1 {
            format!("--- attempt {} ---\n{}", job.attempt, chunk.text)
        } else {
            chunk.text
        };
        let kept = self
            .queue
            .append_logs(&job.id, job.attempt, cursor, chunk.next_cursor, &text)
            .await?;
        if kept {
            // Metrics and artifacts the job reports in its log lines.
            crate::telemetry::keep_log_reports(&self.queue, &job.id, job.attempt, &text, now_ms)
                .await?;
        }
        Ok(())
    }

    /// Stops remote jobs this broker created that no current attempt owns (a
    /// superseded attempt, a finished or vanished job) and removes finished
    /// ones whose job is finished.
    /// A cluster that is down is skipped (the call is refused without being
    /// made); the first collection after it comes back stops what it still
    /// runs for superseded attempts.
    pub async fn collect_garbage(&self) -> Result<(), QueueError> {
        let now_ms = super::now_ms();
        let names: Vec<String> = self
            .clusters
            .adapters()
            .map(|(n, _)| n.to_string())
            .collect();
        for name in &names {
            let name = name.as_str();
            let Ok(owned) = self
                .clusters
                .call(name, "list_owned", now_ms, |a| async move {
                    a.list_owned().await
                })
                .await
            else {
                continue;
            };
            for remote in owned {
                let job = match &remote.job_id {
                    Some(id) => self.queue.get(id).await?,
                    None => None,
                };
                let current = job.as_ref().is_some_and(|j| {
                    !j.state.is_terminal()
                        && remote.attempt == Some(j.attempt)
                        && j.attempts.last().is_some_and(|a| a.cluster == name)
                });
                if current {
                    continue;
                }
                if !remote.state.is_final() {
                    tracing::info!(cluster = name, submission = %remote.submission_id, "stopping an orphaned remote job");
                    let sid = remote.submission_id.clone();
                    let _ = self
                        .clusters
                        .call(
                            name,
                            "cancel",
                            now_ms,
                            |a| async move { a.cancel(&sid).await },
                        )
                        .await;
                } else if job
                    .as_ref()
                    .is_none_or(|j| j.state.is_terminal() || remote.attempt != Some(j.attempt))
                {
                    let sid = remote.submission_id.clone();
                    let _ = self
                        .clusters
                        .call(
                            name,
                            "cleanup",
                            now_ms,
                            |a| async move { a.cleanup(&sid).await },
                        )
                        .await;
                }
            }
        }
        Ok(())
    }
}

/// True when the attempt has run longer than the job's time limit: counted
/// from the cluster's start time when it reports one, else from the submit.
fn over_time_limit(job: &Job, attempt: &Attempt, status: &RemoteStatus, now_ms: u64) -> bool {
    let Some(limit) = job.spec.time_limit else {
        return false;
    };
    let since = status
        .started_at_ms
        .or(attempt.submitted_at_ms)
        .unwrap_or(attempt.created_at_ms);
    now_ms.saturating_sub(since) > limit.as_millis() as u64
}
