//! Peeking at queue heads round after round without reading every job again.
//!
//! A dispatcher looks at up to a thousand queued jobs per tenant every round
//! (a few times a second), and most of them are the same jobs as last round:
//! a deep queue waits for capacity. Reading each whole job (its spec and
//! history, then decoding them) every round costs Redis and the broker far
//! more than the round's decisions. [`PeekCache`] keeps the jobs it has read
//! with their history length (`nhist`), which every change of a job's hash
//! bumps (every state change and note goes through the scripts' `record`);
//! a round reads the ids and those counters, and whole jobs only where the
//! counter moved or the job is new.

use std::collections::HashMap;
use std::sync::Arc;

use raybroker_core::{Job, JobId, TenantId};
use redis::AsyncCommands;

use super::{JobQueue, QueueError};

/// Jobs a dispatcher has peeked at, by id, with the history length they
/// were read at. Entries not seen during a round are dropped by
/// [`PeekCache::end_round`], so it holds at most one round's heads.
#[derive(Debug, Default)]
pub struct PeekCache {
    entries: HashMap<JobId, Entry>,
    round: u64,
    hits: u64,
    misses: u64,
}

#[derive(Debug)]
struct Entry {
    nhist: u64,
    job: Arc<Job>,
    seen_in: u64,
}

impl PeekCache {
    /// An empty cache.
    pub fn new() -> PeekCache {
        PeekCache::default()
    }

    /// Forgets the jobs not peeked at since the last call (they left the
    /// queue heads): the cache never outgrows one round.
    pub fn end_round(&mut self) {
        let round = self.round;
        self.entries.retain(|_, e| e.seen_in == round);
        self.round += 1;
    }

    /// Jobs held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when it holds no job.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Peeked jobs served from the cache, and read whole, so far.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

impl JobQueue {
    /// [`JobQueue::peek`] through `cache`: the tenant's first `max` queued
    /// jobs, best first, reading whole only the jobs that are new to the
    /// cache or changed since it read them. Two round trips (ids, then their
    /// history lengths), a third only when some job must be read.
    pub async fn peek_cached(
        &self,
        tenant: &TenantId,
        max: usize,
        cache: &mut PeekCache,
    ) -> Result<Vec<Arc<Job>>, QueueError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn
            .zrange(self.keys.ready(tenant), 0, max.saturating_sub(1) as isize)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGET")
                .arg(format!("{}{}", self.keys.job_base(), id))
                .arg("nhist");
        }
        let versions: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
        let round = cache.round;
        let mut out: Vec<Option<Arc<Job>>> = Vec::with_capacity(ids.len());
        let mut stale = Vec::new();
        for (k, (id, version)) in ids.iter().zip(&versions).enumerate() {
            let Ok(job_id) = id.parse::<JobId>() else {
                out.push(None); // not a job id: nothing to dispatch
                continue;
            };
            match (version, cache.entries.get_mut(&job_id)) {
                (Some(v), Some(entry)) if entry.nhist == *v => {
                    entry.seen_in = round;
                    cache.hits += 1;
                    out.push(Some(entry.job.clone()));
                }
                // New, changed, or without a counter (gone since the
                // ZRANGE, which the read shows): read it whole.
                _ => {
                    stale.push((k, job_id, *version));
                    out.push(None);
                }
            }
        }
        if !stale.is_empty() {
            let stale_ids: Vec<&JobId> = stale.iter().map(|(_, id, _)| id).collect();
            let jobs = self.read_jobs(&mut conn, &stale_ids).await?;
            for ((k, id, version), job) in stale.into_iter().zip(jobs) {
                cache.misses += 1;
                let Some(job) = job else { continue };
                let job = Arc::new(job);
                // Read after the counter: if the job changed in between, the
                // job is newer than `version` and the next round reads it
                // again (never the reverse).
                if let Some(nhist) = version {
                    let seen_in = round;
                    let entry = Entry {
                        nhist,
                        job: job.clone(),
                        seen_in,
                    };
                    cache.entries.insert(id, entry);
                }
                out[k] = Some(job);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}
