//! The problem [`crate::plan`] solves and the plan it answers with.
//!
//! Everything here is plain data: the loops (dispatch, the trace replay)
//! build a [`Problem`] from what they gathered and act on the [`Plan`].

use std::collections::BTreeMap;

use raybroker_core::{Bytes, Job, JobState, Placement, Quantity, Resources};
use serde::Serialize;

use crate::ClusterView;

/// A queued job as placement sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingJob {
    /// The job's id; unique within one problem.
    pub id: String,
    /// The tenant it belongs to, looked up in [`Policy::tenants`].
    pub tenant: String,
    /// Higher runs first within a tenant (-1000 to 1000); aging adds to it.
    pub priority: i32,
    /// When it entered the queue, ms since the epoch. Waiting time drives
    /// aging, the wait bound before bursting, and reservations.
    pub enqueued_at_ms: u64,
    /// What it needs per node, times `resources.nodes`.
    pub resources: Resources,
    /// Which clusters it may run on.
    pub placement: Placement,
    /// How long it waits for its lowest feasible tier before it may burst;
    /// `None` takes the tenant's [`TenantPolicy::max_wait_ms`].
    pub max_wait_ms: Option<u64>,
}

impl PendingJob {
    /// A queued job as stored by the broker. Its wait counts from its
    /// submission or its latest retry; a lease given back to the queue (a
    /// cluster was unreachable at submit) does not reset it.
    pub fn from_job(job: &Job) -> PendingJob {
        let enqueued_at_ms = job
            .history
            .iter()
            .rev()
            .find(|t| t.to == JobState::Queued && t.from != Some(JobState::Dispatching))
            .map_or(job.created_at_ms, |t| t.at_ms);
        PendingJob {
            id: job.id.to_string(),
            tenant: job.tenant.to_string(),
            priority: job.spec.priority,
            enqueued_at_ms,
            resources: job.spec.resources.clone(),
            placement: job.spec.placement.clone(),
            max_wait_ms: None,
        }
    }

    /// How long the job has waited at `now_ms`.
    pub fn waited_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.enqueued_at_ms)
    }

    /// Its wait bound before bursting: its own, else its tenant's.
    pub fn wait_bound_ms(&self, policy: &Policy) -> u64 {
        self.max_wait_ms
            .unwrap_or(policy.tenant(&self.tenant).max_wait_ms)
    }

    /// True when it has waited its bound at `now_ms`.
    pub fn waited_out(&self, now_ms: u64, policy: &Policy) -> bool {
        self.waited_ms(now_ms) >= self.wait_bound_ms(policy)
    }

    /// Its demand over all of its nodes, as quotas and fair share count it.
    pub fn demand(&self) -> Totals {
        Totals::of(&self.resources)
    }
}

/// Amounts of the three resources quotas and fair share count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// GPUs.
    pub gpus: Quantity,
    /// CPUs.
    pub cpus: Quantity,
    /// Memory.
    pub memory: Bytes,
}

impl Totals {
    /// What a job asks for over all its nodes (saturating: an absurd
    /// request breaks every finite quota rather than wrapping).
    pub fn of(resources: &Resources) -> Totals {
        let nodes = u64::from(resources.nodes);
        Totals {
            gpus: Quantity::from_units(resources.gpus.units().saturating_mul(nodes)),
            cpus: Quantity::from_units(resources.cpus.units().saturating_mul(nodes)),
            memory: Bytes(resources.memory.0.saturating_mul(nodes)),
        }
    }

    /// The sum, saturating.
    pub fn plus(self, other: Totals) -> Totals {
        Totals {
            gpus: Quantity::from_units(self.gpus.units().saturating_add(other.gpus.units())),
            cpus: Quantity::from_units(self.cpus.units().saturating_add(other.cpus.units())),
            memory: Bytes(self.memory.0.saturating_add(other.memory.0)),
        }
    }
}

/// Upper bounds on what a tenant may have in flight. `None` = unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// GPUs over all in-flight jobs.
    pub gpus: Option<Quantity>,
    /// CPUs over all in-flight jobs.
    pub cpus: Option<Quantity>,
    /// Memory over all in-flight jobs.
    pub memory: Option<Bytes>,
}

impl Quota {
    /// Why adding `asked` to `used` would break this quota, or `None`.
    pub fn breach(&self, used: Totals, asked: Totals) -> Option<String> {
        let after = used.plus(asked);
        if let Some(limit) = self.gpus.filter(|limit| after.gpus > *limit) {
            return Some(format!(
                "gpus: {} in flight + {} asked > quota {limit}",
                used.gpus, asked.gpus
            ));
        }
        if let Some(limit) = self.cpus.filter(|limit| after.cpus > *limit) {
            return Some(format!(
                "cpus: {} in flight + {} asked > quota {limit}",
                used.cpus, asked.cpus
            ));
        }
        if let Some(limit) = self.memory.filter(|limit| after.memory > *limit) {
            return Some(format!(
                "memory: {} in flight + {} asked > quota {limit}",
                used.memory, asked.memory
            ));
        }
        None
    }
}

/// How one tenant is treated.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantPolicy {
    /// Fair-share weight (> 0): a tenant with weight 2 gets twice the
    /// dominant share of one with weight 1 before it yields.
    pub weight: f64,
    /// Quota over all tiers.
    pub quota: Quota,
    /// Quota per tier; a tier not listed is bounded by `quota` only. A tier
    /// quota of zero GPUs keeps the tenant's GPU jobs off that tier.
    pub tier_quotas: BTreeMap<u32, Quota>,
    /// Whether jobs may go above the lowest tier that could ever run them.
    pub burst: bool,
    /// How long a job waits for its lowest feasible tier before it may
    /// burst (a job's own `max_wait_ms` overrides it).
    pub max_wait_ms: u64,
}

impl Default for TenantPolicy {
    /// Weight 1, no quota, bursting after 10 minutes.
    fn default() -> Self {
        TenantPolicy {
            weight: 1.0,
            quota: Quota::default(),
            tier_quotas: BTreeMap::new(),
            burst: true,
            max_wait_ms: 10 * 60 * 1000,
        }
    }
}

/// The scheduling policy over all tenants.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Per-tenant policy by tenant name.
    pub tenants: BTreeMap<String, TenantPolicy>,
    /// For tenants not listed.
    pub default_tenant: TenantPolicy,
    /// Waiting this long adds one to a job's effective priority, so a low
    /// priority job eventually overtakes newer high priority ones; 0 = no aging.
    pub aging_ms_per_priority: u64,
    /// A job that has waited this long and cannot start gets capacity
    /// reserved on its best cluster; 0 = no reservations.
    pub reserve_after_ms: u64,
}

impl Default for Policy {
    /// No tenants listed, one priority step per minute waited, reservations
    /// after 30 minutes.
    fn default() -> Self {
        Policy {
            tenants: BTreeMap::new(),
            default_tenant: TenantPolicy::default(),
            aging_ms_per_priority: 60 * 1000,
            reserve_after_ms: 30 * 60 * 1000,
        }
    }
}

impl Policy {
    /// The policy of `tenant` (the default one when not listed).
    pub fn tenant(&self, tenant: &str) -> &TenantPolicy {
        self.tenants.get(tenant).unwrap_or(&self.default_tenant)
    }
}

/// What one tenant has in flight (submitted or running).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Over all tiers.
    pub total: Totals,
    /// Per tier.
    pub by_tier: BTreeMap<u32, Totals>,
}

/// What every tenant has in flight, the base for quotas and fair share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// By tenant name; a tenant not listed has nothing in flight.
    pub by_tenant: BTreeMap<String, TenantUsage>,
}

impl Usage {
    /// Counts `amount` in flight for `tenant` on a cluster of `tier`.
    pub fn add(&mut self, tenant: &str, tier: u32, amount: Totals) {
        let usage = self.by_tenant.entry(tenant.to_string()).or_default();
        usage.total = usage.total.plus(amount);
        let on_tier = usage.by_tier.entry(tier).or_default();
        *on_tier = on_tier.plus(amount);
    }
}

/// Everything one placement decision looks at.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    /// The time of the decision, ms since the epoch.
    pub now_ms: u64,
    /// The queued jobs, any order, ids unique. Only the first
    /// [`crate::MAX_HEAD_PER_TENANT`] of each tenant's queue (by effective
    /// priority, then age) are considered.
    pub jobs: &'a [PendingJob],
    /// Every configured cluster with its latest snapshot.
    pub clusters: &'a [ClusterView],
    /// Tenants' weights, quotas and bursting.
    pub policy: &'a Policy,
    /// What is already in flight.
    pub usage: &'a Usage,
}

/// A job the plan starts now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placed {
    /// The job.
    pub job_id: String,
    /// Where.
    pub cluster: String,
    /// One node per job node, whose free capacity it takes.
    pub nodes: Vec<String>,
}

/// A considered job the plan does not start now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Waiting {
    /// The job.
    pub job_id: String,
    /// 1 = next in line: its rank among the waiting jobs, in the order the
    /// plan considered them (reservations first, then fair share).
    pub position: usize,
    /// What it waits for.
    pub reason: WaitReason,
}

/// Capacity held back for a job that has waited too long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reserved {
    /// The cluster.
    pub cluster: String,
    /// The nodes whose free capacity, up to the job's shape, is held for it.
    pub nodes: Vec<String>,
}

/// Why a job does not start now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitReason {
    /// Some cluster could run it, none it may use can start it now.
    Capacity {
        /// For each cluster that could ever run it, why not now.
        per_cluster: Vec<(String, String)>,
        /// Capacity held for it, when it has waited past the reservation bound.
        reserved: Option<Reserved>,
    },
    /// Starting it would break one of its tenant's quotas.
    Quota {
        /// The tier whose quota binds; `None` for the overall quota.
        tier: Option<u32>,
        /// Which resource and by how much.
        detail: String,
    },
    /// It would have fitted, but other tenants went first this round and
    /// took the capacity: their jobs that had waited an aging step and were
    /// older, or, before it had waited a step, tenants with a smaller
    /// weighted dominant share.
    FairShare {
        /// Its tenant's weighted dominant share when it was considered.
        dominant_share: f64,
        /// The tenants that took capacity it could have used.
        ahead: Vec<String>,
    },
    /// A higher tier could start it, but it has not waited its bound yet.
    BurstWaitBound {
        /// When it may burst, ms since the epoch.
        until_ms: u64,
    },
    /// It would fit, but only on capacity held for an older job.
    Reservation {
        /// The job holding it.
        for_job: String,
    },
    /// No cluster could ever run it.
    NeverFits {
        /// For every cluster, why not.
        per_cluster: Vec<(String, String)>,
    },
}

/// Which jobs start now and where, and why the others wait.
///
/// A job of `Problem::jobs` that is in neither list was not considered: it
/// is further back in its tenant's queue than [`crate::MAX_HEAD_PER_TENANT`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Jobs to start, in the order they were decided.
    pub placed: Vec<Placed>,
    /// Considered jobs that wait, by position.
    pub waiting: Vec<Waiting>,
}

impl Plan {
    /// Where the plan starts `job_id`, if it does.
    pub fn placement_of(&self, job_id: &str) -> Option<&Placed> {
        self.placed.iter().find(|p| p.job_id == job_id)
    }

    /// Why `job_id` waits, if it was considered and does.
    pub fn waiting_of(&self, job_id: &str) -> Option<&Waiting> {
        self.waiting.iter().find(|w| w.job_id == job_id)
    }
}
