//! Capacity from the cluster's Nodes: each schedulable, Ready node's
//! `allocatable`, less the requests of the pods running on it, its GPU model
//! from the configured node label. Autoscaled node pools add the nodes they
//! could still create (up to `autoscale_max_nodes` per model) as nodes that
//! are wholly free; the broker's tiering decides whether to use them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use raybroker_adapter::{NodeCapacity, NodeResources};
use raybroker_core::{Bytes, Quantity};

use super::rayjob::GPU_RESOURCE;
use crate::config::KubeRayClusterConfig;

/// A Kubernetes quantity (`7910m`, `32Gi`, `1e3`, `4`) as a number, `None`
/// when it is not one.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let power: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(power)
        }
    };
    let value = number * factor;
    (value.is_finite() && value >= 0.0).then_some(value)
}

fn amount(map: Option<&BTreeMap<String, KubeQuantity>>, name: &str) -> f64 {
    map.and_then(|m| m.get(name))
        .and_then(|q| parse_quantity(&q.0))
        .unwrap_or(0.0)
}

/// Down to the broker's resolution (0.0001), never up: capacity is not overstated.
fn to_quantity(value: f64) -> Quantity {
    let units = (value * Quantity::whole(1).units() as f64).floor();
    Quantity::from_units(if units > 0.0 { units as u64 } else { 0 })
}

/// What the pods on each node request (pods that ended hold nothing).
fn requested_by_node(pods: &[Pod]) -> BTreeMap<String, [f64; 3]> {
    let mut used: BTreeMap<String, [f64; 3]> = BTreeMap::new();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(spec) = &pod.spec else { continue };
        let Some(node) = &spec.node_name else {
            continue;
        };
        let entry = used.entry(node.clone()).or_default();
        for container in &spec.containers {
            let requests = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref());
            let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
            entry[0] += amount(requests, "cpu");
            entry[1] += amount(requests, "memory");
            // Extended resources are requested through limits alone too.
            entry[2] += amount(requests, GPU_RESOURCE).max(amount(limits, GPU_RESOURCE));
        }
    }
    used
}

fn is_schedulable(node: &Node) -> bool {
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    ready && !cordoned
}

/// The capacity of every schedulable node, plus what autoscaled pools can add.
pub fn capacity_nodes(
    config: &KubeRayClusterConfig,
    nodes: &[Node],
    pods: &[Pod],
) -> Vec<NodeCapacity> {
    let used = requested_by_node(pods);
    let mut out: Vec<NodeCapacity> = nodes
        .iter()
        .filter(|node| is_schedulable(node))
        .filter_map(|node| {
            let name = node.metadata.name.clone()?;
            let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
            let total = [
                amount(allocatable, "cpu"),
                amount(allocatable, "memory"),
                amount(allocatable, GPU_RESOURCE),
            ];
            let taken = used.get(&name).copied().unwrap_or_default();
            let free: Vec<f64> = (0..3).map(|i| (total[i] - taken[i]).max(0.0)).collect();
            let gpu_model = node
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(&config.gpu_label))
                .and_then(|value| config.model_of_label(value))
                .filter(|_| total[2] > 0.0);
            Some(NodeCapacity {
                id: name,
                gpu_model,
                total: NodeResources {
                    cpus: to_quantity(total[0]),
                    memory: Bytes(total[1] as u64),
                    gpus: to_quantity(total[2].floor()),
                    custom: BTreeMap::new(),
                },
                free: NodeResources {
                    cpus: to_quantity(free[0]),
                    memory: Bytes(free[1] as u64),
                    gpus: to_quantity(free[2].floor()),
                    custom: BTreeMap::new(),
                },
            })
        })
        .collect();
    out.extend(autoscale_nodes(config, &out));
    out
}

/// Nodes an autoscaled pool can still add: `autoscale_max_nodes` less the
/// nodes of that model that exist, each of the configured shape.
pub fn autoscale_nodes(
    config: &KubeRayClusterConfig,
    existing: &[NodeCapacity],
) -> Vec<NodeCapacity> {
    let Some(template) = &config.template else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for group in &template.worker_groups {
        let Some(shape) = &group.autoscale_node else {
            continue;
        };
        let present = existing
            .iter()
            .filter(|n| n.gpu_model.as_ref() == Some(&group.gpu_model))
            .count();
        let room = (group.autoscale_max_nodes as usize).saturating_sub(present);
        for i in 0..room {
            let resources = NodeResources {
                cpus: shape.cpus,
                memory: shape.memory,
                gpus: Quantity::whole(u64::from(shape.gpus)),
                custom: BTreeMap::new(),
            };
            out.push(NodeCapacity {
                id: format!("autoscale:{}:{i}", group.label_value),
                gpu_model: Some(group.gpu_model.clone()),
                total: resources.clone(),
                free: resources,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> KubeRayClusterConfig {
        serde_norway::from_str(crate::config::tests::EPHEMERAL).unwrap()
    }

    fn node(name: &str, label: Option<&str>, ready: &str, gpus: &str) -> Node {
        let labels = label.map(|l| json!({"cloud.google.com/gke-accelerator": l}));
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {
                "allocatable": {"cpu": "7910m", "memory": "30Gi", "nvidia.com/gpu": gpus},
                "conditions": [{"type": "Ready", "status": ready}],
            },
        }))
        .unwrap()
    }

    fn pod(node: &str, phase: &str, cpu: &str, gpus: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p-{node}-{phase}")},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": cpu, "memory": "1Gi"},
                              "limits": {"nvidia.com/gpu": gpus}}}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(parse_quantity("7910m"), Some(7.91));
        assert_eq!(parse_quantity("30Gi"), Some(30.0 * 1024f64.powi(3)));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("3Xi"), None);
    }

    #[test]
    fn nodes_are_grouped_by_model_less_running_pods() {
        let nodes = [
            node("l4-a", Some("nvidia-l4"), "True", "2"),
            node("l4-down", Some("nvidia-l4"), "False", "2"),
            node("t4", Some("nvidia-tesla-t4"), "True", "1"),
            node("cpu", None, "True", "0"),
        ];
        let pods = [
            pod("l4-a", "Running", "1500m", "1"),
            pod("l4-a", "Succeeded", "4", "1"),
        ];
        let capacity = capacity_nodes(&config(), &nodes, &pods);
        let l4 = capacity.iter().find(|n| n.id == "l4-a").unwrap();
        assert_eq!(l4.gpu_model.as_ref().unwrap().as_str(), "L4");
        assert_eq!(l4.total.gpus, Quantity::whole(2));
        assert_eq!(l4.free.gpus, Quantity::whole(1));
        assert_eq!(l4.free.cpus, Quantity::from_units(64_100));
        assert_eq!(l4.free.memory, Bytes(29 << 30));
        assert!(capacity.iter().all(|n| n.id != "l4-down"));
        let t4 = capacity.iter().find(|n| n.id == "t4").unwrap();
        assert_eq!(
            t4.gpu_model, None,
            "a model the template does not offer is unknown"
        );
        // The pool may grow to 4 L4 nodes; one exists.
        let pool: Vec<_> = capacity
            .iter()
            .filter(|n| n.id.starts_with("autoscale:"))
            .collect();
        assert_eq!(pool.len(), 3);
        assert_eq!(pool[0].free.gpus, Quantity::whole(1));
    }
}
