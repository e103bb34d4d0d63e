//! The queue's errors and the answers of its operations.

use raybroker_core::{Job, JobId, JobState, TenantId};

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
    /// The group commit stopped before answering (the runtime is shutting
    /// down): the job may or may not be queued.
    #[error("the submit was interrupted before its batch was committed")]
    CommitLost,
}

impl QueueError {
    /// The same error again, for each request of a group commit whose
    /// batch it stopped.
    pub(crate) fn duplicate(&self) -> QueueError {
        use deadpool_redis::PoolError;
        match self {
            QueueError::Redis(e) => QueueError::Redis(e.clone()),
            QueueError::Pool(e) => QueueError::Pool(match e {
                PoolError::Timeout(kind) => PoolError::Timeout(*kind),
                PoolError::Backend(e) => PoolError::Backend(e.clone()),
                PoolError::Closed => PoolError::Closed,
                PoolError::NoRuntimeSpecified => PoolError::NoRuntimeSpecified,
                PoolError::PostCreateHook(hook) => PoolError::PostCreateHook(
                    deadpool_redis::HookError::Message(hook.to_string().into()),
                ),
            }),
            QueueError::NotFound(id) => QueueError::NotFound(id.clone()),
            QueueError::StaleLease(id) => QueueError::StaleLease(id.clone()),
            QueueError::Conflict { id, detail } => QueueError::Conflict {
                id: id.clone(),
                detail: detail.clone(),
            },
            QueueError::Corrupt { id, detail } => QueueError::Corrupt {
                id: id.clone(),
                detail: detail.clone(),
            },
            QueueError::CommitLost => QueueError::CommitLost,
        }
    }
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
