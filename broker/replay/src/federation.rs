//! The simulated federation: clusters of nodes with GPUs tracked per device,
//! and the snapshots raybroker's placement reads, kept in step.
//!
//! This is a lean, synchronous model of `adapters/sim` (same rules, no
//! adapter calls or logs), so 8,152 tasks x several policies replay in
//! seconds. Like Ray, a GPU share below one must fit on one device, and a
//! whole number of GPUs takes that many entirely free devices; a share goes
//! to the fullest device that still has room, so whole devices stay whole.
//!
//! Placement's [`NodeResources`] has one free-GPU number per node. The
//! views the model keeps for placement report it as the node's entirely
//! free devices plus the largest free share of a partly used one (`3.4` is
//! three free GPUs and 0.4 of a fourth), which is exact for one job of
//! either kind: a whole-GPU job fits if the whole part is enough, a share
//! fits if a whole device is free or the partly used one has room. Placing
//! several shares in one plan can still be optimistic (the plan subtracts
//! them from one number; devices may split them differently), so a start
//! the devices refuse is counted, never forced.

use std::collections::{BTreeMap, HashMap};

use raybroker_adapter::{Capabilities, CapacitySnapshot, NodeCapacity, NodeResources};
use raybroker_core::{Bytes, GpuModel, Quantity, Resources};
use raybroker_placement::ClusterView;

use crate::split::ClusterSpec;

const ONE: Quantity = Quantity::whole(1);

/// One node and what is free on it.
#[derive(Clone, Debug)]
pub struct Node {
    /// The trace's `sn`.
    pub id: String,
    /// The model of its GPUs; `None` for CPU-only nodes.
    pub gpu_model: Option<GpuModel>,
    /// CPUs it has.
    pub cpus_total: Quantity,
    /// Memory it has.
    pub memory_total: Bytes,
    /// CPUs free now.
    pub cpus_free: Quantity,
    /// Memory free now.
    pub memory_free: Bytes,
    /// Free share of each GPU device.
    pub gpu_free: Vec<Quantity>,
}

impl Node {
    fn model_ok(&self, r: &Resources) -> bool {
        r.gpus.is_zero()
            || match &self.gpu_model {
                Some(model) => r.accepts_gpu(model),
                None => false,
            }
    }

    /// True when the idle node could hold one node of the job.
    pub fn could_hold(&self, r: &Resources) -> bool {
        let devices = Quantity::whole(self.gpu_free.len() as u64);
        self.model_ok(r)
            && self.cpus_total >= r.cpus
            && self.memory_total >= r.memory
            && devices >= r.gpus
    }

    /// True when one node of the job fits here now ([`Node::devices_for`]
    /// without building the answer).
    pub fn fits(&self, r: &Resources) -> bool {
        if self.cpus_free < r.cpus || self.memory_free < r.memory || !self.model_ok(r) {
            return false;
        }
        if r.gpus.is_zero() {
            true
        } else if r.gpus < ONE {
            self.gpu_free.iter().any(|free| *free >= r.gpus)
        } else {
            let whole = self.gpu_free.iter().filter(|free| **free == ONE).count() as u64;
            whole * ONE.units() >= r.gpus.units()
        }
    }

    /// The devices the job would take here now, or `None` when it does not fit.
    pub fn devices_for(&self, r: &Resources) -> Option<Vec<(u32, Quantity)>> {
        if !self.model_ok(r) || self.cpus_free < r.cpus || self.memory_free < r.memory {
            return None;
        }
        let indexed = (0u32..).zip(self.gpu_free.iter().copied());
        if r.gpus.is_zero() {
            Some(Vec::new())
        } else if r.gpus < ONE {
            indexed
                .filter(|(_, free)| *free >= r.gpus)
                .min_by_key(|(index, free)| (*free, *index))
                .map(|(index, _)| vec![(index, r.gpus)])
        } else {
            let wanted = (r.gpus.units() / ONE.units()) as usize;
            let whole: Vec<(u32, Quantity)> = indexed
                .filter(|(_, free)| *free == ONE)
                .take(wanted)
                .collect();
            (whole.len() == wanted).then_some(whole)
        }
    }

    /// Free GPUs summed over devices.
    pub fn gpus_free(&self) -> Quantity {
        Quantity::from_units(self.gpu_free.iter().map(|q| q.units()).sum())
    }

    /// Free GPUs as placement reads them: entirely free devices plus the
    /// largest free share of a partly used one.
    pub fn placement_free_gpus(&self) -> Quantity {
        let whole = self.gpu_free.iter().filter(|f| **f == ONE).count() as u64;
        let partial = self
            .gpu_free
            .iter()
            .filter(|f| **f < ONE)
            .map(|f| f.units())
            .max()
            .unwrap_or(0);
        Quantity::from_units(Quantity::whole(whole).units() + partial)
    }
}

/// One cluster of the split.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Its name.
    pub name: String,
    /// 0 = on-prem, higher = burst.
    pub tier: u32,
    /// Price of a GPU-hour.
    pub cost_per_gpu_hour: f64,
    /// Its nodes.
    pub nodes: Vec<Node>,
}

/// What a started job holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Cluster index.
    pub cluster: usize,
    /// Node index in that cluster.
    pub node: usize,
    /// Devices and the share taken of each.
    pub devices: Vec<(u32, Quantity)>,
}

/// All clusters, and placement's views of them.
#[derive(Clone, Debug)]
pub struct Federation {
    /// The clusters, in split order.
    pub clusters: Vec<Cluster>,
    /// What placement sees, kept in step with the nodes.
    views: Vec<ClusterView>,
    /// Node id -> (cluster, node), to read placement's answers.
    locations: HashMap<String, (usize, usize)>,
    gpu_units_total: u64,
    gpu_units_allocated: u64,
}

impl Federation {
    /// Idle clusters of the split's nodes.
    pub fn new(specs: &[ClusterSpec]) -> Federation {
        let clusters: Vec<Cluster> = specs
            .iter()
            .map(|spec| Cluster {
                name: spec.name.clone(),
                tier: spec.tier,
                cost_per_gpu_hour: spec.cost_per_gpu_hour,
                nodes: spec
                    .nodes
                    .iter()
                    .map(|n| Node {
                        id: n.name.clone(),
                        gpu_model: n.gpu_model.clone(),
                        cpus_total: n.cpus,
                        memory_total: n.memory,
                        cpus_free: n.cpus,
                        memory_free: n.memory,
                        gpu_free: vec![ONE; n.gpus as usize],
                    })
                    .collect(),
            })
            .collect();
        let mut locations = HashMap::new();
        let mut gpu_units_total = 0;
        for (c, cluster) in clusters.iter().enumerate() {
            for (n, node) in cluster.nodes.iter().enumerate() {
                locations.insert(node.id.clone(), (c, n));
                gpu_units_total += node.gpus_free().units();
            }
        }
        let views = clusters.iter().map(view).collect();
        Federation {
            clusters,
            views,
            locations,
            gpu_units_total,
            gpu_units_allocated: 0,
        }
    }

    /// The clusters as placement sees them.
    pub fn views(&self) -> &[ClusterView] {
        &self.views
    }

    /// (cluster, node) of a node id.
    pub fn locate(&self, node_id: &str) -> Option<(usize, usize)> {
        self.locations.get(node_id).copied()
    }

    /// Index of a cluster by name.
    pub fn cluster_index(&self, name: &str) -> Option<usize> {
        self.clusters.iter().position(|c| c.name == name)
    }

    /// True when some node of `cluster`, idle, could hold the job.
    pub fn could_ever_run(&self, cluster: usize, r: &Resources) -> bool {
        self.clusters[cluster].nodes.iter().any(|n| n.could_hold(r))
    }

    /// The first node of `cluster`, in order, that fits the job now.
    pub fn first_fit(&self, cluster: usize, r: &Resources) -> Option<usize> {
        self.clusters[cluster].nodes.iter().position(|n| n.fits(r))
    }

    /// The node of `cluster` the job fits tightest now, with its key: GPUs,
    /// then CPUs, left free on the node (smallest first), then node order.
    pub fn tightest(&self, cluster: usize, r: &Resources) -> Option<((u64, u64), usize)> {
        self.clusters[cluster]
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.fits(r))
            .map(|(i, n)| {
                let gpus_left = n.gpus_free().units().saturating_sub(r.gpus.units());
                let cpus_left = n.cpus_free.units().saturating_sub(r.cpus.units());
                ((gpus_left, cpus_left), i)
            })
            .min()
    }

    /// Starts the job on the node, or `None` when it does not fit there now.
    pub fn start(&mut self, r: &Resources, cluster: usize, node: usize) -> Option<Allocation> {
        let target = self.clusters.get_mut(cluster)?.nodes.get_mut(node)?;
        let devices = target.devices_for(r)?;
        target.cpus_free = target.cpus_free.checked_sub(r.cpus).unwrap_or_default();
        target.memory_free = Bytes(target.memory_free.0.saturating_sub(r.memory.0));
        for (device, share) in &devices {
            let free = &mut target.gpu_free[*device as usize];
            *free = free.checked_sub(*share).unwrap_or_default();
        }
        self.gpu_units_allocated += r.gpus.units();
        self.sync_views(cluster, node);
        Some(Allocation {
            cluster,
            node,
            devices,
        })
    }

    /// Gives back what [`Federation::start`] took.
    pub fn release(&mut self, r: &Resources, held: &Allocation) {
        let target = &mut self.clusters[held.cluster].nodes[held.node];
        target.cpus_free = target
            .cpus_free
            .checked_add(r.cpus)
            .unwrap_or(target.cpus_total)
            .min(target.cpus_total);
        target.memory_free = Bytes(
            target
                .memory_free
                .0
                .saturating_add(r.memory.0)
                .min(target.memory_total.0),
        );
        for (device, share) in &held.devices {
            let free = &mut target.gpu_free[*device as usize];
            *free = free.checked_add(*share).unwrap_or(ONE).min(ONE);
        }
        self.gpu_units_allocated = self.gpu_units_allocated.saturating_sub(r.gpus.units());
        self.sync_views(held.cluster, held.node);
    }

    /// GPUs of all clusters, in ten-thousandths.
    pub fn gpu_units_total(&self) -> u64 {
        self.gpu_units_total
    }

    /// GPUs held by running jobs, in ten-thousandths.
    pub fn gpu_units_allocated(&self) -> u64 {
        self.gpu_units_allocated
    }

    fn sync_views(&mut self, cluster: usize, node: usize) {
        let source = &self.clusters[cluster].nodes[node];
        if let Some(snapshot) = self.views[cluster].snapshot.as_mut() {
            let free = &mut snapshot.nodes[node].free;
            free.cpus = source.cpus_free;
            free.memory = source.memory_free;
            free.gpus = source.placement_free_gpus();
        }
    }
}

/// A placement view of an idle cluster.
fn view(cluster: &Cluster) -> ClusterView {
    let nodes = cluster
        .nodes
        .iter()
        .map(|n| {
            let total = NodeResources {
                cpus: n.cpus_total,
                memory: n.memory_total,
                gpus: Quantity::whole(n.gpu_free.len() as u64),
                custom: BTreeMap::new(),
            };
            let free = total.clone();
            NodeCapacity {
                id: n.id.clone(),
                gpu_model: n.gpu_model.clone(),
                total,
                free,
            }
        })
        .collect();
    ClusterView {
        name: cluster.name.clone(),
        tier: cluster.tier,
        cost_per_gpu_hour: cluster.cost_per_gpu_hour,
        labels: BTreeMap::new(),
        capabilities: Capabilities {
            fractional_gpus: true,
            multi_node: true,
            gpu_models: true,
            custom_resources: true,
        },
        snapshot: Some(CapacitySnapshot {
            taken_at_ms: 0,
            nodes,
            pending_jobs: 0,
            version: "replay".to_string(),
        }),
        fresh: true,
        // The broker holds the queue: a cluster gets only what starts now.
        pending_allowance: 0,
    }
}

#[cfg(test)]
mod tests;
