//! The typed queue API over the Lua scripts: its config and the lifecycle
//! operations here; `answers` holds its errors and the answers of its
//! operations, `attempts` what a lease holder and the reconcile loop do to a
//! job's current attempt; `reads`, `logs` and `events` the rest.

mod answers;
mod attempts;
mod events;
mod groups;
mod logs;
mod peek;
mod reads;
mod submit;
mod telemetry;

pub use answers::{
    CancelEffect, CancelOutcome, Lease, ListFilter, Page, QueueError, SubmitOutcome,
};
pub use attempts::AttemptEnd;
pub use groups::{GroupCancelEffect, GroupCursor, GroupKind, GroupPage, GroupRecord};
pub use peek::PeekCache;
pub use submit::GroupCommitStats;
pub use telemetry::{RemoteTimes, SpanSource, TelemetryDrops, TelemetryLimits};

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use deadpool_redis::Pool;
use raybroker_core::{Job, JobId, JobState, TenantId};
use redis::AsyncCommands;

use crate::codec::job_from_fields;
use crate::conn::{Conn, Multiplexed};
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
    /// Newest bytes of each job's log kept in Redis.
    pub log_cap_bytes: u64,
    /// How much of what jobs report (metrics, spans, artifacts) is kept.
    pub telemetry: TelemetryLimits,
    /// Most jobs one group-commit script call carries; 1 turns group commit
    /// off (every [`JobQueue::submit`] is its own call).
    pub submit_batch_max: usize,
    /// Group-commit calls in flight at once: while they run, new submits
    /// gather into the next batch.
    pub submit_batches_in_flight: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            key_prefix: "rb".to_string(),
            lease_ttl: Duration::from_secs(30),
            event_stream_max_len: 100_000,
            log_cap_bytes: 1 << 20,
            telemetry: TelemetryLimits::default(),
            submit_batch_max: 256,
            submit_batches_in_flight: 2,
        }
    }
}

/// The durable, tenant-scoped job queue.
#[derive(Clone)]
pub struct JobQueue {
    pool: Pool,
    mux: Option<std::sync::Arc<Multiplexed>>,
    keys: Keys,
    scripts: std::sync::Arc<Scripts>,
    config: QueueConfig,
    /// Submits waiting for their batch (see `submit`), shared by clones.
    group: std::sync::Arc<submit::GroupCommit>,
}

impl JobQueue {
    /// A queue whose every call takes a connection from `pool`.
    pub fn new(pool: Pool, config: QueueConfig) -> JobQueue {
        let keys = Keys::new(&config.key_prefix);
        JobQueue {
            pool,
            mux: None,
            scripts: std::sync::Arc::new(Scripts::load()),
            keys,
            config,
            group: std::sync::Arc::default(),
        }
    }

    /// The production setup: short calls share `shared` multiplexed
    /// connections to `url` (one round trip each, requests pipelined);
    /// blocking reads use `pool`. Connections open on first use.
    pub fn with_shared_connections(
        url: &str,
        shared: usize,
        pool: Pool,
        config: QueueConfig,
    ) -> Result<JobQueue, QueueError> {
        let client = redis::Client::open(url)?;
        let mut queue = JobQueue::new(pool, config);
        queue.mux = Some(std::sync::Arc::new(Multiplexed::new(client, shared)));
        Ok(queue)
    }

    /// The key names this queue uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The configuration the queue runs with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    async fn conn(&self) -> Result<Conn, QueueError> {
        Conn::take(self.mux.as_deref(), &self.pool).await
    }

    /// ARGV 1-4 shared by every script: job key base, state key base, stream length, now.
    fn common_args(&self, script: &mut redis::ScriptInvocation<'_>, now_ms: u64) {
        script
            .arg(self.keys.job_base())
            .arg(self.keys.in_state_base())
            .arg(self.config.event_stream_max_len)
            .arg(now_ms);
    }

    fn ready_base(&self) -> String {
        format!("{}:ready:", self.keys.prefix())
    }

    /// Checks that Redis answers (readiness).
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// The job, whoever owns it (callers check the tenant).
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>, QueueError> {
        let mut conn = self.conn().await?;
        let fields: HashMap<String, String> = conn.hgetall(self.keys.job(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        job_from_fields(id.as_str(), &fields).map(Some)
    }

    /// These jobs, in order, in one round trip; `None` where a job is gone.
    pub async fn get_many(&self, ids: &[JobId]) -> Result<Vec<Option<Job>>, QueueError> {
        let mut conn = self.conn().await?;
        self.read_jobs(&mut conn, ids).await
    }

    /// Cancels a queued job at once; marks a dispatching or running one for
    /// cancellation; leaves a finished one as it is.
    pub async fn cancel(
        &self,
        id: &JobId,
        reason: &str,
        now_ms: u64,
    ) -> Result<CancelOutcome, QueueError> {
        let mut invocation = self.scripts.cancel.prepare_invoke();
        invocation
            .key(self.keys.cancels())
            .key(self.keys.events())
            .key(self.keys.ready_tenants());
        self.common_args(&mut invocation, now_ms);
        invocation
            .arg(self.ready_base())
            .arg(id.as_str())
            .arg(reason);
        let mut conn = self.conn().await?;
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        drop(conn);
        let effect = match reply.first().map(String::as_str) {
            Some("cancelled") => CancelEffect::Cancelled,
            Some("requested") => CancelEffect::Requested,
            Some("already_finished") => CancelEffect::AlreadyFinished,
            Some("not_found") => return Err(QueueError::NotFound(id.clone())),
            other => return Err(unexpected(id, other)),
        };
        let job = self
            .get(id)
            .await?
            .ok_or_else(|| QueueError::NotFound(id.clone()))?;
        Ok(CancelOutcome { effect, job })
    }

    /// Leases up to `max` of the tenant's queued jobs, best first, moving them
    /// to `dispatching` for the configured lease time.
    pub async fn lease(
        &self,
        tenant: &TenantId,
        max: usize,
        now_ms: u64,
    ) -> Result<Vec<Lease>, QueueError> {
        self.lease_inner(tenant, max, &[], now_ms).await
    }

    /// Leases exactly these queued jobs of the tenant (placement chose them
    /// after a [`JobQueue::peek`]); ids that are no longer queued are skipped.
    pub async fn lease_ids(
        &self,
        tenant: &TenantId,
        ids: &[JobId],
        now_ms: u64,
    ) -> Result<Vec<Lease>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.lease_inner(tenant, ids.len(), ids, now_ms).await
    }

    /// The tenant's first `max` queued jobs, best first, without leasing them.
    pub async fn peek(&self, tenant: &TenantId, max: usize) -> Result<Vec<Job>, QueueError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn
            .zrange(self.keys.ready(tenant), 0, max.saturating_sub(1) as isize)
            .await?;
        let jobs = self.read_jobs(&mut conn, &ids).await?;
        Ok(jobs.into_iter().flatten().collect())
    }

    /// These jobs in one pipelined round trip, `None` where a job is gone.
    pub(crate) async fn read_jobs(
        &self,
        conn: &mut Conn,
        ids: &[impl std::fmt::Display],
    ) -> Result<Vec<Option<Job>>, QueueError> {
        let all = self.read_hashes(conn, ids).await?;
        ids.iter()
            .zip(all)
            .map(|(id, fields)| {
                if fields.is_empty() {
                    Ok(None)
                } else {
                    job_from_fields(&id.to_string(), &fields).map(Some)
                }
            })
            .collect()
    }

    /// These jobs' hashes in one pipelined round trip (empty where a job is gone).
    async fn read_hashes(
        &self,
        conn: &mut Conn,
        ids: &[impl std::fmt::Display],
    ) -> Result<Vec<HashMap<String, String>>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new()); // an empty pipeline is an error in Redis
        }
        let mut pipe = redis::pipe();
        self.pipe_job_reads(&mut pipe, ids);
        Ok(pipe.query_async(conn).await?)
    }

    /// Adds an HGETALL of each job to `pipe`.
    fn pipe_job_reads(&self, pipe: &mut redis::Pipeline, ids: &[impl std::fmt::Display]) {
        for id in ids {
            pipe.cmd("HGETALL")
                .arg(format!("{}{}", self.keys.job_base(), id));
        }
    }

    async fn lease_inner(
        &self,
        tenant: &TenantId,
        max: usize,
        ids: &[JobId],
        now_ms: u64,
    ) -> Result<Vec<Lease>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let expires_at_ms = now_ms + self.config.lease_ttl.as_millis() as u64;
        let mut invocation = self.scripts.lease.prepare_invoke();
        invocation
            .key(self.keys.ready(tenant))
            .key(self.keys.leases())
            .key(self.keys.ready_tenants())
            .key(self.keys.events());
        self.common_args(&mut invocation, now_ms);
        invocation.arg(expires_at_ms).arg(max).arg(tenant.as_str());
        for id in ids {
            invocation.arg(id.as_str());
        }
        let mut conn = self.conn().await?;
        // The jobs are read after the script, so they show the lease; only
        // its holder (or a cancel, which the job then shows) changes them
        // before it runs out.
        let (leased, fields) = if ids.is_empty() {
            let leased: Vec<(String, u64)> = invocation.invoke_async(&mut conn).await?;
            let ids: Vec<String> = leased.iter().map(|(id, _)| id.clone()).collect();
            let fields = self.read_hashes(&mut conn, &ids).await?;
            (leased, ids.into_iter().zip(fields).collect())
        } else {
            self.lease_and_read(&mut conn, &invocation, ids).await?
        };
        leased
            .into_iter()
            .map(|(id, fence)| {
                let job = match fields.get(&id) {
                    Some(hash) if !hash.is_empty() => job_from_fields(&id, hash)?,
                    _ => {
                        return Err(QueueError::Corrupt {
                            detail: "leased, but its hash is gone".into(),
                            id,
                        })
                    }
                };
                Ok(Lease {
                    job,
                    fence,
                    expires_at_ms,
                })
            })
            .collect()
    }

    /// Runs the lease script for known ids and reads those jobs in the same
    /// round trip (the reads run after the script); returns the script's
    /// answer and each id's hash.
    async fn lease_and_read(
        &self,
        conn: &mut Conn,
        invocation: &redis::ScriptInvocation<'_>,
        ids: &[JobId],
    ) -> Result<LeasedHashes, QueueError> {
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation);
        self.pipe_job_reads(&mut pipe, ids);
        let values: Vec<redis::Value> = match pipe.query_async(conn).await {
            // Redis forgot the script (a restart, SCRIPT FLUSH): load it again.
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                invocation.load_async(conn).await?;
                pipe.query_async(conn).await?
            }
            other => other?,
        };
        fn decode<T: redis::FromRedisValue>(value: redis::Value) -> Result<T, QueueError> {
            Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
        }
        let mut values = values.into_iter();
        let leased = decode(values.next().unwrap_or(redis::Value::Nil))?;
        let mut hashes = HashMap::new();
        for (id, value) in ids.iter().zip(values) {
            hashes.insert(id.to_string(), decode(value)?);
        }
        Ok((leased, hashes))
    }

    /// Runs one `leased.lua` op over `leases`; returns each job's detail.
    async fn leased_op(
        &self,
        leases: &[&Lease],
        op: &str,
        arg: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, QueueError> {
        let mut invocation = self.scripts.leased.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.events())
            .key(self.keys.cancels())
            .key(self.keys.ready_tenants());
        self.common_args(&mut invocation, now_ms);
        invocation
            .arg(self.ready_base())
            .arg(op)
            .arg(arg)
            .arg(reason);
        for lease in leases {
            invocation.arg(lease.job.id.as_str()).arg(lease.fence);
        }
        let mut conn = self.conn().await?;
        let replies: Vec<Vec<String>> = invocation.invoke_async(&mut conn).await?;
        leases
            .iter()
            .zip(replies)
            .map(|(lease, reply)| status_reply(&lease.job.id, reply))
            .collect()
    }

    /// Returns jobs whose lease expired to the queue and fences the old holder.
    pub async fn reclaim_expired(&self, now_ms: u64) -> Result<Vec<JobId>, QueueError> {
        let mut invocation = self.scripts.reclaim.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.events())
            .key(self.keys.cancels())
            .key(self.keys.ready_tenants());
        self.common_args(&mut invocation, now_ms);
        invocation.arg(self.ready_base()).arg(1000);
        let mut conn = self.conn().await?;
        let ids: Vec<String> = invocation.invoke_async(&mut conn).await?;
        Ok(ids
            .iter()
            .filter_map(|id| JobId::from_str(id).ok())
            .collect())
    }
}

/// What `lease.lua` answered, (id, fence) per leased job, and the jobs'
/// hashes by id.
type LeasedHashes = (Vec<(String, u64)>, HashMap<String, HashMap<String, String>>);

/// Maps a script's `{'ok', detail}`-style reply to a result.
fn status_reply(id: &JobId, reply: Vec<String>) -> Result<String, QueueError> {
    match reply.first().map(String::as_str) {
        Some("ok") => Ok(reply.get(1).cloned().unwrap_or_default()),
        Some("stale") => Err(QueueError::StaleLease(id.clone())),
        Some("not_found") => Err(QueueError::NotFound(id.clone())),
        Some("conflict") => Err(QueueError::Conflict {
            id: id.clone(),
            detail: reply.get(1).cloned().unwrap_or_default(),
        }),
        other => Err(unexpected(id, other)),
    }
}

fn parse_state(id: &JobId, text: Option<&str>) -> Result<JobState, QueueError> {
    text.and_then(|t| JobState::from_str(t).ok())
        .ok_or_else(|| unexpected(id, text))
}

fn unexpected(id: &JobId, reply: Option<&str>) -> QueueError {
    QueueError::Corrupt {
        id: id.to_string(),
        detail: format!("unexpected script reply {reply:?}"),
    }
}
