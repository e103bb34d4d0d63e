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
use raybroker_adapter::RemoteState;
use raybroker_core::{Job, JobId, JobState};
use raybroker_queue::{JobQueue, QueueError};
use tracing::Instrument as _;

use super::retry::{Outcome, RetryPolicy};
use crate::clusters::ClusterRegistry;

mod attempt_end;
mod gc;
mod time_limit;

use time_limit::over_time_limit;

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
}
