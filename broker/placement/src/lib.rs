//! Where a job should run: a pure, deterministic function of the job, the
//! clusters' snapshots and their configuration. No async, no IO: the loops
//! gather the inputs, call [`place`], and act on its answer.
//!
//! This is the sound best-fit the dispatch loop needs today:
//! - [`static_fit`]: could the cluster ever run the job (constraints, backend
//!   capabilities, node shapes, GPU models, node count)?
//! - dynamic fit: can it start now on free capacity, within the cluster's
//!   admission allowance for pending jobs?
//! - among clusters that can start it now: lowest tier first (on-prem before
//!   cloud burst), then the tightest fit (fewest GPUs, then CPUs, left idle on
//!   the chosen nodes), then cost, then name for determinism.

use std::collections::BTreeMap;

use raybroker_adapter::{Capabilities, CapacitySnapshot, NodeCapacity, NodeResources};
use raybroker_core::{Placement, Quantity, Resources};

/// One cluster as placement sees it.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// Configured name.
    pub name: String,
    /// 0 = on-prem, higher = burst tiers.
    pub tier: u32,
    /// Cost of one GPU-hour, for ties.
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
        /// Per cluster, why not now.
        reasons: Vec<(String, String)>,
    },
    /// No cluster could ever run it.
    Never {
        /// Per cluster, why not.
        reasons: Vec<(String, String)>,
    },
}

/// Why `cluster` could never run the job, or `Ok` when it could. A cluster
/// never seen yet (no snapshot) is given the benefit of the doubt.
pub fn static_fit(
    resources: &Resources,
    placement: &Placement,
    cluster: &ClusterView,
) -> Result<(), String> {
    if !placement.allowed_clusters.is_empty() && !placement.allowed_clusters.contains(&cluster.name)
    {
        return Err("not in placement.allowed_clusters".to_string());
    }
    if placement.denied_clusters.contains(&cluster.name) {
        return Err("in placement.denied_clusters".to_string());
    }
    for (key, value) in &placement.required_labels {
        match cluster.labels.get(key) {
            Some(v) if v == value => {}
            Some(v) => return Err(format!("label {key}={v}, job requires {key}={value}")),
            None => return Err(format!("no label {key}, job requires {key}={value}")),
        }
    }
    if let Some(why) = cluster.capabilities.refuses(resources) {
        return Err(why);
    }
    let Some(snapshot) = &cluster.snapshot else {
        return Ok(());
    };
    let shaped: Vec<&NodeCapacity> = snapshot
        .nodes
        .iter()
        .filter(|n| node_fits(resources, n, &n.total))
        .collect();
    if shaped.len() < resources.nodes as usize {
        return Err(explain_shape(resources, snapshot));
    }
    Ok(())
}

fn explain_shape(resources: &Resources, snapshot: &CapacitySnapshot) -> String {
    if snapshot.nodes.is_empty() {
        return "has no live nodes".to_string();
    }
    if !resources.gpus.is_zero() && !resources.gpu_types.is_empty() {
        let models: Vec<String> = snapshot
            .nodes
            .iter()
            .filter_map(|n| n.gpu_model.as_ref().map(|m| m.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !snapshot.nodes.iter().any(|n| {
            n.gpu_model
                .as_ref()
                .is_some_and(|m| resources.accepts_gpu(m))
        }) {
            let wanted: Vec<String> = resources.gpu_types.iter().map(|m| m.to_string()).collect();
            return format!(
                "has no GPU of model {} (it has: {})",
                wanted.join("|"),
                if models.is_empty() {
                    "none".to_string()
                } else {
                    models.join(", ")
                }
            );
        }
    }
    let max = |f: fn(&NodeResources) -> Quantity| {
        snapshot
            .nodes
            .iter()
            .map(|n| f(&n.total))
            .max()
            .unwrap_or_default()
    };
    let max_mem = snapshot
        .nodes
        .iter()
        .map(|n| n.total.memory)
        .max()
        .unwrap_or_default();
    format!(
        "no {} node(s) with {} CPUs, {} memory, {} GPUs{} (largest node: {} CPUs, {} memory, {} GPUs)",
        resources.nodes,
        resources.cpus,
        resources.memory,
        resources.gpus,
        if resources.custom.is_empty() { String::new() } else { " and the custom resources".to_string() },
        max(|r| r.cpus),
        max_mem,
        max(|r| r.gpus),
    )
}

/// True when `node`, with `available` resources, can hold one node of the job.
fn node_fits(resources: &Resources, node: &NodeCapacity, available: &NodeResources) -> bool {
    if !resources.gpus.is_zero() {
        match &node.gpu_model {
            Some(model) if resources.accepts_gpu(model) => {}
            Some(_) => return false,
            None if resources.gpu_types.is_empty() => {}
            None => return false,
        }
    }
    available.cpus >= resources.cpus
        && available.memory >= resources.memory
        && available.gpus >= resources.gpus
        && resources.custom.iter().all(|(name, amount)| {
            available.custom.get(name).copied().unwrap_or_default() >= *amount
        })
}

/// The nodes that can start the job now, tightest first, or `None`.
fn choose_nodes(
    resources: &Resources,
    snapshot: &CapacitySnapshot,
) -> Option<(Vec<String>, (Quantity, Quantity))> {
    let mut fits: Vec<&NodeCapacity> = snapshot
        .nodes
        .iter()
        .filter(|n| node_fits(resources, n, &n.free))
        .collect();
    if fits.len() < resources.nodes as usize {
        return None;
    }
    // Tightest first: leave the fewest GPUs, then CPUs, idle on a node, so
    // whole free nodes stay whole for the jobs that need them.
    fits.sort_by_key(|n| {
        (
            n.free.gpus.checked_sub(resources.gpus).unwrap_or_default(),
            n.free.cpus.checked_sub(resources.cpus).unwrap_or_default(),
            n.id.clone(),
        )
    });
    let chosen: Vec<&NodeCapacity> = fits.into_iter().take(resources.nodes as usize).collect();
    let leftover_gpus = chosen
        .iter()
        .map(|n| n.free.gpus.checked_sub(resources.gpus).unwrap_or_default())
        .fold(Quantity::ZERO, |a, b| a.checked_add(b).unwrap_or(a));
    let leftover_cpus = chosen
        .iter()
        .map(|n| n.free.cpus.checked_sub(resources.cpus).unwrap_or_default())
        .fold(Quantity::ZERO, |a, b| a.checked_add(b).unwrap_or(a));
    Some((
        chosen.iter().map(|n| n.id.clone()).collect(),
        (leftover_gpus, leftover_cpus),
    ))
}

/// How candidate clusters rank, smallest first: tier, GPUs left idle, CPUs
/// left idle, cost, name.
type RankKey = (u32, Quantity, Quantity, u64, String);

/// Decides where one job goes. Deterministic for equal inputs.
pub fn place(resources: &Resources, placement: &Placement, clusters: &[ClusterView]) -> Decision {
    let mut never = Vec::new();
    let mut wait = Vec::new();
    let mut best: Option<(RankKey, Vec<String>)> = None;
    for cluster in clusters {
        if let Err(why) = static_fit(resources, placement, cluster) {
            never.push((cluster.name.clone(), why));
            continue;
        }
        let snapshot = match (&cluster.snapshot, cluster.fresh) {
            (Some(s), true) => s,
            _ => {
                wait.push((
                    cluster.name.clone(),
                    "no fresh capacity snapshot (cluster unreachable or not polled yet)"
                        .to_string(),
                ));
                continue;
            }
        };
        if snapshot.pending_jobs > cluster.pending_allowance {
            wait.push((
                cluster.name.clone(),
                format!(
                    "already holds {} pending jobs (allowance {})",
                    snapshot.pending_jobs, cluster.pending_allowance
                ),
            ));
            continue;
        }
        let Some((nodes, (gpus_left, cpus_left))) = choose_nodes(resources, snapshot) else {
            wait.push((
                cluster.name.clone(),
                "not enough free capacity now".to_string(),
            ));
            continue;
        };
        // Cost as an integer (milli-units per GPU-hour) keeps the key totally ordered.
        let cost = (cluster.cost_per_gpu_hour.max(0.0) * 1000.0) as u64;
        let key = (
            cluster.tier,
            gpus_left,
            cpus_left,
            cost,
            cluster.name.clone(),
        );
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, nodes));
        }
    }
    match best {
        Some((key, nodes)) => Decision::Place {
            cluster: key.4,
            nodes,
        },
        None if wait.is_empty() => Decision::Never { reasons: never },
        None => {
            wait.extend(never);
            Decision::Wait { reasons: wait }
        }
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

#[cfg(test)]
mod tests;
