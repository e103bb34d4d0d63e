//! Read-only views of the queue: listing with filters and cursors, and the
//! indexes the loops walk.

use std::str::FromStr;

use raybroker_core::{Job, JobId, JobState, TenantId};
use redis::AsyncCommands;

use super::{JobQueue, ListFilter, Page, QueueError};
use crate::codec::job_from_fields;

impl JobQueue {
    /// A page of jobs matching `filter`, newest first, after `cursor`.
    ///
    /// Walks the narrowest index (jobs in the state, else the tenant's jobs,
    /// else all jobs) and filters the rest in the broker; a page stops after
    /// scanning a bounded number of entries, so a sparse filter returns a short
    /// page with a cursor rather than scanning everything at once.
    pub async fn list(
        &self,
        filter: &ListFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, QueueError> {
        let limit = limit.clamp(1, 1000);
        let source = match (&filter.state, &filter.tenant) {
            // Dispatching jobs have no index by creation (see `move` in
            // lua/prelude.lua): the tenant's or all jobs are walked, filtered.
            (Some(state), _) if *state != JobState::Dispatching => self.keys.in_state(*state),
            (_, Some(tenant)) => self.keys.tenant_jobs(tenant),
            (_, None) => self.keys.all_jobs(),
        };
        let mut max = match cursor {
            Some(text) => {
                let seq: u64 = text.parse().map_err(|_| QueueError::Conflict {
                    id: JobId::generate(0),
                    detail: format!("'{text}' is not a listing cursor"),
                })?;
                format!("({seq}")
            }
            None => "+inf".to_string(),
        };
        let batch = (limit * 2).max(64);
        let mut budget = limit * 20 + 1000;
        let mut jobs = Vec::new();
        let mut conn = self.conn().await?;
        loop {
            let entries: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&source)
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut conn)
                .await?;
            if entries.is_empty() {
                return Ok(Page {
                    jobs,
                    next_cursor: None,
                });
            }
            let ids: Vec<&String> = entries.iter().map(|(id, _)| id).collect();
            let all = self.read_hashes(&mut conn, &ids).await?;
            let exhausted = entries.len() < batch;
            for ((id, seq), fields) in entries.into_iter().zip(all) {
                budget = budget.saturating_sub(1);
                max = format!("({}", seq as u64);
                if fields.is_empty() {
                    continue; // index entry of a job removed by retention
                }
                let job = job_from_fields(&id, &fields)?;
                if filter.matches(&job) {
                    jobs.push(job);
                    if jobs.len() == limit {
                        return Ok(Page {
                            jobs,
                            next_cursor: Some((seq as u64).to_string()),
                        });
                    }
                }
                if budget == 0 {
                    return Ok(Page {
                        jobs,
                        next_cursor: Some((seq as u64).to_string()),
                    });
                }
            }
            if exhausted {
                return Ok(Page {
                    jobs,
                    next_cursor: None,
                });
            }
        }
    }

    /// Tenants that have queued jobs.
    pub async fn ready_tenants(&self) -> Result<Vec<TenantId>, QueueError> {
        let mut conn = self.conn().await?;
        let names: Vec<String> = conn.smembers(self.keys.ready_tenants()).await?;
        let mut tenants: Vec<TenantId> =
            names.iter().filter_map(|n| TenantId::new(n).ok()).collect();
        tenants.sort();
        Ok(tenants)
    }

    /// Number of queued jobs of a tenant.
    pub async fn queued_count(&self, tenant: &TenantId) -> Result<u64, QueueError> {
        let mut conn = self.conn().await?;
        Ok(conn.zcard(self.keys.ready(tenant)).await?)
    }

    /// Ids of jobs in `state`, oldest first (dispatching ones: soonest
    /// lease expiry first), at most `limit`.
    pub async fn ids_in_state(
        &self,
        state: JobState,
        limit: usize,
    ) -> Result<Vec<JobId>, QueueError> {
        let index = match state {
            // Exactly the leased jobs (see `move` in lua/prelude.lua).
            JobState::Dispatching => self.keys.leases(),
            state => self.keys.in_state(state),
        };
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn
            .zrange(index, 0, limit.saturating_sub(1) as isize)
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| JobId::from_str(id).ok())
            .collect())
    }

    /// Jobs whose cancel still has to reach their cluster.
    pub async fn pending_cancels(&self) -> Result<Vec<JobId>, QueueError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn.smembers(self.keys.cancels()).await?;
        Ok(ids
            .iter()
            .filter_map(|id| JobId::from_str(id).ok())
            .collect())
    }
}

impl ListFilter {
    /// True when the job passes every condition of the filter.
    pub fn matches(&self, job: &Job) -> bool {
        self.tenant.as_ref().is_none_or(|t| &job.tenant == t)
            && self.state.is_none_or(|s| job.state == s)
            && self
                .cluster
                .as_ref()
                .is_none_or(|c| job.cluster.as_ref() == Some(c))
            && self
                .labels
                .iter()
                .all(|(k, v)| job.spec.labels.get(k) == Some(v))
    }
}
