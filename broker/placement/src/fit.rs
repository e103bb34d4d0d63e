//! Static feasibility: could a cluster ever run a job, whatever is free?
//!
//! Constraints (allowed and denied clusters, required labels), what the
//! backend can honour, and whether enough nodes have the job's shape (CPUs,
//! memory, GPUs of an accepted model, custom resources) in total. Dynamic
//! feasibility, whether it can start now, lives in [`crate::capacity`].

use std::collections::BTreeSet;

use raybroker_adapter::{CapacitySnapshot, NodeCapacity, NodeResources};
use raybroker_core::{Placement, Quantity, Resources};

use crate::ClusterView;

/// Why `cluster` could never run the job, or `Ok` when it could. A cluster
/// never seen yet (no snapshot) is given the benefit of the doubt.
pub fn static_fit(
    resources: &Resources,
    placement: &Placement,
    cluster: &ClusterView,
) -> Result<(), String> {
    constraints_allow(resources, placement, cluster)?;
    let Some(snapshot) = &cluster.snapshot else {
        return Ok(());
    };
    let shaped = snapshot
        .nodes
        .iter()
        .filter(|n| node_fits(resources, n, &n.total))
        .count();
    if shaped < resources.nodes as usize {
        return Err(explain_shape(resources, snapshot));
    }
    Ok(())
}

/// The cheap part of [`static_fit`]: the job's constraints and what the
/// backend can honour, without looking at nodes.
pub(crate) fn constraints_allow(
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
            .collect::<BTreeSet<_>>()
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

/// True when `node`, with `available` resources, can hold one node of the
/// job: an accepted GPU model (a node of unknown model only for jobs that
/// accept any), and enough of every resource.
pub(crate) fn node_fits(
    resources: &Resources,
    node: &NodeCapacity,
    available: &NodeResources,
) -> bool {
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
