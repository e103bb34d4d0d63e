//! Who goes first, and who may not go at all.
//!
//! - Within a tenant: effective priority (the job's priority plus one per
//!   `aging_ms_per_priority` waited, so a low priority job eventually
//!   overtakes newer high priority ones and never starves), then age.
//! - Across tenants: weighted dominant-resource fair share (DRF, Ghodsi et
//!   al., NSDI 2011). A tenant's dominant share is the largest fraction it
//!   holds of the federation's GPUs, CPUs or memory, divided by its weight;
//!   the tenant with the smallest share goes next, and its share is
//!   recomputed after each job the plan places for it. Aging works across
//!   tenants too: a job that has waited one aging step goes before the
//!   fair-share order, oldest first (see [`crate::plan`]), so DRF orders
//!   the jobs that just arrived and defers none by more than a step.
//! - Quotas: what a tenant has in flight plus what the plan has placed for
//!   it, overall and per tier, never exceeds its quota.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use crate::types::{PendingJob, Policy, Problem, TenantPolicy, TenantUsage, Totals, Usage};

/// The most jobs of one tenant a plan considers: the head of its queue by
/// effective priority, then age. This bounds a plan's work whatever the
/// depth of the queues, and is what the dispatch loop peeks per tenant. Of
/// these, a plan considers at most [`crate::MAX_HEAD_PER_SHAPE`] of each
/// kind, so a deep head of one stuck kind costs little and hides nothing.
pub const MAX_HEAD_PER_TENANT: usize = 1024;

/// A job's priority plus one for every `aging_ms_per_priority` it has
/// waited (0 = no aging).
pub fn effective_priority(job: &PendingJob, now_ms: u64, aging_ms_per_priority: u64) -> i64 {
    let aged = match aging_ms_per_priority {
        0 => 0,
        step => (job.waited_ms(now_ms) / step).min(i64::MAX as u64 / 2) as i64,
    };
    i64::from(job.priority).saturating_add(aged)
}

/// Queue order within a tenant: effective priority (high first), then age
/// (old first), then id, so the order is total.
pub(crate) fn queue_order(a: &PendingJob, b: &PendingJob, now_ms: u64, aging: u64) -> Ordering {
    effective_priority(b, now_ms, aging)
        .cmp(&effective_priority(a, now_ms, aging))
        .then(a.enqueued_at_ms.cmp(&b.enqueued_at_ms))
        .then(a.id.cmp(&b.id))
}

/// The considered head of each tenant's queue: indices into `problem.jobs`,
/// in queue order, at most [`MAX_HEAD_PER_TENANT`] per tenant. One pass over
/// the jobs, keeping each tenant's best so far in a bounded heap: most jobs
/// cost one comparison with the worst of the kept ones.
pub(crate) fn heads<'a>(problem: &Problem<'a>) -> BTreeMap<&'a str, Vec<usize>> {
    /// Queue order as a key: effective priority (high first), age, id.
    type Key<'k> = (Reverse<i64>, u64, &'k str, usize);
    let (now, aging) = (problem.now_ms, problem.policy.aging_ms_per_priority);
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    let mut kept: Vec<(&'a str, BinaryHeap<Key<'a>>)> = Vec::new();
    let mut last: Option<(&'a str, usize)> = None;
    for (i, job) in problem.jobs.iter().enumerate() {
        let slot = match last {
            Some((tenant, slot)) if tenant == job.tenant => slot,
            _ => *index.entry(&job.tenant).or_insert_with(|| {
                kept.push((&job.tenant, BinaryHeap::new()));
                kept.len() - 1
            }),
        };
        last = Some((&job.tenant, slot));
        let key = (
            Reverse(effective_priority(job, now, aging)),
            job.enqueued_at_ms,
            job.id.as_str(),
            i,
        );
        let heap = &mut kept[slot].1;
        if heap.len() < MAX_HEAD_PER_TENANT {
            heap.push(key);
        } else if heap.peek().is_some_and(|worst| key < *worst) {
            heap.pop();
            heap.push(key);
        }
    }
    kept.into_iter()
        .map(|(tenant, heap)| {
            let list = heap.into_sorted_vec().into_iter().map(|k| k.3).collect();
            (tenant, list)
        })
        .collect()
}

/// A job's 1-based place in its tenant's queue.
pub(crate) fn tenant_position(problem: &Problem, job: &PendingJob) -> usize {
    let (now, aging) = (problem.now_ms, problem.policy.aging_ms_per_priority);
    1 + problem
        .jobs
        .iter()
        .filter(|other| other.tenant == job.tenant)
        .filter(|other| queue_order(other, job, now, aging) == Ordering::Less)
        .count()
}

/// A tenant's weight, with a non-positive or non-finite one (which config
/// validation refuses) read as the smallest possible.
pub(crate) fn weight(policy: &TenantPolicy) -> f64 {
    if policy.weight.is_finite() && policy.weight > 0.0 {
        policy.weight
    } else {
        f64::MIN_POSITIVE
    }
}

/// A weighted dominant share, totally ordered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Share(pub f64);

impl Eq for Share {}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What each tenant has in flight during a plan: the problem's usage plus
/// what the plan has placed so far.
pub(crate) struct Ledger<'a> {
    policy: &'a Policy,
    base: &'a Usage,
    added: BTreeMap<&'a str, TenantUsage>,
    /// The federation's GPUs and CPUs (units) and memory (bytes), over every
    /// node of every cluster with a snapshot.
    capacity: [f64; 3],
}

impl<'a> Ledger<'a> {
    /// The ledger at the start of a plan.
    pub(crate) fn new(problem: &Problem<'a>) -> Ledger<'a> {
        let mut capacity = [0.0; 3];
        for node in problem
            .clusters
            .iter()
            .filter_map(|c| c.snapshot.as_ref())
            .flat_map(|s| s.nodes.iter())
        {
            capacity[0] += node.total.gpus.units() as f64;
            capacity[1] += node.total.cpus.units() as f64;
            capacity[2] += node.total.memory.0 as f64;
        }
        Ledger {
            policy: problem.policy,
            base: problem.usage,
            added: BTreeMap::new(),
            capacity,
        }
    }

    /// In flight for `tenant`, overall or on one tier.
    pub(crate) fn used(&self, tenant: &str, tier: Option<u32>) -> Totals {
        let pick = |usage: &TenantUsage| match tier {
            None => usage.total,
            Some(t) => usage.by_tier.get(&t).copied().unwrap_or_default(),
        };
        let base = self
            .base
            .by_tenant
            .get(tenant)
            .map(pick)
            .unwrap_or_default();
        let added = self.added.get(tenant).map(pick).unwrap_or_default();
        base.plus(added)
    }

    /// The tenant's dominant share divided by its weight.
    pub(crate) fn share(&self, tenant: &str) -> f64 {
        let used = self.used(tenant, None);
        let held = [
            used.gpus.units() as f64,
            used.cpus.units() as f64,
            used.memory.0 as f64,
        ];
        let dominant = held
            .iter()
            .zip(self.capacity)
            .filter(|(_, capacity)| *capacity > 0.0)
            .map(|(held, capacity)| held / capacity)
            .fold(0.0, f64::max);
        dominant / weight(self.policy.tenant(tenant))
    }

    /// Why starting `asked` for `tenant` would break its overall quota
    /// (`tier: None`) or its quota on `tier`, or `None`.
    pub(crate) fn breach(&self, tenant: &str, tier: Option<u32>, asked: Totals) -> Option<String> {
        let policy = self.policy.tenant(tenant);
        let quota = match tier {
            None => &policy.quota,
            Some(t) => policy.tier_quotas.get(&t)?,
        };
        quota.breach(self.used(tenant, tier), asked)
    }

    /// Counts a job the plan placed.
    pub(crate) fn add(&mut self, tenant: &'a str, tier: u32, amount: Totals) {
        let usage = self.added.entry(tenant).or_default();
        usage.total = usage.total.plus(amount);
        let on_tier = usage.by_tier.entry(tier).or_default();
        *on_tier = on_tier.plus(amount);
    }
}

#[cfg(test)]
mod tests {
    use raybroker_core::{Placement, Quantity, Resources};

    use super::*;

    fn job(id: &str, priority: i32, enqueued_at_ms: u64) -> PendingJob {
        PendingJob {
            id: id.into(),
            tenant: "t".into(),
            priority,
            enqueued_at_ms,
            resources: Resources::default(),
            placement: Placement::default(),
            max_wait_ms: None,
        }
    }

    #[test]
    fn aging_bounds_how_long_newer_high_priority_jobs_overtake() {
        let minute = 60_000;
        let old_low = job("old", 0, 0);
        // Five priority steps ahead, submitted within five minutes: first.
        let soon_high = job("soon", 5, 4 * minute);
        // Submitted more than five minutes later: the old job has aged past it.
        let late_high = job("late", 5, 6 * minute);
        let now = 7 * minute;
        assert_eq!(
            queue_order(&soon_high, &old_low, now, minute),
            Ordering::Less
        );
        assert_eq!(
            queue_order(&old_low, &late_high, now, minute),
            Ordering::Less
        );
        assert_eq!(effective_priority(&old_low, now, minute), 7);
        // Without aging, priority alone decides.
        assert_eq!(queue_order(&late_high, &old_low, now, 0), Ordering::Less);
        assert_eq!(effective_priority(&old_low, now, 0), 0);
    }

    #[test]
    fn heads_are_bounded_and_in_queue_order() {
        let count = MAX_HEAD_PER_TENANT as u64 + 200;
        let jobs: Vec<PendingJob> = (0..count)
            .map(|i| job(&format!("j{i:04}"), (i % 7) as i32, 2_000 - i))
            .collect();
        let policy = Policy {
            aging_ms_per_priority: 0,
            ..Policy::default()
        };
        let problem = Problem {
            now_ms: 2_000,
            jobs: &jobs,
            clusters: &[],
            policy: &policy,
            usage: &Usage::default(),
        };
        let heads = heads(&problem);
        let list = &heads["t"];
        assert_eq!(list.len(), MAX_HEAD_PER_TENANT);
        for pair in list.windows(2) {
            assert_eq!(
                queue_order(&jobs[pair[0]], &jobs[pair[1]], 2_000, 0),
                Ordering::Less
            );
        }
        // Everything left out ranks after the last one kept.
        let last = &jobs[*list.last().unwrap()];
        let kept: std::collections::BTreeSet<usize> = list.iter().copied().collect();
        for (i, other) in jobs.iter().enumerate().filter(|(i, _)| !kept.contains(i)) {
            assert_eq!(queue_order(last, other, 2_000, 0), Ordering::Less, "{i}");
        }
        assert_eq!(tenant_position(&problem, &jobs[list[10]]), 11);
    }

    #[test]
    fn shares_are_dominant_and_weighted() {
        let mut policy = Policy::default();
        policy.tenants.insert(
            "heavy".into(),
            TenantPolicy {
                weight: 2.0,
                ..TenantPolicy::default()
            },
        );
        let mut usage = Usage::default();
        let gpus = |g: u64, c: u64| Totals {
            gpus: Quantity::whole(g),
            cpus: Quantity::whole(c),
            ..Totals::default()
        };
        usage.add("heavy", 0, gpus(4, 1));
        usage.add("light", 0, gpus(0, 8));
        let problem = Problem {
            now_ms: 0,
            jobs: &[],
            clusters: &[],
            policy: &policy,
            usage: &usage,
        };
        let mut ledger = Ledger::new(&problem);
        ledger.capacity = [8.0 * 1e4, 16.0 * 1e4, 0.0];
        // heavy: max(4/8, 1/16) / 2 = 0.25; light: 8/16 = 0.5.
        assert_eq!(ledger.share("heavy"), 0.25);
        assert_eq!(ledger.share("light"), 0.5);
        ledger.add("heavy", 1, gpus(4, 0));
        assert_eq!(ledger.share("heavy"), 0.5);
        assert_eq!(ledger.used("heavy", Some(1)), gpus(4, 0));
        assert_eq!(ledger.used("heavy", None), gpus(8, 1));
    }

    #[test]
    fn quotas_bind_overall_and_per_tier() {
        let mut policy = Policy::default();
        let tenant = policy.tenants.entry("t".into()).or_default();
        tenant.quota.gpus = Some(Quantity::whole(8));
        tenant.tier_quotas.insert(
            1,
            crate::Quota {
                gpus: Some(Quantity::whole(2)),
                ..Default::default()
            },
        );
        let mut usage = Usage::default();
        let g = |n| Totals {
            gpus: Quantity::whole(n),
            ..Totals::default()
        };
        usage.add("t", 0, g(6));
        let problem = Problem {
            now_ms: 0,
            jobs: &[],
            clusters: &[],
            policy: &policy,
            usage: &usage,
        };
        let ledger = Ledger::new(&problem);
        assert_eq!(ledger.breach("t", None, g(2)), None);
        let over = ledger.breach("t", None, g(3)).unwrap();
        assert!(
            over.contains("gpus: 6 in flight + 3 asked > quota 8"),
            "{over}"
        );
        assert!(ledger.breach("t", Some(1), g(3)).is_some());
        assert_eq!(ledger.breach("t", Some(0), g(3)), None);
    }
}
