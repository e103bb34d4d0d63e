//! What every tenant has in flight (submitted or running), the base for
//! placement's quotas and fair share.
//!
//! A job's demand never changes once it is in flight, so [`InFlight`] keeps
//! it by id: each refresh lists the in-flight ids (two sorted-set reads) and
//! fetches only the jobs it has not seen, dropping those no longer listed.

use std::collections::HashMap;

use raybroker_core::{JobId, JobState};
use raybroker_placement::{ClusterView, Totals, Usage};
use raybroker_queue::{JobQueue, QueueError};

/// Most in-flight jobs counted per state: far above what clusters hold.
const MAX_IN_FLIGHT_PER_STATE: usize = 1_000_000;

/// One in-flight job, as usage counts it.
#[derive(Clone, Debug)]
struct Counted {
    tenant: String,
    /// The cluster of its current attempt; its tier is looked up per round,
    /// so a job on a cluster since removed counts on tier 0.
    cluster: Option<String>,
    demand: Totals,
}

/// In-flight jobs' demand by id, refreshed from the queue.
#[derive(Debug, Default)]
pub struct InFlight {
    jobs: HashMap<JobId, Counted>,
}

impl InFlight {
    /// Brings the cache in step with the queue's submitted and running jobs.
    pub async fn refresh(&mut self, queue: &JobQueue) -> Result<&mut InFlight, QueueError> {
        let mut listed = queue
            .ids_in_state(JobState::Submitted, MAX_IN_FLIGHT_PER_STATE)
            .await?;
        listed.extend(
            queue
                .ids_in_state(JobState::Running, MAX_IN_FLIGHT_PER_STATE)
                .await?,
        );
        let listed_set: std::collections::HashSet<&JobId> = listed.iter().collect();
        self.jobs.retain(|id, _| listed_set.contains(id));
        for id in &listed {
            if self.jobs.contains_key(id) {
                continue;
            }
            // A job gone between the listing and the read has left flight.
            if let Some(job) = queue.get(id).await? {
                self.jobs.insert(
                    id.clone(),
                    Counted {
                        tenant: job.tenant.to_string(),
                        cluster: job.attempts.last().map(|a| a.cluster.clone()),
                        demand: Totals::of(&job.spec.resources),
                    },
                );
            }
        }
        Ok(self)
    }

    /// The usage by tenant and tier, tiers taken from `clusters`.
    pub fn usage(&self, clusters: &[ClusterView]) -> Usage {
        let mut usage = Usage::default();
        for job in self.jobs.values() {
            let tier = job
                .cluster
                .as_deref()
                .and_then(|name| clusters.iter().find(|c| c.name == name))
                .map_or(0, |c| c.tier);
            usage.add(&job.tenant, tier, job.demand);
        }
        usage
    }
}

/// The usage right now, read in full from the queue (for explanations,
/// which have no cache to keep).
pub async fn usage_now(queue: &JobQueue, clusters: &[ClusterView]) -> Result<Usage, QueueError> {
    let mut in_flight = InFlight::default();
    Ok(in_flight.refresh(queue).await?.usage(clusters))
}
