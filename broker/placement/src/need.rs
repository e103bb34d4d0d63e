//! A job's shape as the capacity index sees it: amounts in integer units,
//! GPU models interned to numbers for the plan.

use std::collections::{BTreeMap, BTreeSet};

use raybroker_adapter::NodeResources;
use raybroker_core::{GpuModel, Resources};

use crate::ClusterView;

/// A GPU model interned for this plan; [`NO_MODEL`] for a node without GPUs
/// or whose model is unknown.
pub(crate) type ModelKey = u32;

/// The key of a node that reports no GPU model.
pub(crate) const NO_MODEL: ModelKey = 0;

/// The GPU models present in the clusters, numbered in name order.
pub(crate) struct Models {
    keys: BTreeMap<GpuModel, ModelKey>,
}

impl Models {
    /// Interns every model any cluster's snapshot reports.
    pub(crate) fn new(clusters: &[ClusterView]) -> Models {
        let names: BTreeSet<&GpuModel> = clusters
            .iter()
            .filter_map(|c| c.snapshot.as_ref())
            .flat_map(|s| s.nodes.iter())
            .filter_map(|n| n.gpu_model.as_ref())
            .collect();
        let keys = names
            .into_iter()
            .zip(1..)
            .map(|(model, key)| (model.clone(), key))
            .collect();
        Models { keys }
    }

    /// The key of a node's model.
    pub(crate) fn key(&self, model: Option<&GpuModel>) -> ModelKey {
        model
            .and_then(|m| self.keys.get(m))
            .copied()
            .unwrap_or(NO_MODEL)
    }

    /// Which node models a job may use.
    pub(crate) fn accepted(&self, resources: &Resources) -> Accepted {
        if resources.gpus.is_zero() || resources.gpu_types.is_empty() {
            return Accepted::Any;
        }
        let mut keys: Vec<ModelKey> = resources
            .gpu_types
            .iter()
            .filter_map(|m| self.keys.get(m).copied())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Accepted::Only(keys)
    }
}

/// The node models a job may use. A GPU job that names models never runs on
/// a node of unknown model; a job without GPUs runs on any node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Accepted {
    /// Any node.
    Any,
    /// Only nodes of these models (sorted).
    Only(Vec<ModelKey>),
}

impl Accepted {
    /// True when a node of `model` is acceptable.
    pub(crate) fn allows(&self, model: ModelKey) -> bool {
        match self {
            Accepted::Any => true,
            Accepted::Only(keys) => keys.binary_search(&model).is_ok(),
        }
    }
}

/// One GPU in [`Amount`] units.
pub(crate) const GPU: u64 = 10_000;

/// GPUs and CPUs in ten-thousandths, memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Amount {
    pub gpus: u64,
    pub cpus: u64,
    pub memory: u64,
}

impl Amount {
    /// A node's amounts.
    pub(crate) fn of_node(resources: &NodeResources) -> Amount {
        Amount {
            gpus: resources.gpus.units(),
            cpus: resources.cpus.units(),
            memory: resources.memory.0,
        }
    }

    /// What a job needs on each of its nodes.
    pub(crate) fn per_node(resources: &Resources) -> Amount {
        Amount {
            gpus: resources.gpus.units(),
            cpus: resources.cpus.units(),
            memory: resources.memory.0,
        }
    }

    /// True when every amount is at least `need`'s.
    pub(crate) fn covers(self, need: Amount) -> bool {
        self.gpus >= need.gpus && self.cpus >= need.cpus && self.memory >= need.memory
    }

    /// The difference, floored at zero.
    pub(crate) fn minus(self, other: Amount) -> Amount {
        Amount {
            gpus: self.gpus.saturating_sub(other.gpus),
            cpus: self.cpus.saturating_sub(other.cpus),
            memory: self.memory.saturating_sub(other.memory),
        }
    }

    /// What is left after one node of `need` starts here, with free GPUs
    /// read as snapshots report them: entirely free devices plus the largest
    /// free share of a partly used one (`3.4` = three free GPUs and 0.4 of a
    /// fourth). A share below one GPU goes on one device: the partly used one
    /// when it has room (what is left of it is then the largest share this
    /// plan can count on), else a free device, leaving `1 - share` of it.
    /// Whole GPUs come off the free devices. Never more than a plain
    /// subtraction, so several shares placed on one node in one plan never
    /// add up to more than its devices hold.
    pub(crate) fn taking(self, need: Amount) -> Amount {
        let mut left = self.minus(need);
        let share = need.gpus % GPU;
        if share != 0 && need.gpus < GPU {
            let (whole, partial) = (self.gpus / GPU, self.gpus % GPU);
            left.gpus = if partial >= share {
                whole * GPU + (partial - share)
            } else if whole > 0 {
                (whole - 1) * GPU + partial.max(GPU - share)
            } else {
                0
            };
        }
        left
    }

    /// The sum, saturating.
    pub(crate) fn plus(self, other: Amount) -> Amount {
        Amount {
            gpus: self.gpus.saturating_add(other.gpus),
            cpus: self.cpus.saturating_add(other.cpus),
            memory: self.memory.saturating_add(other.memory),
        }
    }

    /// The smaller of each amount.
    pub(crate) fn min(self, other: Amount) -> Amount {
        Amount {
            gpus: self.gpus.min(other.gpus),
            cpus: self.cpus.min(other.cpus),
            memory: self.memory.min(other.memory),
        }
    }
}

/// One job's shape as the index sees it. Equal needs fit the same nodes, so
/// a need that found no nodes on a cluster finds none for the rest of the
/// plan (free capacity only shrinks during a plan).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Need {
    pub per_node: Amount,
    pub nodes: u32,
    pub accepted: Accepted,
    pub custom: Vec<(String, u64)>,
}

impl Need {
    /// The line the job queues in for capacity: GPUs per node and the
    /// accepted models. Jobs of one line compete for the same GPUs.
    pub(crate) fn line(&self) -> (u64, Accepted) {
        (self.per_node.gpus, self.accepted.clone())
    }

    /// The need of `resources`.
    pub(crate) fn new(resources: &Resources, models: &Models) -> Need {
        Need {
            per_node: Amount::per_node(resources),
            nodes: resources.nodes,
            accepted: models.accepted(resources),
            // A zero amount is met by every node, as in `static_fit`.
            custom: resources
                .custom
                .iter()
                .filter(|(_, amount)| !amount.is_zero())
                .map(|(name, amount)| (name.clone(), amount.units()))
                .collect(),
        }
    }
}
