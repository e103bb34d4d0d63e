//! One simulated node: what it has, what is free, and whether one node's
//! share of a job fits on it.
//!
//! GPUs are tracked per device, in ten-thousandths: a share below one takes
//! part of one device (the fullest that still has room, so whole devices
//! stay whole), a whole number takes that many entirely free devices.

use std::collections::BTreeMap;

use raybroker_adapter::{NodeCapacity, NodeResources};
use raybroker_core::{Bytes, GpuModel, Quantity, Resources};

use crate::config::NodeShape;

/// What a running job holds on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAllocation {
    /// The node's id.
    pub node: String,
    /// The GPU devices used, by index, and the share of each.
    pub gpus: Vec<(u32, Quantity)>,
    /// The node's position in the cluster.
    pub(super) index: usize,
}

/// One node and what is free on it.
#[derive(Clone, Debug)]
pub(super) struct Node {
    pub(super) id: String,
    gpu_model: Option<GpuModel>,
    total: NodeResources,
    cpus_free: Quantity,
    memory_free: Bytes,
    custom_free: BTreeMap<String, Quantity>,
    /// Free share of each GPU device, by index.
    gpu_free: Vec<Quantity>,
}

fn minus(a: Quantity, b: Quantity) -> Quantity {
    a.checked_sub(b).unwrap_or(Quantity::ZERO)
}

fn plus(a: Quantity, b: Quantity) -> Quantity {
    a.checked_add(b).unwrap_or(a)
}

impl Node {
    /// An idle node of `shape` called `id`.
    pub(super) fn new(id: String, shape: &NodeShape) -> Node {
        let devices = shape.gpus.units() / Quantity::whole(1).units();
        Node {
            id,
            gpu_model: shape.gpu_model.clone(),
            total: NodeResources {
                cpus: shape.cpus,
                memory: shape.memory,
                gpus: shape.gpus,
                custom: shape.custom.clone(),
            },
            cpus_free: shape.cpus,
            memory_free: shape.memory,
            custom_free: shape.custom.clone(),
            gpu_free: vec![Quantity::whole(1); devices as usize],
        }
    }

    /// The node as a snapshot shows it. Free GPUs are reported as placement
    /// reads them: the entirely free devices plus the largest free share of
    /// a partly used one (two devices with 0.5 free each show 0.5, not 1.0,
    /// since no whole GPU is free), exact for one job of either kind.
    pub(super) fn capacity(&self) -> NodeCapacity {
        NodeCapacity {
            id: self.id.clone(),
            gpu_model: self.gpu_model.clone(),
            total: self.total.clone(),
            free: NodeResources {
                cpus: self.cpus_free,
                memory: self.memory_free,
                gpus: self.placement_free_gpus(),
                custom: self.custom_free.clone(),
            },
        }
    }

    /// Entirely free devices plus the largest free share of a partly used one.
    fn placement_free_gpus(&self) -> Quantity {
        let one = Quantity::whole(1);
        let whole = self.gpu_free.iter().filter(|free| **free >= one).count() as u64;
        let share = self
            .gpu_free
            .iter()
            .filter(|free| **free < one)
            .map(|free| free.units())
            .max()
            .unwrap_or(0);
        Quantity::from_units(Quantity::whole(whole).units() + share)
    }

    pub(super) fn gpus_free(&self) -> Quantity {
        self.gpu_free.iter().copied().fold(Quantity::ZERO, plus)
    }

    pub(super) fn cpus_free(&self) -> Quantity {
        self.cpus_free
    }

    /// The GPU devices one node of the job would take here, or `None` when
    /// it does not fit: on the idle node when `idle`, else on what is free
    /// now. The GPU model counts only when `check_model`.
    pub(super) fn fits(
        &self,
        resources: &Resources,
        check_model: bool,
        idle: bool,
    ) -> Option<Vec<(u32, Quantity)>> {
        let model_ok = resources.gpus.is_zero()
            || !check_model
            || match &self.gpu_model {
                Some(model) => resources.accepts_gpu(model),
                None => resources.gpu_types.is_empty(),
            };
        let (cpus, memory, custom) = if idle {
            (self.total.cpus, self.total.memory, &self.total.custom)
        } else {
            (self.cpus_free, self.memory_free, &self.custom_free)
        };
        let basics_ok = model_ok
            && cpus >= resources.cpus
            && memory >= resources.memory
            && resources
                .custom
                .iter()
                .all(|(name, amount)| custom.get(name).copied().unwrap_or_default() >= *amount);
        if !basics_ok {
            return None;
        }
        let one = Quantity::whole(1);
        let devices: Vec<(u32, Quantity)> = (0u32..)
            .zip(
                self.gpu_free
                    .iter()
                    .map(|free| if idle { one } else { *free }),
            )
            .collect();
        if resources.gpus.is_zero() {
            Some(Vec::new())
        } else if resources.gpus < one {
            devices
                .iter()
                .filter(|(_, free)| *free >= resources.gpus)
                .min_by_key(|(index, free)| (*free, *index))
                .map(|(index, _)| vec![(*index, resources.gpus)])
        } else {
            let wanted = (resources.gpus.units() / one.units()) as usize;
            let whole: Vec<(u32, Quantity)> = devices
                .iter()
                .filter(|(_, free)| *free == one)
                .take(wanted)
                .map(|(index, _)| (*index, one))
                .collect();
            (whole.len() == wanted).then_some(whole)
        }
    }

    /// Takes one node of the job, on these GPU devices.
    pub(super) fn take(&mut self, resources: &Resources, gpus: &[(u32, Quantity)]) {
        self.cpus_free = minus(self.cpus_free, resources.cpus);
        self.memory_free = Bytes(self.memory_free.0.saturating_sub(resources.memory.0));
        for (name, amount) in &resources.custom {
            if let Some(free) = self.custom_free.get_mut(name) {
                *free = minus(*free, *amount);
            }
        }
        for (device, share) in gpus {
            if let Some(free) = self.gpu_free.get_mut(*device as usize) {
                *free = minus(*free, *share);
            }
        }
    }

    /// Gives back what [`Node::take`] took.
    pub(super) fn give_back(&mut self, resources: &Resources, gpus: &[(u32, Quantity)]) {
        self.cpus_free = plus(self.cpus_free, resources.cpus).min(self.total.cpus);
        self.memory_free = Bytes(
            self.memory_free
                .0
                .saturating_add(resources.memory.0)
                .min(self.total.memory.0),
        );
        for (name, amount) in &resources.custom {
            if let (Some(free), Some(total)) =
                (self.custom_free.get_mut(name), self.total.custom.get(name))
            {
                *free = plus(*free, *amount).min(*total);
            }
        }
        for (device, share) in gpus {
            if let Some(free) = self.gpu_free.get_mut(*device as usize) {
                *free = plus(*free, *share).min(Quantity::whole(1));
            }
        }
    }
}

/// `[sim] started on node a100-0 with CUDA_VISIBLE_DEVICES=0,1`, with the
/// share of each partly used device.
pub(super) fn start_line(held: &NodeAllocation) -> String {
    let devices: Vec<String> = held
        .gpus
        .iter()
        .map(|(index, _)| index.to_string())
        .collect();
    let shares: Vec<String> = held
        .gpus
        .iter()
        .filter(|(_, share)| *share < Quantity::whole(1))
        .map(|(index, share)| format!("{share} of GPU {index}"))
        .collect();
    let shared = if shares.is_empty() {
        String::new()
    } else {
        format!(" ({})", shares.join(", "))
    };
    format!(
        "[sim] started on node {} with CUDA_VISIBLE_DEVICES={}{shared}\n",
        held.node,
        devices.join(",")
    )
}
