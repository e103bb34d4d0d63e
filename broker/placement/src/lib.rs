//! Where queued jobs should run: a pure, deterministic function of the jobs,
//! the clusters' snapshots and the policy. No async, no IO: the loops gather
//! the inputs, call [`plan`], and act on its answer (quickwit's
//! `solve(problem, previous)` is the model).
//!
//! - [`static_fit`] (`fit`): could a cluster ever run the job (constraints,
//!   backend capabilities, node shapes, GPU models, node count)?
//! - `capacity`: can it start now, on which nodes; an index by GPU model
//!   and free GPUs keeps a decision independent of the number of nodes.
//! - `score`: among nodes and clusters that can start it, the lowest tier,
//!   then the least GPU fragmentation (FGD), then cost, then the tightest fit.
//! - `fairness`: heads of tenants' queues (at most [`MAX_HEAD_PER_TENANT`]
//!   each, and [`MAX_HEAD_PER_SHAPE`] of each kind of job), aging, weighted
//!   DRF across tenants, quotas.
//! - [`plan`] (`plan`): reservations, tiers and bursting, the decisions;
//!   [`verify`] checks its post-conditions, [`explain`] says why.
//! - `forecast`: [`plan_with_releases`] also knows what running jobs give
//!   back by their time limits ([`Release`]), and bursts a job at once when
//!   no lower tier will have room for it within its wait bound.
//!
//! [`place`] and [`reserve`] are the one-job interface the dispatch loop
//! used before plans: `place` is a plan of one job under a permissive policy.

mod capacity;
mod decide;
mod explain;
mod fairness;
mod fit;
mod forecast;
mod need;
mod plan;
mod score;
mod types;
mod verify;

use std::collections::BTreeMap;

use raybroker_adapter::{Capabilities, CapacitySnapshot};
use raybroker_core::{Placement, Resources};

pub use explain::{
    explain, explain_with_releases, ClusterExplanation, ClusterVerdict, Explanation, Outcome,
};
pub use fairness::{effective_priority, MAX_HEAD_PER_TENANT};
pub use fit::static_fit;
pub use forecast::{releases_of_running, Release, RunningJob};
pub use plan::{plan, plan_with_releases, MAX_HEAD_PER_SHAPE, MAX_RESERVATIONS};
pub use score::ScoreComponents;
pub use types::{
    PendingJob, Placed, Plan, Policy, Problem, Quota, Reserved, TenantPolicy, TenantUsage, Totals,
    Usage, WaitReason, Waiting,
};
pub use verify::{verify, verify_with_releases};

/// One cluster as placement sees it.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// Configured name.
    pub name: String,
    /// 0 = on-prem, higher = burst tiers.
    pub tier: u32,
    /// Cost of one GPU-hour: among equally good fits, the cheaper cluster.
    pub cost_per_gpu_hour: f64,
    /// Configured labels, matched against `placement.required_labels`.
    pub labels: BTreeMap<String, String>,
    /// What the backend can honour.
    pub capabilities: Capabilities,
    /// The last snapshot seen, fresh or not (for static feasibility).
    pub snapshot: Option<CapacitySnapshot>,
    /// False when the snapshot is stale or the cluster is unhealthy: the
    /// cluster takes no new jobs until it answers again.
    pub fresh: bool,
    /// Jobs the cluster may hold pending beyond what starts now.
    pub pending_allowance: u32,
}

impl ClusterView {
    /// True when the cluster takes new jobs now: a fresh snapshot and no
    /// more pending jobs than its allowance. Only such a cluster holds a job
    /// back from bursting to a higher tier before its wait bound.
    pub fn takes_jobs(&self) -> bool {
        self.fresh
            && self
                .snapshot
                .as_ref()
                .is_some_and(|s| s.pending_jobs <= self.pending_allowance)
    }
}

/// Where one job should go, or why it cannot go anywhere now.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Start it on `cluster`, on these nodes.
    Place {
        /// The chosen cluster.
        cluster: String,
        /// The nodes whose free capacity the job takes (one per job node).
        nodes: Vec<String>,
    },
    /// Some cluster could run it, none can start it now.
    Wait {
        /// Per cluster, why not now (then why never, for the others).
        reasons: Vec<(String, String)>,
    },
    /// No cluster could ever run it.
    Never {
        /// Per cluster, why not.
        reasons: Vec<(String, String)>,
    },
}

/// Decides where one job goes, alone: the lowest tier that can start it now
/// (bursting at once when none lower can), then the best fit. A plan of one
/// job with no quotas, aging or reservations. Deterministic.
pub fn place(resources: &Resources, placement: &Placement, clusters: &[ClusterView]) -> Decision {
    let job = PendingJob {
        id: "job".to_string(),
        tenant: String::new(),
        priority: 0,
        enqueued_at_ms: 0,
        resources: resources.clone(),
        placement: placement.clone(),
        max_wait_ms: Some(0),
    };
    let policy = Policy {
        tenants: BTreeMap::new(),
        default_tenant: TenantPolicy {
            max_wait_ms: 0,
            ..TenantPolicy::default()
        },
        aging_ms_per_priority: 0,
        reserve_after_ms: 0,
    };
    let problem = Problem {
        now_ms: 0,
        jobs: std::slice::from_ref(&job),
        clusters,
        policy: &policy,
        usage: &Usage::default(),
    };
    let mut plan = plan(&problem);
    if let Some(placed) = plan.placed.pop() {
        return Decision::Place {
            cluster: placed.cluster,
            nodes: placed.nodes,
        };
    }
    let reason = plan.waiting.pop().map(|w| w.reason);
    match reason {
        Some(WaitReason::NeverFits { per_cluster }) => Decision::Never {
            reasons: per_cluster,
        },
        Some(WaitReason::Capacity {
            mut per_cluster, ..
        }) => {
            for cluster in clusters {
                if let Err(why) = static_fit(resources, placement, cluster) {
                    per_cluster.push((cluster.name.clone(), why));
                }
            }
            Decision::Wait {
                reasons: per_cluster,
            }
        }
        // Not with this policy (no quotas, bursting at once), but total.
        Some(other) => Decision::Wait {
            reasons: vec![(String::new(), other.to_string())],
        },
        None => Decision::Never {
            reasons: Vec::new(),
        },
    }
}

/// Takes a placed job's resources off the chosen nodes' free capacity, so
/// later decisions see what is left. The job was placed on free capacity,
/// so it starts rather than waits: the cluster's pending count is unchanged.
pub fn reserve(snapshot: &mut CapacitySnapshot, resources: &Resources, nodes: &[String]) {
    for node in snapshot.nodes.iter_mut().filter(|n| nodes.contains(&n.id)) {
        let free = &mut node.free;
        free.cpus = free.cpus.checked_sub(resources.cpus).unwrap_or_default();
        free.gpus = free.gpus.checked_sub(resources.gpus).unwrap_or_default();
        free.memory.0 = free.memory.0.saturating_sub(resources.memory.0);
        for (name, amount) in &resources.custom {
            if let Some(have) = free.custom.get_mut(name) {
                *have = have.checked_sub(*amount).unwrap_or_default();
            }
        }
    }
}
