//! Builders shared by the placement tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use raybroker_adapter::{Capabilities, CapacitySnapshot, NodeCapacity, NodeResources};
use raybroker_core::{Bytes, GpuModel, Placement, Quantity, Resources};
use raybroker_placement::{ClusterView, PendingJob, Plan, Policy, Problem, Usage};

/// A backend that honours everything.
pub fn caps() -> Capabilities {
    Capabilities {
        fractional_gpus: true,
        multi_node: true,
        gpu_models: true,
        custom_resources: true,
    }
}

/// GPUs from a float with at most four decimals (0.25, 7.5).
pub fn q(gpus: f64) -> Quantity {
    Quantity::from_f64(gpus).unwrap()
}

/// A node with `gpus` GPUs of `model` (`None`: CPU-only), 64 CPUs, 256 GiB,
/// and `free_gpus` of them free.
pub fn node(id: &str, model: Option<&str>, gpus: f64, free_gpus: f64) -> NodeCapacity {
    let total = NodeResources {
        cpus: Quantity::whole(64),
        memory: Bytes(256 << 30),
        gpus: q(gpus),
        custom: BTreeMap::new(),
    };
    let free = NodeResources {
        gpus: q(free_gpus),
        ..total.clone()
    };
    NodeCapacity {
        id: id.into(),
        gpu_model: model.map(|m| GpuModel::parse(m).unwrap()),
        total,
        free,
    }
}

/// A fresh cluster of `nodes` at `tier`, cost 0.
pub fn cluster(name: &str, tier: u32, nodes: Vec<NodeCapacity>) -> ClusterView {
    ClusterView {
        name: name.into(),
        tier,
        cost_per_gpu_hour: 0.0,
        labels: BTreeMap::new(),
        capabilities: caps(),
        snapshot: Some(CapacitySnapshot {
            taken_at_ms: 0,
            nodes,
            pending_jobs: 0,
            version: "test".into(),
        }),
        fresh: true,
        pending_allowance: 10,
    }
}

/// A one-node job of `tenant` for `gpus` GPUs of `models` (`""`: any) and one CPU.
pub fn job(id: &str, tenant: &str, gpus: f64, models: &str) -> PendingJob {
    PendingJob {
        id: id.into(),
        tenant: tenant.into(),
        priority: 0,
        enqueued_at_ms: 0,
        resources: Resources {
            gpus: q(gpus),
            gpu_types: GpuModel::parse_list(models).unwrap(),
            ..Resources::default()
        },
        placement: Placement::default(),
        max_wait_ms: None,
    }
}

/// A policy without aging or reservations, default tenants bursting at once.
pub fn plain_policy() -> Policy {
    let mut policy = Policy {
        aging_ms_per_priority: 0,
        reserve_after_ms: 0,
        ..Policy::default()
    };
    policy.default_tenant.max_wait_ms = 0;
    policy
}

/// Plans `jobs` on `clusters` at `now_ms`.
pub fn run(
    now_ms: u64,
    jobs: &[PendingJob],
    clusters: &[ClusterView],
    policy: &Policy,
    usage: &Usage,
) -> Plan {
    raybroker_placement::plan(&Problem {
        now_ms,
        jobs,
        clusters,
        policy,
        usage,
    })
}

/// The cluster and nodes a job was placed on, or a panic naming its fate.
pub fn placed<'p>(plan: &'p Plan, id: &str) -> (&'p str, &'p [String]) {
    match plan.placement_of(id) {
        Some(p) => (&p.cluster, &p.nodes),
        None => panic!("{id} not placed: {:?}", plan.waiting_of(id)),
    }
}
