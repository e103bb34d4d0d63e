//! Node capacity from Ray's two views of it.
//!
//! `GET /api/v0/nodes` gives each node's totals under the real resource names;
//! `GET /api/cluster_status` gives `[used, total]` per node, but the dashboard
//! camelCases the names (`gpu_a100` -> `gpuA100`, `accelerator_type:A100` ->
//! `acceleratorType:A100`, `object_store_memory` -> `objectStoreMemory`; it
//! also title-cases letters after digits). Names are matched through
//! [`normalize_resource_name`], which both spellings agree on. Two real names
//! that differ only in case or underscores would be confused; Ray clusters do
//! not declare such pairs in practice.
//!
//! Free amounts are conservative: a node the usage report does not cover yet
//! (it lags about a second) or a resource missing from it counts as fully
//! used, so the broker waits for the next snapshot rather than overfilling.

use std::collections::BTreeMap;

use raybroker_adapter::{NodeCapacity, NodeResources};
use raybroker_core::{Bytes, GpuModel, Quantity};

use crate::client::{LoadMetrics, NodeInfo};

/// Ray's name for CPUs.
const CPU: &str = "CPU";
/// Ray's name for GPUs.
const GPU: &str = "GPU";
/// Ray's name for memory, in bytes.
const MEMORY: &str = "memory";
/// Resources that are neither schedulable by jobs nor custom: the object
/// store and the per-node `node:<ip>` / `node:__internal_head__` markers.
fn is_internal(name: &str) -> bool {
    name == "object_store_memory" || name.starts_with("node:")
}

/// The spelling both the real and the camelCased resource name reduce to:
/// lower case, without underscores.
pub fn normalize_resource_name(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A node's GPU model: from Ray's `accelerator_type:<MODEL>` marker, else from
/// a single `gpu_<model>` custom resource; `None` without GPUs.
pub fn gpu_model_of(resources_total: &BTreeMap<String, f64>) -> Option<GpuModel> {
    if resources_total.get(GPU).is_none_or(|gpus| *gpus <= 0.0) {
        return None;
    }
    let declared = |prefix: &str| -> Vec<GpuModel> {
        resources_total
            .iter()
            .filter(|(_, amount)| **amount > 0.0)
            .filter_map(|(name, _)| name.strip_prefix(prefix))
            .filter_map(|model| GpuModel::parse(model).ok())
            .collect()
    };
    let markers = declared("accelerator_type:");
    if let [model] = markers.as_slice() {
        return Some(model.clone());
    }
    match declared("gpu_").as_slice() {
        [model] if markers.is_empty() => Some(model.clone()),
        _ => None,
    }
}

/// The capacity of the ALIVE nodes among `nodes`, with free amounts from `load`.
pub fn capacity_nodes(nodes: &[NodeInfo], load: &LoadMetrics) -> Vec<NodeCapacity> {
    let alive: Vec<&NodeInfo> = nodes.iter().filter(|n| n.state == "ALIVE").collect();
    alive
        .iter()
        .map(|node| {
            let usage = match &load.usage_by_node {
                Some(by_node) => by_node.get(&node.node_id),
                // Older reports have no per-node usage; the cluster's is the
                // node's only when there is one node.
                None if alive.len() == 1 && !load.usage.is_empty() => Some(&load.usage),
                None => None,
            };
            node_capacity(node, usage)
        })
        .collect()
}

/// One node's totals and free amounts; `usage` is its `{camelName: [used, total]}`.
pub fn node_capacity(node: &NodeInfo, usage: Option<&BTreeMap<String, Vec<f64>>>) -> NodeCapacity {
    let used: Option<BTreeMap<String, f64>> = usage.map(|usage| {
        usage
            .iter()
            .filter_map(|(name, pair)| Some((normalize_resource_name(name), *pair.first()?)))
            .collect()
    });
    let free_of = |name: &str, total: f64| -> f64 {
        let Some(used) = &used else { return 0.0 };
        match used.get(&normalize_resource_name(name)) {
            Some(used) => (total - used).max(0.0),
            None => 0.0,
        }
    };
    let mut total = NodeResources::default();
    let mut free = NodeResources::default();
    for (name, amount) in &node.resources_total {
        let available = free_of(name, *amount);
        match name.as_str() {
            CPU => (total.cpus, free.cpus) = (quantity(*amount), quantity(available)),
            GPU => (total.gpus, free.gpus) = (quantity(*amount), quantity(available)),
            MEMORY => (total.memory, free.memory) = (bytes(*amount), bytes(available)),
            other if is_internal(other) => {}
            other => {
                total.custom.insert(other.to_string(), quantity(*amount));
                free.custom.insert(other.to_string(), quantity(available));
            }
        }
    }
    NodeCapacity {
        id: node.node_id.clone(),
        gpu_model: gpu_model_of(&node.resources_total),
        total,
        free,
    }
}

/// Ray's float amount in fixed point, rounded to Ray's own resolution (0.0001);
/// negative or non-finite amounts read as zero.
pub fn quantity(amount: f64) -> Quantity {
    if !amount.is_finite() || amount <= 0.0 {
        return Quantity::ZERO;
    }
    let units = (amount * 10_000.0).round().min(1e16);
    Quantity::from_units(units as u64)
}

/// Ray's float memory amount in whole bytes.
fn bytes(amount: f64) -> Bytes {
    if !amount.is_finite() || amount <= 0.0 {
        return Bytes(0);
    }
    Bytes(amount.round().min(u64::MAX as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Head A as Ray 2.31 reports it (deploy/local/ray.sh, 4 fake A100s).
    fn head_a() -> NodeInfo {
        NodeInfo {
            node_id: "63708dfc".into(),
            state: "ALIVE".into(),
            resources_total: BTreeMap::from([
                ("node:192.0.2.2".to_string(), 1.0),
                ("GPU".to_string(), 4.0),
                ("memory".to_string(), 21_374_626_509.0),
                ("node:__internal_head__".to_string(), 1.0),
                ("gpu_a100".to_string(), 4.0),
                ("accelerator_type:A100".to_string(), 1.0),
                ("CPU".to_string(), 2.0),
                ("object_store_memory".to_string(), 200_000_000.0),
            ]),
        }
    }

    /// The matching camelCased usage, with one GPU job of 1.5 CPUs running.
    fn usage_a() -> BTreeMap<String, Vec<f64>> {
        BTreeMap::from([
            ("CPU".to_string(), vec![1.5, 2.0]),
            ("node:192.0.2.2".to_string(), vec![0.0, 1.0]),
            ("node:InternalHead".to_string(), vec![0.0, 1.0]),
            ("gpuA100".to_string(), vec![1.0, 4.0]),
            ("acceleratorType:A100".to_string(), vec![0.001, 1.0]),
            ("GPU".to_string(), vec![1.0, 4.0]),
            (
                "memory".to_string(),
                vec![1_073_741_824.0, 21_374_626_509.0],
            ),
            ("objectStoreMemory".to_string(), vec![0.0, 200_000_000.0]),
        ])
    }

    #[test]
    fn camel_cased_names_normalize_like_real_ones() {
        let pairs = [
            ("gpu_a100", "gpuA100"),
            ("accelerator_type:A100", "acceleratorType:A100"),
            ("object_store_memory", "objectStoreMemory"),
            ("my_res_x2y", "myResX2Y"),
            ("node:__internal_head__", "node:InternalHead"),
        ];
        for (real, camel) in pairs {
            assert_eq!(
                normalize_resource_name(real),
                normalize_resource_name(camel),
                "{real}"
            );
        }
    }

    #[test]
    fn node_totals_and_free_amounts() {
        let node = node_capacity(&head_a(), Some(&usage_a()));
        assert_eq!(node.gpu_model, GpuModel::parse("A100").ok());
        assert_eq!(node.total.cpus, Quantity::whole(2));
        assert_eq!(node.free.cpus, Quantity::from_units(5_000));
        assert_eq!(
            (node.total.gpus, node.free.gpus),
            (Quantity::whole(4), Quantity::whole(3))
        );
        assert_eq!(node.free.memory.0, 21_374_626_509 - 1_073_741_824);
        assert_eq!(node.free.custom["gpu_a100"], Quantity::whole(3));
        assert_eq!(
            node.free.custom["accelerator_type:A100"],
            Quantity::from_units(9_990)
        );
        let custom: Vec<&str> = node.total.custom.keys().map(String::as_str).collect();
        assert_eq!(custom, ["accelerator_type:A100", "gpu_a100"]);
    }

    #[test]
    fn unknown_usage_means_nothing_free() {
        let node = node_capacity(&head_a(), None);
        assert_eq!(node.total.gpus, Quantity::whole(4));
        assert!(node.free.gpus.is_zero() && node.free.cpus.is_zero());
        let mut partial = usage_a();
        partial.remove("gpuA100");
        let node = node_capacity(&head_a(), Some(&partial));
        assert!(node.free.custom["gpu_a100"].is_zero());
        assert_eq!(node.free.gpus, Quantity::whole(3));
    }

    #[test]
    fn dead_nodes_are_dropped_and_usage_is_found_per_node() {
        let mut dead = head_a();
        dead.node_id = "dead".into();
        dead.state = "DEAD".into();
        let by_node = LoadMetrics {
            usage: BTreeMap::new(),
            usage_by_node: Some(BTreeMap::from([("63708dfc".to_string(), usage_a())])),
        };
        let nodes = capacity_nodes(&[head_a(), dead.clone()], &by_node);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].free.gpus, Quantity::whole(3));
        // No per-node report: the cluster's usage is the single node's.
        let cluster_only = LoadMetrics {
            usage: usage_a(),
            usage_by_node: None,
        };
        assert_eq!(
            capacity_nodes(&[head_a()], &cluster_only)[0].free.gpus,
            Quantity::whole(3)
        );
        let mut second = head_a();
        second.node_id = "second".into();
        let two = capacity_nodes(&[head_a(), second], &cluster_only);
        assert!(two.iter().all(|n| n.free.gpus.is_zero()));
    }

    #[test]
    fn gpu_models_come_from_markers_or_custom_resources() {
        let with = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let model = |name: &str| GpuModel::parse(name).ok();
        assert_eq!(
            gpu_model_of(&with(&[("GPU", 2.0), ("accelerator_type:L4", 1.0)])),
            model("L4")
        );
        assert_eq!(
            gpu_model_of(&with(&[("GPU", 2.0), ("gpu_l4", 2.0)])),
            model("L4")
        );
        assert_eq!(
            gpu_model_of(&with(&[("GPU", 0.0), ("accelerator_type:L4", 1.0)])),
            None
        );
        assert_eq!(
            gpu_model_of(&with(&[("GPU", 2.0), ("gpu_l4", 1.0), ("gpu_t4", 1.0)])),
            None
        );
        assert_eq!(gpu_model_of(&with(&[("GPU", 2.0)])), None);
    }

    #[test]
    fn float_amounts_round_to_ray_resolution() {
        assert_eq!(quantity(0.1 + 0.2), Quantity::from_units(3_000));
        assert_eq!(quantity(3.999_999_9), Quantity::whole(4));
        assert_eq!(quantity(-1.0), Quantity::ZERO);
        assert_eq!(quantity(f64::NAN), Quantity::ZERO);
    }
}
