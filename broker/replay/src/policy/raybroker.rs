//! raybroker's placement engine as a replay policy: the broker queue goes
//! to `raybroker_placement::plan` as the dispatch loop hands it over (the
//! head of each tenant's queue, [`MAX_HEAD_PER_TENANT`] jobs, oldest
//! first), with what each tenant has in flight; alone, a job goes to `place`.

use std::collections::{BTreeMap, HashMap};

use raybroker_core::{Bytes, Placement, Quantity};
use raybroker_placement::{
    place, plan, plan_with_releases, Decision, PendingJob, Policy, Problem, Release, TenantPolicy,
    TenantUsage, Totals, Usage, WaitReason, MAX_HEAD_PER_TENANT,
};

use super::{Choice, QueuePlan, Queued, Scheduler, Started};
use crate::federation::Federation;
use crate::trace::Task;

/// The engine's settings for a replay; every tenant gets the same policy
/// (weight 1, no quota, bursting allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// How long a job waits for its lowest feasible tier before it may burst.
    pub max_wait_ms: u64,
    /// A job waiting this long gets capacity reserved; 0 = never.
    pub reserve_after_ms: u64,
    /// One priority step per this long waited; 0 = no aging.
    pub aging_ms_per_priority: u64,
    /// The time limits jobs declare, from which the engine forecasts when
    /// lower tiers will have room.
    pub time_limits: TimeLimits,
}

/// The time limit each replayed job declares, as a real broker would read
/// it from the job's spec. The engine forecasts from limits, never from the
/// run times the replay knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeLimits {
    /// None: the engine has no forecast and waits the whole bound.
    None,
    /// Every job declares this limit (ms): the replay's duration cap, which
    /// it enforces, is what a cluster-wide default limit would be.
    Uniform(u64),
    /// Each job declares its own run time exactly: a perfect user, the best
    /// case for a forecast (no real broker has it).
    Exact,
}

impl Default for EngineConfig {
    /// The engine's own defaults.
    fn default() -> Self {
        let policy = Policy::default();
        EngineConfig {
            max_wait_ms: policy.default_tenant.max_wait_ms,
            reserve_after_ms: policy.reserve_after_ms,
            aging_ms_per_priority: policy.aging_ms_per_priority,
            time_limits: TimeLimits::None,
        }
    }
}

/// GPUs and CPUs in ten-thousandths, memory in bytes.
type Amount = [u64; 3];

/// raybroker's placement engine.
#[derive(Debug)]
pub struct Raybroker {
    policy: Policy,
    /// Tenant number of each task, numbered on the first plan.
    tenant_of: Vec<usize>,
    /// In flight per tenant and tier.
    in_flight: BTreeMap<String, BTreeMap<u32, Amount>>,
    time_limits: TimeLimits,
    /// What running jobs give back by their time limits, in no order.
    releases: Vec<Release>,
    /// The job of each release, and each running job's release.
    release_job: Vec<usize>,
    release_of: HashMap<usize, usize>,
}

impl Raybroker {
    /// The engine with `config`.
    pub fn new(config: EngineConfig) -> Raybroker {
        Raybroker {
            policy: Policy {
                tenants: BTreeMap::new(),
                default_tenant: TenantPolicy {
                    max_wait_ms: config.max_wait_ms,
                    ..TenantPolicy::default()
                },
                aging_ms_per_priority: config.aging_ms_per_priority,
                reserve_after_ms: config.reserve_after_ms,
            },
            tenant_of: Vec::new(),
            in_flight: BTreeMap::new(),
            time_limits: config.time_limits,
            releases: Vec::new(),
            release_job: Vec::new(),
            release_of: HashMap::new(),
        }
    }

    /// Records what a started job gives back, and by when at the latest.
    fn track(&mut self, task: &Task, start: &Started, fed: &Federation) {
        let limit_ms = match self.time_limits {
            TimeLimits::None => return,
            TimeLimits::Uniform(ms) => ms,
            TimeLimits::Exact => task.timing.map_or(1, |t| t.duration_s) * 1000,
        };
        let cluster = &fed.clusters[start.cluster];
        let Some(node) = cluster.nodes.get(start.node) else {
            return;
        };
        self.release_of.insert(start.job, self.releases.len());
        self.release_job.push(start.job);
        self.releases.push(Release {
            cluster: cluster.name.clone(),
            node: node.id.clone(),
            by_ms: start.at_ms.saturating_add(limit_ms),
            frees: Totals::of(&task.resources),
        });
    }

    /// Forgets an ended job's release.
    fn untrack(&mut self, job: usize) {
        let Some(at) = self.release_of.remove(&job) else {
            return;
        };
        self.releases.swap_remove(at);
        self.release_job.swap_remove(at);
        if let Some(&moved) = self.release_job.get(at) {
            self.release_of.insert(moved, at);
        }
    }

    /// The head of each tenant's queue, as the dispatch loop passes it:
    /// with equal priorities, aging keeps age order, so the heads are each
    /// tenant's oldest jobs. Ids are zero-padded task indices, so the
    /// engine's tie-break by id is age order too.
    fn heads(&mut self, queue: &[Queued], tasks: &[Task]) -> Vec<PendingJob> {
        if self.tenant_of.len() != tasks.len() {
            let mut names: BTreeMap<&str, usize> = BTreeMap::new();
            self.tenant_of = tasks
                .iter()
                .map(|t| {
                    let next = names.len();
                    *names.entry(t.tenant.as_str()).or_insert(next)
                })
                .collect();
        }
        let mut taken: Vec<usize> = Vec::new();
        let mut heads = Vec::new();
        for q in queue {
            let tenant = self.tenant_of[q.job];
            if taken.len() <= tenant {
                taken.resize(tenant + 1, 0);
            }
            if taken[tenant] == MAX_HEAD_PER_TENANT {
                continue;
            }
            taken[tenant] += 1;
            let task = &tasks[q.job];
            heads.push(PendingJob {
                id: format!("{:010}", q.job),
                tenant: task.tenant.clone(),
                priority: 0,
                enqueued_at_ms: q.enqueued_ms,
                resources: task.resources.clone(),
                placement: Placement::default(),
                max_wait_ms: None,
            });
        }
        heads
    }

    fn usage(&self) -> Usage {
        let totals = |a: &Amount| Totals {
            gpus: Quantity::from_units(a[0]),
            cpus: Quantity::from_units(a[1]),
            memory: Bytes(a[2]),
        };
        let by_tenant = self
            .in_flight
            .iter()
            .map(|(tenant, tiers)| {
                let mut total = [0u64; 3];
                for amount in tiers.values() {
                    for (t, a) in total.iter_mut().zip(amount) {
                        *t += a;
                    }
                }
                let usage = TenantUsage {
                    total: totals(&total),
                    by_tier: tiers.iter().map(|(tier, a)| (*tier, totals(a))).collect(),
                };
                (tenant.clone(), usage)
            })
            .collect();
        Usage { by_tenant }
    }

    fn count(&mut self, job: &Task, tier: u32, add: bool) {
        let r = &job.resources;
        let amount = [r.gpus.units(), r.cpus.units(), r.memory.0];
        let held = self
            .in_flight
            .entry(job.tenant.clone())
            .or_default()
            .entry(tier)
            .or_default();
        for (h, a) in held.iter_mut().zip(amount) {
            *h = if add {
                h.saturating_add(a)
            } else {
                h.saturating_sub(a)
            };
        }
    }
}

/// (cluster, node) indices of a placement's answer; `usize::MAX` for a
/// node the federation does not have, so the start is refused and counted.
fn locate(fed: &Federation, cluster: &str, nodes: &[String]) -> (usize, usize) {
    let c = fed.cluster_index(cluster).unwrap_or(usize::MAX);
    match nodes.first().and_then(|id| fed.locate(id)) {
        Some((nc, node)) if nc == c => (c, node),
        _ => (c, usize::MAX),
    }
}

impl Scheduler for Raybroker {
    fn name(&self) -> &'static str {
        "raybroker"
    }

    fn choose(&mut self, job: &Task, fed: &Federation) -> Choice {
        match place(&job.resources, &Placement::default(), fed.views()) {
            Decision::Place { cluster, nodes } => {
                let (cluster, node) = locate(fed, &cluster, &nodes);
                Choice::Start { cluster, node }
            }
            Decision::Wait { .. } => Choice::Wait,
            Decision::Never { .. } => Choice::Never,
        }
    }

    fn plans_queue(&self) -> bool {
        true
    }

    fn plan_queue(
        &mut self,
        now_ms: u64,
        queue: &[Queued],
        tasks: &[Task],
        fed: &Federation,
    ) -> QueuePlan {
        let heads = self.heads(queue, tasks);
        let usage = self.usage();
        let problem = Problem {
            now_ms,
            jobs: &heads,
            clusters: fed.views(),
            policy: &self.policy,
            usage: &usage,
        };
        let answer = match self.time_limits {
            TimeLimits::None => plan(&problem),
            _ => plan_with_releases(&problem, &self.releases),
        };
        let mut decided = QueuePlan::default();
        let task_of = |id: &str| id.parse::<usize>().ok();
        for placed in &answer.placed {
            if let Some(job) = task_of(&placed.job_id) {
                let (cluster, node) = locate(fed, &placed.cluster, &placed.nodes);
                decided.start.push((job, cluster, node));
            }
        }
        for waiting in &answer.waiting {
            match &waiting.reason {
                WaitReason::NeverFits { .. } => decided.never.extend(task_of(&waiting.job_id)),
                WaitReason::BurstWaitBound { until_ms } => {
                    decided.wake_at_ms =
                        Some(decided.wake_at_ms.map_or(*until_ms, |w| w.min(*until_ms)));
                }
                _ => {}
            }
        }
        decided
    }

    fn started(&mut self, task: &Task, start: &Started, fed: &Federation) {
        self.count(task, start.tier, true);
        self.track(task, start, fed);
    }

    fn ended(&mut self, job: usize, task: &Task, tier: u32) {
        self.count(task, tier, false);
        self.untrack(job);
    }
}

#[cfg(test)]
mod tests {
    use raybroker_core::Quantity;

    use super::*;
    use crate::testkit::{fed, job, spec, task};

    fn queued(jobs: &[usize]) -> Vec<Queued> {
        jobs.iter()
            .map(|j| Queued {
                job: *j,
                enqueued_ms: *j as u64,
            })
            .collect()
    }

    #[test]
    fn only_each_tenants_oldest_jobs_are_passed() {
        let count = MAX_HEAD_PER_TENANT + 6;
        let mut tasks: Vec<Task> = (0..count)
            .map(|i| task(i, job(Quantity::whole(1), ""), 0, 1))
            .collect();
        for t in tasks.iter_mut().skip(count - 10) {
            t.tenant = "t1".to_string();
        }
        let mut rb = Raybroker::new(EngineConfig::default());
        let queue = queued(&(0..count).collect::<Vec<_>>());
        let heads = rb.heads(&queue, &tasks);
        // t0 has MAX - 4 jobs, t1 10: all fit under the head.
        assert_eq!(heads.len(), count);
        for t in tasks.iter_mut() {
            t.tenant = "t0".to_string();
        }
        rb.tenant_of.clear();
        let heads = rb.heads(&queue, &tasks);
        assert_eq!(heads.len(), MAX_HEAD_PER_TENANT);
        let last = format!("{:010}", MAX_HEAD_PER_TENANT - 1);
        assert_eq!(heads.last().map(|h| h.id.as_str()), Some(last.as_str()));
    }

    #[test]
    fn plans_start_refuse_and_follow_fair_share() {
        let fed = fed(&[spec("a", 0, &[("a0", Some("G2"), 2)])]);
        let mut tasks: Vec<Task> = (0..4)
            .map(|i| task(i, job(Quantity::whole(1), ""), 0, 1))
            .collect();
        tasks[1].resources = job(Quantity::whole(1), "A10");
        tasks[3].tenant = "t1".to_string();
        let mut rb = Raybroker::new(EngineConfig::default());
        // t0 already runs job 0 on the node: one GPU is left.
        let mut fed = fed;
        fed.start(&tasks[0].resources, 0, 0).unwrap();
        let start = Started {
            job: 0,
            cluster: 0,
            node: 0,
            tier: 0,
            at_ms: 0,
        };
        rb.started(&tasks[0], &start, &fed);
        let plan = rb.plan_queue(10, &queued(&[1, 2, 3]), &tasks, &fed);
        assert_eq!(plan.never, [1], "no A10 anywhere");
        // Job 2 (t0) is older, but t1 holds nothing: fair share starts job 3.
        assert_eq!(plan.start, [(3, 0, 0)]);
        rb.ended(0, &tasks[0], 0);
        assert!(rb.usage().by_tenant["t0"].total.gpus.is_zero());
    }
}
