//! The reconcile loop: brings the broker's view of every job on a cluster in
//! line with the cluster's, keeps the job's log, carries cancels to clusters,
//! and garbage-collects what this broker left on a cluster that no current
//! attempt owns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use raybroker_adapter::{ClusterAdapter, RemoteState, RemoteStatus};
use raybroker_core::{Job, JobId, JobState};
use raybroker_queue::{JobQueue, QueueError};
use tracing::Instrument as _;

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
    /// Longest wait for one adapter call.
    pub call_timeout: Duration,
    /// Jobs reconciled at once.
    pub concurrency: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            tick: Duration::from_millis(500),
            lost_grace: Duration::from_secs(30),
            gc_every: Duration::from_secs(15),
            call_timeout: Duration::from_secs(10),
            concurrency: 16,
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
        let Some(adapter) = self.clusters.adapter(&attempt.cluster) else {
            return self
                .lost(
                    &job,
                    &format!("cluster {} is no longer configured", attempt.cluster),
                    now_ms,
                )
                .await;
        };
        if job.cancel_requested {
            // Best effort each round until the cluster reports the job stopped.
            let _ = self.call(adapter.cancel(&attempt.submission_id)).await;
        }
        let status = match self.call(adapter.status(&attempt.submission_id)).await {
            Ok(status) => status,
            Err(why) => {
                return self
                    .maybe_lost(
                        &job,
                        &format!("{} unreachable: {why}", attempt.cluster),
                        now_ms,
                    )
                    .await
            }
        };
        if status.state != RemoteState::NotFound {
            self.missing_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(job.id.clone(), job.attempt));
        }
        if matches!(status.state, RemoteState::Running) || status.state.is_final() {
            self.keep_logs(&job, adapter.as_ref(), &attempt.submission_id)
                .await?;
        }
        let cluster = &attempt.cluster;
        let n = attempt.number;
        match status.state {
            RemoteState::Pending if job.cancel_requested => {
                // Ray cannot stop a job that waits for resources; the broker's
                // job ends now and garbage collection stops the remote one if
                // it ever starts.
                self.update(
                    &job,
                    JobState::Cancelled,
                    &format!("cancelled while pending on {cluster}"),
                    None,
                    now_ms,
                )
                .await
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
                self.update(
                    &job,
                    JobState::Cancelled,
                    &format!("cancelled on {cluster}"),
                    status.exit_code,
                    now_ms,
                )
                .await
            }
            RemoteState::Failed => self.failed(&job, cluster, &status, now_ms).await,
            RemoteState::Stopped => {
                self.lost(
                    &job,
                    &format!("stopped on {cluster} without a cancel: {}", status.message),
                    now_ms,
                )
                .await
            }
            RemoteState::NotFound => {
                self.maybe_lost(
                    &job,
                    &format!("{cluster} does not know attempt {n}"),
                    now_ms,
                )
                .await
            }
        }
    }

    /// A failed attempt: the entrypoint's own non-zero exit fails the job
    /// (retrying a crashing script rarely helps); a failure of the cluster is
    /// retried while retries are left.
    async fn failed(
        &self,
        job: &Job,
        cluster: &str,
        status: &RemoteStatus,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        match status.exit_code {
            Some(code) if code != 0 => {
                let reason = format!(
                    "entrypoint exited with code {code} on {cluster}: {}",
                    status.message
                );
                self.update(job, JobState::Failed, &reason, Some(code), now_ms)
                    .await
            }
            _ => {
                self.lost(
                    job,
                    &format!("failed on {cluster}: {}", status.message),
                    now_ms,
                )
                .await
            }
        }
    }

    /// Counts an unknown or unreachable attempt as lost once the grace runs out.
    async fn maybe_lost(&self, job: &Job, why: &str, now_ms: u64) -> Result<(), QueueError> {
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
                .update(
                    job,
                    JobState::Cancelled,
                    &format!("cancelled; {why}"),
                    None,
                    now_ms,
                )
                .await;
        }
        self.lost(
            job,
            &format!("{why} for {}s", (now_ms - since) / 1000),
            now_ms,
        )
        .await
    }

    /// The attempt is gone for reasons not of the job's making: a new attempt
    /// while retries are left, else the job fails.
    async fn lost(&self, job: &Job, why: &str, now_ms: u64) -> Result<(), QueueError> {
        self.missing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(job.id.clone(), job.attempt));
        if job.attempt <= job.spec.max_retries {
            let reason = format!(
                "attempt {} lost ({why}); retrying ({} of {} retries used)",
                job.attempt, job.attempt, job.spec.max_retries
            );
            self.update(job, JobState::Queued, &reason, None, now_ms)
                .await
        } else {
            self.update(
                job,
                JobState::Failed,
                &format!("attempt {} lost ({why}); no retries left", job.attempt),
                None,
                now_ms,
            )
            .await
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
        let ended = self
            .queue
            .update_attempt(&job.id, job.attempt, to, reason, exit, now_ms)
            .await?;
        tracing::info!(job = %job.id, attempt = job.attempt, from = %job.state, to = %ended, reason, "job changed on cluster");
        Ok(())
    }

    /// Fetches the attempt's new log text and keeps it in the broker.
    async fn keep_logs(
        &self,
        job: &Job,
        adapter: &dyn ClusterAdapter,
        submission_id: &str,
    ) -> Result<(), QueueError> {
        let cursor = self.queue.log_cursor(&job.id, job.attempt).await?;
        let Ok(chunk) = self.call(adapter.logs(submission_id, cursor)).await else {
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
        self.queue
            .append_logs(&job.id, job.attempt, cursor, chunk.next_cursor, &text)
            .await?;
        Ok(())
    }

    /// Stops remote jobs this broker created that no current attempt owns (a
    /// superseded attempt, a finished or vanished job) and removes finished
    /// ones whose job is finished.
    pub async fn collect_garbage(&self) -> Result<(), QueueError> {
        for (name, adapter) in self.clusters.adapters() {
            let Ok(owned) = self.call(adapter.list_owned()).await else {
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
                    let _ = self.call(adapter.cancel(&remote.submission_id)).await;
                } else if job
                    .as_ref()
                    .is_none_or(|j| j.state.is_terminal() || remote.attempt != Some(j.attempt))
                {
                    let _ = self.call(adapter.cleanup(&remote.submission_id)).await;
                }
            }
        }
        Ok(())
    }

    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, raybroker_adapter::AdapterError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.settings.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.settings.call_timeout)),
        }
    }
}
