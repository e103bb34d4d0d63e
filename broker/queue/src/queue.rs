//! The typed queue API over the Lua scripts.

use std::time::Duration;

use deadpool_redis::Pool;
use raybroker_core::{Attempt, Job, JobEvent, JobId, JobSpec, JobState, TenantId};

use crate::keys::Keys;
use crate::scripts::Scripts;

/// How the queue behaves.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Prefix of every key (one per broker deployment; unique per test).
    pub key_prefix: String,
    /// How long a dispatcher holds a job before it comes back to the queue.
    pub lease_ttl: Duration,
    /// Approximate number of events kept in the event stream.
    pub event_stream_max_len: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            key_prefix: "rb".to_string(),
            lease_ttl: Duration::from_secs(30),
            event_stream_max_len: 100_000,
        }
    }
}

/// What went wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be taken from the pool.
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// The job does not exist.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The lease was lost: it expired and the job was reclaimed, or another
    /// holder leased it since. The holder must stop working on the job.
    #[error("lease on job {0} is no longer held")]
    StaleLease(JobId),
    /// The job is not in a state that allows the change (e.g. already finished,
    /// or the attempt named is not the current one).
    #[error("job {id}: {detail}")]
    Conflict {
        /// The job.
        id: JobId,
        /// What did not match.
        detail: String,
    },
    /// Data in Redis could not be decoded.
    #[error("job {id} is corrupt in redis: {detail}")]
    Corrupt {
        /// The job (or the key) that failed to decode.
        id: String,
        /// What was wrong.
        detail: String,
    },
}

/// The answer to a submit.
#[derive(Clone, Debug)]
pub enum SubmitOutcome {
    /// A new job was queued.
    Created(Job),
    /// The tenant already submitted this idempotency key: the existing job.
    Existing(Job),
}

impl SubmitOutcome {
    /// The job, new or existing.
    pub fn job(&self) -> &Job {
        match self {
            SubmitOutcome::Created(job) | SubmitOutcome::Existing(job) => job,
        }
    }

    /// True when a new job was created.
    pub fn created(&self) -> bool {
        matches!(self, SubmitOutcome::Created(_))
    }
}

/// What a cancel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelEffect {
    /// The job was queued and is now cancelled.
    Cancelled,
    /// The job is dispatching or on a cluster: the cancel is recorded and the
    /// loops carry it to the cluster.
    Requested,
    /// The job had already finished; nothing changed.
    AlreadyFinished,
}

/// The answer to a cancel.
#[derive(Clone, Debug)]
pub struct CancelOutcome {
    /// What happened.
    pub effect: CancelEffect,
    /// The job after the cancel.
    pub job: Job,
}

/// A job held by a dispatcher. Every change made under the lease carries its
/// fence; once the lease expires and the job is reclaimed, the fence no longer
/// matches and the stale holder's changes are refused.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The job as it was when leased.
    pub job: Job,
    /// The fencing token of this lease.
    pub fence: u64,
    /// When the lease runs out unless renewed, ms since the epoch.
    pub expires_at_ms: u64,
}

/// Which jobs to list.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only this tenant's jobs (`None`: every tenant, for admins).
    pub tenant: Option<TenantId>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs whose current attempt is on this cluster.
    pub cluster: Option<String>,
    /// Only jobs carrying all these labels.
    pub labels: Vec<(String, String)>,
}

/// One page of a listing, newest first.
#[derive(Clone, Debug)]
pub struct Page {
    /// The jobs on this page.
    pub jobs: Vec<Job>,
    /// Pass back to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// The durable, tenant-scoped job queue.
#[derive(Clone)]
pub struct JobQueue {
    pool: Pool,
    keys: Keys,
    scripts: std::sync::Arc<Scripts>,
    config: QueueConfig,
}

impl JobQueue {
    /// A queue over `pool` with `config`.
    pub fn new(pool: Pool, config: QueueConfig) -> JobQueue {
        let keys = Keys::new(&config.key_prefix);
        JobQueue {
            pool,
            scripts: std::sync::Arc::new(Scripts::load()),
            keys,
            config,
        }
    }

    /// The key names this queue uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Checks that Redis answers (readiness).
    pub async fn ping(&self) -> Result<(), QueueError> {
        todo!()
    }

    /// Queues a validated job for `tenant`. With an idempotency key the tenant
    /// used before, returns the existing job and writes nothing.
    pub async fn submit(
        &self,
        tenant: &TenantId,
        spec: JobSpec,
        now_ms: u64,
    ) -> Result<SubmitOutcome, QueueError> {
        let _ = (tenant, spec, now_ms);
        todo!()
    }

    /// Queues many jobs of one tenant in one round trip (batches, benchmark).
    pub async fn submit_many(
        &self,
        tenant: &TenantId,
        specs: Vec<JobSpec>,
        now_ms: u64,
    ) -> Result<Vec<SubmitOutcome>, QueueError> {
        let _ = (tenant, specs, now_ms);
        todo!()
    }

    /// The job, whoever owns it (callers check the tenant).
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>, QueueError> {
        let _ = id;
        todo!()
    }

    /// A page of jobs matching `filter`, newest first, after `cursor`.
    pub async fn list(
        &self,
        filter: &ListFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, QueueError> {
        let _ = (filter, cursor, limit);
        todo!()
    }

    /// Cancels a queued job at once; marks a dispatching or running one for
    /// cancellation; leaves a finished one as it is.
    pub async fn cancel(
        &self,
        id: &JobId,
        reason: &str,
        now_ms: u64,
    ) -> Result<CancelOutcome, QueueError> {
        let _ = (id, reason, now_ms);
        todo!()
    }

    /// Tenants that have queued jobs.
    pub async fn ready_tenants(&self) -> Result<Vec<TenantId>, QueueError> {
        todo!()
    }

    /// Number of queued jobs of a tenant.
    pub async fn queued_count(&self, tenant: &TenantId) -> Result<u64, QueueError> {
        let _ = tenant;
        todo!()
    }

    /// Leases up to `max` of the tenant's queued jobs, best first, moving them
    /// to `dispatching` for the configured lease time.
    pub async fn lease(
        &self,
        tenant: &TenantId,
        max: usize,
        now_ms: u64,
    ) -> Result<Vec<Lease>, QueueError> {
        let _ = (tenant, max, now_ms);
        todo!()
    }

    /// Extends a lease; fails with [`QueueError::StaleLease`] if it was lost.
    pub async fn renew(&self, lease: &mut Lease, now_ms: u64) -> Result<(), QueueError> {
        let _ = (lease, now_ms);
        todo!()
    }

    /// Gives a leased job back to the queue (e.g. no cluster can start it now).
    pub async fn release(
        &self,
        lease: &Lease,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let _ = (lease, reason, now_ms);
        todo!()
    }

    /// Records the next attempt on `cluster` before anything is sent there, so
    /// a crash after the submit is recognised on replay by its submission id.
    pub async fn record_attempt(
        &self,
        lease: &Lease,
        cluster: &str,
        now_ms: u64,
    ) -> Result<Attempt, QueueError> {
        let _ = (lease, cluster, now_ms);
        todo!()
    }

    /// The cluster accepted the current attempt: `dispatching -> submitted`,
    /// and the lease ends.
    pub async fn mark_submitted(
        &self,
        lease: &Lease,
        reason: &str,
        now_ms: u64,
    ) -> Result<Job, QueueError> {
        let _ = (lease, reason, now_ms);
        todo!()
    }

    /// Finishes leased jobs without a cluster (tests, benchmark, a job refused
    /// everywhere): `dispatching -> succeeded | failed | cancelled`.
    pub async fn finish_leased(
        &self,
        leases: &[Lease],
        to: JobState,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let _ = (leases, to, reason, now_ms);
        todo!()
    }

    /// Moves the job's current attempt to `to` (reconcile): only while
    /// `attempt` is still the current one, so results of a superseded attempt
    /// never count. `to = Queued` is a retry: a later lease makes a new attempt.
    pub async fn update_attempt(
        &self,
        id: &JobId,
        attempt: u32,
        to: JobState,
        reason: &str,
        exit_code: Option<i32>,
        now_ms: u64,
    ) -> Result<Job, QueueError> {
        let _ = (id, attempt, to, reason, exit_code, now_ms);
        todo!()
    }

    /// Returns jobs whose lease expired to the queue and fences the old holder.
    pub async fn reclaim_expired(&self, now_ms: u64) -> Result<Vec<JobId>, QueueError> {
        let _ = now_ms;
        todo!()
    }

    /// Ids of jobs in `state`, oldest first, at most `limit`.
    pub async fn ids_in_state(
        &self,
        state: JobState,
        limit: usize,
    ) -> Result<Vec<JobId>, QueueError> {
        let _ = (state, limit);
        todo!()
    }

    /// Jobs whose cancel still has to reach their cluster.
    pub async fn pending_cancels(&self) -> Result<Vec<JobId>, QueueError> {
        todo!()
    }

    /// The cursor of the newest event (start a follow from here).
    pub async fn last_event_cursor(&self) -> Result<String, QueueError> {
        todo!()
    }

    /// Events after `cursor`, waiting up to `block` for the first one.
    pub async fn events_after(
        &self,
        cursor: &str,
        block: Duration,
        count: usize,
    ) -> Result<Vec<JobEvent>, QueueError> {
        let _ = (cursor, block, count);
        todo!()
    }
}
