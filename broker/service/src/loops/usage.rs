//! What every tenant has in flight (submitted or running), the base for
//! placement's quotas and fair share.
//!
//! A job's demand never changes once it is in flight, so [`InFlight`] keeps
//! it by id: each refresh lists the in-flight ids (two sorted-set reads) and
//! fetches, in one round trip, only the jobs it has not seen (or has seen
//! only submitted and that now run), dropping those no longer listed.
//!
//! For the burst forecast it also knows when each running job ends at the
//! latest: when the broker saw it running plus its time limit.

use std::collections::HashMap;

use raybroker_core::{Job, JobId, JobState, Resources};
use raybroker_placement::{releases_of_running, ClusterView, Release, RunningJob, Totals, Usage};
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
    /// What it asked for, per node (its demand is this times its nodes).
    resources: Resources,
    /// Running: when it ends at the latest (seen running plus its time
    /// limit; `None` without a limit). Submitted: not counted yet.
    ends_by_ms: Option<u64>,
    /// Whether it was running when read.
    running: bool,
}

impl Counted {
    fn of(job: &Job) -> Counted {
        let running = job.state == JobState::Running;
        let since = job
            .history
            .iter()
            .rev()
            .find(|t| t.to == JobState::Running && t.attempt == job.attempt)
            .map(|t| t.at_ms);
        let ends_by_ms = match (running, since, job.spec.time_limit) {
            (true, Some(since), Some(limit)) => {
                Some(since.saturating_add(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)))
            }
            _ => None,
        };
        Counted {
            tenant: job.tenant.to_string(),
            cluster: job.attempts.last().map(|a| a.cluster.clone()),
            resources: job.spec.resources.clone(),
            ends_by_ms,
            running,
        }
    }
}

/// In-flight jobs' demand by id, refreshed from the queue.
#[derive(Debug, Default)]
pub struct InFlight {
    jobs: HashMap<JobId, Counted>,
}

impl InFlight {
    /// Brings the cache in step with the queue's submitted and running jobs.
    pub async fn refresh(&mut self, queue: &JobQueue) -> Result<&mut InFlight, QueueError> {
        let submitted = queue
            .ids_in_state(JobState::Submitted, MAX_IN_FLIGHT_PER_STATE)
            .await?;
        let running = queue
            .ids_in_state(JobState::Running, MAX_IN_FLIGHT_PER_STATE)
            .await?;
        let listed_set: std::collections::HashSet<&JobId> =
            submitted.iter().chain(&running).collect();
        self.jobs.retain(|id, _| listed_set.contains(id));
        // Read once, and again when a job read as submitted runs; all in
        // one round trip.
        let unread: Vec<JobId> = [(&submitted, false), (&running, true)]
            .into_iter()
            .flat_map(|(ids, runs)| ids.iter().map(move |id| (id, runs)))
            .filter(|(id, runs)| !self.jobs.get(*id).is_some_and(|c| c.running || !runs))
            .map(|(id, _)| id.clone())
            .collect();
        for (id, job) in unread.iter().zip(queue.get_many(&unread).await?) {
            // A job gone between the listing and the read has left flight.
            if let Some(job) = job {
                self.jobs.insert(id.clone(), Counted::of(&job));
            }
        }
        Ok(self)
    }

    /// What running jobs give back by their time limits, for the burst
    /// forecast ([`raybroker_placement::plan_with_releases`]). Capacity in
    /// use that no running job with a time limit accounts for (jobs without
    /// one, work the broker did not send, jobs not yet started) may free any
    /// time: a job that could use it waits its bound as without a forecast.
    pub fn releases(&self, clusters: &[ClusterView], now_ms: u64) -> Vec<Release> {
        let mut ids: Vec<&JobId> = self.jobs.keys().collect();
        ids.sort_unstable_by_key(|id| id.as_str());
        let running: Vec<RunningJob<'_>> = ids
            .into_iter()
            .filter_map(|id| {
                let job = &self.jobs[id];
                Some(RunningJob {
                    cluster: job.cluster.as_deref()?,
                    by_ms: job.ends_by_ms?,
                    resources: &job.resources,
                })
            })
            .collect();
        releases_of_running(clusters, &running, Some(now_ms))
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
            usage.add(&job.tenant, tier, Totals::of(&job.resources));
        }
        usage
    }
}

/// The usage and the burst forecast's releases right now, read in full from
/// the queue (for explanations, which have no cache to keep).
pub async fn in_flight_now(
    queue: &JobQueue,
    clusters: &[ClusterView],
    now_ms: u64,
) -> Result<(Usage, Vec<Release>), QueueError> {
    let mut in_flight = InFlight::default();
    let in_flight = in_flight.refresh(queue).await?;
    Ok((
        in_flight.usage(clusters),
        in_flight.releases(clusters, now_ms),
    ))
}
