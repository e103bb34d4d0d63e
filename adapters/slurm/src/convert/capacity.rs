//! Capacity from `/nodes`: CPUs and memory as numbers, GPUs only as `gres`
//! strings (`gpu:a100:4`, `gpu:a100:1(IDX:0)`), which are parsed here.

use raybroker_adapter::{NodeCapacity, NodeResources};
use raybroker_core::{Bytes, Quantity};

use crate::client::NodeInfo;
use crate::config::SlurmClusterConfig;

/// GPUs of one type in a `gres` string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuGres {
    /// The gres type (`a100`), when the string names one.
    pub gres_type: Option<String>,
    /// How many.
    pub count: u64,
}

/// Splits on commas outside parentheses (`gpu:a100:2(IDX:0,2),gpu:v100:1`).
fn top_level_items(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// The GPU entries of a node's `gres` or `gres_used` string; other gres
/// (`mps`, `shard`, licenses) and `(null)`/`N/A` are skipped.
pub fn parse_gpu_gres(text: &str) -> Vec<GpuGres> {
    top_level_items(text.trim())
        .into_iter()
        .filter_map(|item| {
            let item = item.split('(').next().unwrap_or("").trim();
            let mut parts = item.split(':');
            if parts.next()? != "gpu" {
                return None;
            }
            let rest: Vec<&str> = parts.collect();
            match rest.as_slice() {
                [count] => Some(GpuGres {
                    gres_type: None,
                    count: count.parse().ok()?,
                }),
                [gres_type, count] => Some(GpuGres {
                    gres_type: Some((*gres_type).to_string()),
                    count: count.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect()
}

/// Node states that take a node out of placement (base states and flags).
const UNUSABLE: &[&str] = &[
    "DOWN",
    "DRAIN",
    "DRAINED",
    "DRAINING",
    "FAIL",
    "FAILING",
    "FUTURE",
    "NOT_RESPONDING",
    "POWERED_DOWN",
    "POWERING_DOWN",
    "POWER_DOWN",
    "POWERING_UP",
    "MAINTENANCE",
    "REBOOT_REQUESTED",
    "REBOOT_ISSUED",
    "RESERVED",
    "UNKNOWN",
    "INVALID_REG",
];

/// True when jobs can start on the node.
pub fn node_usable(node: &NodeInfo) -> bool {
    let words = node
        .state
        .iter()
        .flat_map(|s| s.split('+'))
        .chain(node.state_flags.iter().map(String::as_str));
    let mut any = false;
    for word in words {
        any = true;
        if UNUSABLE.contains(&word.to_ascii_uppercase().as_str()) {
            return false;
        }
    }
    any
}

const MIB: u64 = 1024 * 1024;

/// One node's capacity, or `None` when it cannot take jobs.
pub fn node_capacity(node: &NodeInfo, config: &SlurmClusterConfig) -> Option<NodeCapacity> {
    if !node_usable(node) {
        return None;
    }
    let total_gpus = parse_gpu_gres(&node.gres);
    let used: u64 = parse_gpu_gres(&node.gres_used)
        .iter()
        .map(|g| g.count)
        .sum();
    let gpus: u64 = total_gpus.iter().map(|g| g.count).sum();
    // A node with several GPU types is listed under its most numerous one.
    let gpu_model = total_gpus
        .iter()
        .filter(|g| g.count > 0)
        .max_by_key(|g| g.count)
        .and_then(|g| g.gres_type.as_deref())
        .and_then(|t| config.model_of_gres(t));
    let cpus = node.cpus.unwrap_or(0);
    let memory = node.real_memory.unwrap_or(0);
    Some(NodeCapacity {
        id: node.name.clone(),
        gpu_model,
        total: NodeResources {
            cpus: Quantity::whole(cpus),
            memory: Bytes(memory.saturating_mul(MIB)),
            gpus: Quantity::whole(gpus),
            custom: Default::default(),
        },
        free: NodeResources {
            cpus: Quantity::whole(cpus.saturating_sub(node.alloc_cpus.unwrap_or(0))),
            memory: Bytes(
                memory
                    .saturating_sub(node.alloc_memory.unwrap_or(0))
                    .saturating_mul(MIB),
            ),
            gpus: Quantity::whole(gpus.saturating_sub(used)),
            custom: Default::default(),
        },
    })
}

/// The usable nodes of `partition`.
pub fn partition_nodes(
    nodes: &[NodeInfo],
    partition: &str,
    config: &SlurmClusterConfig,
) -> Vec<NodeCapacity> {
    nodes
        .iter()
        .filter(|node| node.partitions.iter().any(|p| p == partition))
        .filter_map(|node| node_capacity(node, config))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use raybroker_core::GpuModel;

    fn config() -> SlurmClusterConfig {
        crate::config::test_config("/opt/ray/bin", "o")
    }

    fn gres(gres_type: Option<&str>, count: u64) -> GpuGres {
        GpuGres {
            gres_type: gres_type.map(str::to_string),
            count,
        }
    }

    #[test]
    fn gres_strings_parse() {
        assert_eq!(parse_gpu_gres("gpu:a100:4"), vec![gres(Some("a100"), 4)]);
        assert_eq!(
            parse_gpu_gres("gpu:a100:0(IDX:N/A)"),
            vec![gres(Some("a100"), 0)]
        );
        assert_eq!(
            parse_gpu_gres("gpu:a100:2(IDX:0,2),gpu:v100:1(IDX:4),mps:100"),
            vec![gres(Some("a100"), 2), gres(Some("v100"), 1)]
        );
        assert_eq!(parse_gpu_gres("gpu:2(S:0-1)"), vec![gres(None, 2)]);
        assert!(parse_gpu_gres("(null)").is_empty());
        assert!(parse_gpu_gres("").is_empty());
        assert!(parse_gpu_gres("gpu:a100:x").is_empty());
    }

    fn node(state: &str, gres: &str, used: &str) -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            state: vec![state.into()],
            cpus: Some(8),
            alloc_cpus: Some(3),
            real_memory: Some(1000),
            alloc_memory: Some(400),
            gres: gres.into(),
            gres_used: used.into(),
            partitions: vec!["debug".into()],
            ..NodeInfo::default()
        }
    }

    #[test]
    fn nodes_become_capacity() {
        let capacity =
            node_capacity(&node("MIXED", "gpu:h100:4", "gpu:h100:1(IDX:0)"), &config()).unwrap();
        assert_eq!(capacity.gpu_model, Some(GpuModel::parse("H100").unwrap()));
        assert_eq!(capacity.total.gpus, Quantity::whole(4));
        assert_eq!(capacity.free.gpus, Quantity::whole(3));
        assert_eq!(capacity.free.cpus, Quantity::whole(5));
        assert_eq!(capacity.free.memory, Bytes(600 * MIB));
        let plain = node_capacity(&node("IDLE", "(null)", ""), &config()).unwrap();
        assert_eq!(plain.gpu_model, None);
        assert!(plain.total.gpus.is_zero());
    }

    #[test]
    fn unusable_nodes_are_left_out() {
        for state in ["DOWN", "IDLE+DRAIN", "drained", "MIXED+NOT_RESPONDING"] {
            assert!(
                node_capacity(&node(state, "", ""), &config()).is_none(),
                "{state}"
            );
        }
        let mut flagged = node("IDLE", "", "");
        flagged.state_flags = vec!["DRAIN".into()];
        assert!(!node_usable(&flagged));
        let nodes = [node("IDLE", "", ""), node("ALLOCATED", "", "")];
        assert_eq!(partition_nodes(&nodes, "debug", &config()).len(), 2);
        assert!(partition_nodes(&nodes, "gpu", &config()).is_empty());
    }
}
