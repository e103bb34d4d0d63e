//! What a lease holder (the dispatcher) and the reconcile loop do to a job's
//! current attempt: renew or release the lease, record and confirm the
//! attempt, and end it (success, failure, or a retry with failover).

use raybroker_core::{Attempt, Failover, FailureClass, Job, JobId, JobState};

use super::{parse_state, status_reply, JobQueue, Lease, QueueError};

impl JobQueue {
    /// Extends a lease; fails with [`QueueError::StaleLease`] if it was lost.
    pub async fn renew(&self, lease: &mut Lease, now_ms: u64) -> Result<(), QueueError> {
        let expires = now_ms + self.config.lease_ttl.as_millis() as u64;
        self.leased_op(&[lease], "renew", &expires.to_string(), "", now_ms)
            .await?;
        lease.expires_at_ms = expires;
        Ok(())
    }

    /// Gives a leased job back to the queue (e.g. no cluster can start it now);
    /// a job whose cancel was asked for meanwhile ends cancelled instead.
    pub async fn release(
        &self,
        lease: &Lease,
        reason: &str,
        now_ms: u64,
    ) -> Result<JobState, QueueError> {
        let detail = self
            .leased_op(&[lease], "release", "", reason, now_ms)
            .await?;
        parse_state(&lease.job.id, detail.first().map(String::as_str))
    }

    /// Records the next attempt on `cluster` before anything is sent there, so
    /// a crash after the submit is recognised on replay by its submission id.
    ///
    /// A leased job whose last attempt has no `submitted_at_ms` was recorded by
    /// a dispatcher that died before confirming it: re-send that attempt (same
    /// submission id, the cluster adopts the duplicate) instead of recording a
    /// new one.
    pub async fn record_attempt(
        &self,
        lease: &Lease,
        cluster: &str,
        now_ms: u64,
    ) -> Result<Attempt, QueueError> {
        if cluster.is_empty() || cluster.contains(char::is_whitespace) {
            return Err(QueueError::Conflict {
                id: lease.job.id.clone(),
                detail: format!("'{cluster}' is not a cluster name"),
            });
        }
        let number = lease.job.attempt + 1;
        let submission_id = Attempt::submission_id(&lease.job.id, number);
        let arg = format!("{number} {cluster} {submission_id}");
        self.leased_op(&[lease], "attempt", &arg, "", now_ms)
            .await?;
        Ok(Attempt {
            number,
            cluster: cluster.to_string(),
            submission_id,
            created_at_ms: now_ms,
            submitted_at_ms: None,
        })
    }

    /// The cluster accepted the current attempt: `dispatching -> submitted`,
    /// and the lease ends.
    pub async fn mark_submitted(
        &self,
        lease: &Lease,
        reason: &str,
        now_ms: u64,
    ) -> Result<Job, QueueError> {
        self.leased_op(&[lease], "submitted", "", reason, now_ms)
            .await?;
        self.get(&lease.job.id)
            .await?
            .ok_or_else(|| QueueError::NotFound(lease.job.id.clone()))
    }

    /// Ends leased jobs without a cluster (a job no cluster can run or one
    /// refused, tests, the benchmark): `dispatching -> failed | cancelled`, in
    /// one script call. A job never succeeds without running. Fails on the
    /// first lease that was lost.
    pub async fn finish_leased(
        &self,
        leases: &[Lease],
        to: JobState,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        if leases.is_empty() {
            return Ok(());
        }
        let refs: Vec<&Lease> = leases.iter().collect();
        self.leased_op(&refs, "finish", to.as_str(), reason, now_ms)
            .await?;
        Ok(())
    }

    /// Fails a leased job before any cluster ran it (no cluster can, or one
    /// refused it), recording the failure's class.
    pub async fn fail_leased(
        &self,
        lease: &Lease,
        class: FailureClass,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let arg = format!("{}:{}", JobState::Failed.as_str(), class.as_str());
        self.leased_op(&[lease], "finish", &arg, reason, now_ms)
            .await?;
        Ok(())
    }

    /// Moves the job's current attempt to `to` (reconcile): only while
    /// `attempt` is still the current one, so results of a superseded attempt
    /// never count. `to = Queued` is a retry: a later lease makes a new attempt.
    /// Returns the state the job ended in (a pending cancel turns a retry into
    /// `cancelled`).
    pub async fn update_attempt(
        &self,
        id: &JobId,
        attempt: u32,
        to: JobState,
        reason: &str,
        exit_code: Option<i32>,
        now_ms: u64,
    ) -> Result<JobState, QueueError> {
        let change = AttemptEnd {
            to,
            reason,
            exit_code,
            failure: None,
            failover: None,
        };
        self.end_attempt(id, attempt, &change, now_ms).await
    }

    /// [`JobQueue::update_attempt`] with the failure's class and, for a
    /// retry (`to = Queued`), where and when the next attempt may go.
    pub async fn end_attempt(
        &self,
        id: &JobId,
        attempt: u32,
        change: &AttemptEnd<'_>,
        now_ms: u64,
    ) -> Result<JobState, QueueError> {
        let AttemptEnd {
            to,
            reason,
            exit_code,
            failure,
            failover,
        } = *change;
        let mut invocation = self.scripts.update_attempt.prepare_invoke();
        invocation
            .key(self.keys.cancels())
            .key(self.keys.events())
            .key(self.keys.ready_tenants());
        self.common_args(&mut invocation, now_ms);
        invocation
            .arg(self.ready_base())
            .arg(id.as_str())
            .arg(attempt)
            .arg(to.as_str())
            .arg(reason)
            .arg(exit_code.map(|c| c.to_string()).unwrap_or_default())
            .arg(failure.map(FailureClass::as_str).unwrap_or_default())
            .arg(
                failover
                    .and_then(|f| f.not_before_ms)
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
            )
            .arg(
                failover
                    .map(|f| f.excluded_clusters.join(" "))
                    .unwrap_or_default(),
            );
        let mut conn = self.conn().await?;
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        let detail = status_reply(id, reply)?;
        parse_state(id, Some(detail.as_str()))
    }
}

/// How reconcile ends (or retries) a job's current attempt.
#[derive(Clone, Copy, Debug)]
pub struct AttemptEnd<'a> {
    /// The state the job moves to; `Queued` is a retry.
    pub to: JobState,
    /// Why, in words.
    pub reason: &'a str,
    /// The entrypoint's exit code, when known.
    pub exit_code: Option<i32>,
    /// The class of the attempt's failure (`None`: keep the recorded one,
    /// and clear it when the job succeeds).
    pub failure: Option<FailureClass>,
    /// For a retry: clusters to avoid and the earliest start.
    pub failover: Option<&'a Failover>,
}
