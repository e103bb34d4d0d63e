//! Garbage collection: stops and removes the remote jobs this broker left on
//! a cluster that no current attempt owns (kueue MultiKueue's `runGC`: list
//! what you own, keep what is current, stop or delete the rest).

use std::sync::Arc;

use raybroker_queue::QueueError;

use super::Reconciler;

impl Reconciler {
    /// Collects garbage every `gc_every` until `shutdown` turns true. The
    /// first collection comes one `gc_every` after start, not at start: a
    /// broker restarted again and again (a crash loop) would otherwise list
    /// and clean every cluster on each start, whatever `gc_every` says. A
    /// collection cut short by shutdown is harmless: every step is idempotent.
    pub(super) async fn collect_garbage_every(
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

    /// Stops remote jobs this broker created that no current attempt owns (a
    /// superseded attempt, a finished or vanished job) and removes finished
    /// ones whose job is finished.
    /// A cluster that is down is skipped (the call is refused without being
    /// made); the first collection after it comes back stops what it still
    /// runs for superseded attempts.
    pub async fn collect_garbage(&self) -> Result<(), QueueError> {
        let now_ms = crate::loops::now_ms();
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
