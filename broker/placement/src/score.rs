//! How well a job fits a node and a cluster.
//!
//! The main component is fragmentation, measured as in the FGD paper (Weng
//! et al., "Beware of Fragmentation", USENIX ATC 2023): a node's fragment is
//! the free GPU capacity that the queued workload cannot use there, weighted
//! by how common each kind of job is; a job goes where it increases the
//! fragment least. That one measure covers both rules the issue asks for:
//! - leaving the last GPUs of a node that no queued job can use (too few,
//!   wrong model, or too few CPUs left beside them) raises the fragment,
//!   while leaving none, or a remainder some queued job fits, does not;
//! - a fractional job packed onto an already partly used GPU keeps whole
//!   GPUs whole, while one that breaks a whole GPU makes its remainder a
//!   fragment for every whole-GPU job.
//!
//! Free GPUs on a node are read as whole GPUs plus at most one partly used
//! GPU (`free = 3.75` is three whole and 0.75 of one), the state packing
//! fractional jobs produces.
//!
//! Ranking, smallest first: tier; CPU-only jobs on CPU-only nodes before GPU
//! nodes; fragment increase; cost per GPU-hour; GPUs then CPUs left idle on
//! the chosen nodes (the tightest fit); cluster name.

use std::collections::BTreeMap;

use raybroker_core::quantity::QUANTITY_SCALE;
use serde::Serialize;

use crate::capacity::Node;
use crate::need::{Accepted, Amount, ModelKey, Need};
use crate::ClusterView;

/// At most this many kinds of job make up the workload fragmentation is
/// measured against (the most common ones), which bounds the cost of
/// scoring a node.
pub(crate) const MAX_CLASSES: usize = 16;

/// Of [`MAX_CLASSES`], how many are kept for the kinds needing the most GPUs
/// per node when there are more kinds than that.
const BIG_CLASSES: usize = 4;

/// One kind of queued GPU job: the GPUs it needs per node and the models it
/// accepts; CPUs and memory are the smallest any job of the kind needs.
#[derive(Clone, Copy, Debug)]
struct Class {
    gpus: u64,
    cpus: u64,
    memory: u64,
    models: u64,
    weight: u64,
}

/// The queued GPU jobs, by kind, that fragmentation is measured against.
pub(crate) struct Workload {
    classes: Vec<Class>,
    total_weight: u64,
    /// Per GPU model key: the GPUs (units) queued jobs restricted to that
    /// model ask for, a job accepting k models counting 1/k of its GPUs.
    contention: Vec<u64>,
    /// Per GPU model key: the federation's GPUs (units) of that model.
    supply: Vec<u64>,
}

/// Contention is restricted demand per GPU of the model, in thousandths.
pub(crate) const CONTENTION_SCALE: u64 = 1000;

/// The bit of a model in a class's model mask. Models beyond the 63rd share
/// the last bit: only scoring gets coarser, feasibility does not.
fn model_bit(model: ModelKey) -> u64 {
    1u64 << model.min(63)
}

fn model_mask(accepted: &Accepted) -> u64 {
    match accepted {
        Accepted::Any => u64::MAX,
        Accepted::Only(models) => models.iter().fold(0, |mask, m| mask | model_bit(*m)),
    }
}

impl Workload {
    /// The workload of the jobs a plan considers.
    pub(crate) fn new<'n>(needs: impl IntoIterator<Item = &'n Need>) -> Workload {
        let mut by_kind: BTreeMap<(u64, u64), Class> = BTreeMap::new();
        let mut contention: Vec<u64> = Vec::new();
        for need in needs {
            if need.per_node.gpus == 0 {
                continue;
            }
            if let Accepted::Only(models) = &need.accepted {
                let demand = need.per_node.gpus.saturating_mul(u64::from(need.nodes));
                let share = demand / models.len().max(1) as u64;
                for &m in models {
                    let m = m as usize;
                    if contention.len() <= m {
                        contention.resize(m + 1, 0);
                    }
                    contention[m] += share;
                }
            }
            let models = model_mask(&need.accepted);
            let class = by_kind
                .entry((need.per_node.gpus, models))
                .or_insert(Class {
                    gpus: need.per_node.gpus,
                    cpus: u64::MAX,
                    memory: u64::MAX,
                    models,
                    weight: 0,
                });
            class.cpus = class.cpus.min(need.per_node.cpus);
            class.memory = class.memory.min(need.per_node.memory);
            class.weight += 1;
        }
        let mut classes: Vec<Class> = by_kind.into_values().collect();
        // Stable sorts of a map's values: deterministic. The most common
        // kinds, plus the kinds that need the most GPUs per node however
        // rare: few big jobs wait for whole nodes, and without them in the
        // workload breaking an idle node into shares would look free.
        classes.sort_by_key(|c| std::cmp::Reverse(c.weight));
        if classes.len() > MAX_CLASSES {
            let mut rare = classes.split_off(MAX_CLASSES - BIG_CLASSES);
            rare.sort_by_key(|c| std::cmp::Reverse(c.gpus));
            rare.truncate(BIG_CLASSES);
            classes.extend(rare);
        }
        let total_weight = classes.iter().map(|c| c.weight).sum();
        Workload {
            classes,
            total_weight,
            contention,
            supply: Vec::new(),
        }
    }

    /// The federation's GPUs (units) per model key, for [`Self::contention`].
    pub(crate) fn with_supply(mut self, supply: Vec<u64>) -> Workload {
        self.supply = supply;
        self
    }

    /// The GPUs queued jobs restricted to `model` ask for, per GPU of that
    /// model (thousandths): a job that accepts several models, or any, goes
    /// to the model the others depend on least (least flexible first).
    fn contention(&self, model: ModelKey) -> u64 {
        let demand = self.contention.get(model as usize).copied().unwrap_or(0);
        let supply = self.supply.get(model as usize).copied().unwrap_or(0);
        demand.saturating_mul(CONTENTION_SCALE) / supply.max(QUANTITY_SCALE)
    }

    /// The node's fragment: free GPU units the workload cannot use, summed
    /// over kinds of job, each weighted by how many jobs are of that kind.
    fn fragment(&self, model: ModelKey, free: Amount) -> u64 {
        if free.gpus == 0 {
            return 0;
        }
        let partial = free.gpus % QUANTITY_SCALE;
        let bit = model_bit(model);
        self.classes
            .iter()
            .map(|class| {
                let unusable = if class.models & bit == 0
                    || free.cpus < class.cpus
                    || free.memory < class.memory
                {
                    free.gpus
                } else if class.gpus >= QUANTITY_SCALE {
                    // Whole GPUs: the partly used one is lost to it; all of
                    // them are when too few whole ones are left.
                    if free.gpus >= class.gpus {
                        partial
                    } else {
                        free.gpus
                    }
                } else if partial < class.gpus {
                    // A share of one GPU: only a partly used GPU with less
                    // than that left is lost to it.
                    partial
                } else {
                    0
                };
                class.weight * unusable
            })
            .sum()
    }

    /// How much placing one node of `need` on `node` raises its fragment
    /// (negative when it lowers it), in weighted GPU units.
    pub(crate) fn delta(&self, node: &Node, need: &Need) -> i64 {
        if self.classes.is_empty() {
            return 0;
        }
        let before = self.fragment(node.model, node.free);
        let after = self.fragment(node.model, node.free.minus(need.per_node));
        after as i64 - before as i64
    }

    /// A weighted fragment change in GPUs (the average over queued jobs).
    pub(crate) fn as_gpus(&self, weighted: i64) -> f64 {
        weighted as f64 / (self.total_weight.max(1) * QUANTITY_SCALE) as f64
    }
}

/// How one node ranks for a job, smallest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NodeKey {
    /// A job without GPUs on a node with GPUs takes CPUs GPU jobs need.
    pub cpu_job_on_gpu_node: bool,
    /// Queued jobs restricted to the node's GPU model: a job that accepts
    /// other models leaves those GPUs to them (least flexible first).
    pub contention: u64,
    pub fragment_delta: i64,
    pub leftover_gpus: u64,
    pub leftover_cpus: u64,
}

/// Ranks `node` for one node of `need`.
pub(crate) fn node_key(workload: &Workload, node: &Node, need: &Need) -> NodeKey {
    let left = node.free.minus(need.per_node);
    NodeKey {
        cpu_job_on_gpu_node: need.per_node.gpus == 0 && node.total.gpus > 0,
        contention: if need.per_node.gpus == 0 {
            0
        } else {
            workload.contention(node.model)
        },
        fragment_delta: workload.delta(node, need),
        leftover_gpus: left.gpus,
        leftover_cpus: left.cpus,
    }
}

/// How one cluster ranks for a job, smallest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ClusterKey<'a> {
    pub tier: u32,
    pub cpu_job_on_gpu_nodes: u32,
    pub contention: u64,
    pub fragment_delta: i64,
    /// Milli-units per GPU-hour, so the key is totally ordered.
    pub cost_milli: u64,
    pub leftover_gpus: u64,
    pub leftover_cpus: u64,
    pub name: &'a str,
}

/// Ranks a cluster by the nodes chosen on it.
pub(crate) fn cluster_key<'a>(view: &'a ClusterView, chosen: &[(NodeKey, u32)]) -> ClusterKey<'a> {
    ClusterKey {
        tier: view.tier,
        cpu_job_on_gpu_nodes: chosen.iter().filter(|(k, _)| k.cpu_job_on_gpu_node).count() as u32,
        contention: chosen.iter().map(|(k, _)| k.contention).sum(),
        fragment_delta: chosen.iter().map(|(k, _)| k.fragment_delta).sum(),
        cost_milli: (view.cost_per_gpu_hour.max(0.0) * 1000.0) as u64,
        leftover_gpus: chosen.iter().map(|(k, _)| k.leftover_gpus).sum(),
        leftover_cpus: chosen.iter().map(|(k, _)| k.leftover_cpus).sum(),
        name: &view.name,
    }
}

/// A cluster's score for a job, for explanations: the components of its
/// rank, in rank order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreComponents {
    /// The nodes the job would take.
    pub nodes: Vec<String>,
    /// The cluster's tier (lower first).
    pub tier: u32,
    /// Nodes with GPUs a job without GPUs would take (fewer first).
    pub cpu_job_on_gpu_nodes: u32,
    /// GPUs that queued jobs restricted to the chosen nodes' GPU model ask
    /// for, per GPU of that model in the federation (a job accepting k
    /// models counts 1/k), summed over the nodes (lower first).
    pub model_contention: f64,
    /// How much the GPU fragment grows, in GPUs averaged over the queued
    /// jobs (lower first; negative: it shrinks).
    pub fragmentation_delta_gpus: f64,
    /// The cluster's cost per GPU-hour (lower first).
    pub cost_per_gpu_hour: f64,
    /// GPUs left free on the chosen nodes (fewer first: the tightest fit).
    pub leftover_gpus: f64,
    /// CPUs left free on the chosen nodes (fewer first).
    pub leftover_cpus: f64,
}

impl ScoreComponents {
    pub(crate) fn new(
        workload: &Workload,
        view: &ClusterView,
        key: &ClusterKey,
        nodes: Vec<String>,
    ) -> ScoreComponents {
        let units = |u: u64| u as f64 / QUANTITY_SCALE as f64;
        ScoreComponents {
            nodes,
            tier: key.tier,
            cpu_job_on_gpu_nodes: key.cpu_job_on_gpu_nodes,
            model_contention: key.contention as f64 / CONTENTION_SCALE as f64,
            fragmentation_delta_gpus: workload.as_gpus(key.fragment_delta),
            cost_per_gpu_hour: view.cost_per_gpu_hour,
            leftover_gpus: units(key.leftover_gpus),
            leftover_cpus: units(key.leftover_cpus),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(gpus: u64, accepted: Accepted) -> Need {
        Need {
            per_node: Amount {
                gpus,
                cpus: QUANTITY_SCALE,
                memory: 0,
            },
            nodes: 1,
            accepted,
            custom: Vec::new(),
        }
    }

    fn free(gpus: u64, cpus: u64) -> Amount {
        Amount {
            gpus,
            cpus: cpus * QUANTITY_SCALE,
            memory: 1 << 30,
        }
    }

    const GPU: u64 = QUANTITY_SCALE;

    #[test]
    fn remainders_too_small_for_every_queued_job_are_fragments() {
        let eights = [need(8 * GPU, Accepted::Any)];
        let w = Workload::new(&eights);
        assert_eq!(w.fragment(1, free(8 * GPU, 64)), 0);
        assert_eq!(w.fragment(1, free(7 * GPU, 64)), 7 * GPU);
        assert_eq!(w.fragment(1, free(0, 64)), 0);
    }

    #[test]
    fn a_model_no_queued_job_accepts_is_all_fragment() {
        let only_model_2 = [need(GPU, Accepted::Only(vec![2]))];
        let w = Workload::new(&only_model_2);
        assert_eq!(w.fragment(1, free(4 * GPU, 64)), 4 * GPU);
        assert_eq!(w.fragment(2, free(4 * GPU, 64)), 0);
    }

    #[test]
    fn gpus_without_cpus_beside_them_are_fragments() {
        let w = Workload::new(&[need(GPU, Accepted::Any)]);
        assert_eq!(w.fragment(1, free(2 * GPU, 0)), 2 * GPU);
        assert_eq!(w.fragment(1, free(2 * GPU, 1)), 0);
    }

    #[test]
    fn shares_of_a_gpu_only_lose_a_partial_gpu_smaller_than_them() {
        let halves = [need(GPU / 2, Accepted::Any)];
        let w = Workload::new(&halves);
        // 2.25 free: the 0.25 GPU is too small for a half.
        assert_eq!(w.fragment(1, free(2 * GPU + GPU / 4, 8)), GPU / 4);
        assert_eq!(w.fragment(1, free(2 * GPU + GPU / 2, 8)), 0);
    }

    #[test]
    fn packing_a_share_onto_a_used_gpu_beats_breaking_a_whole_one() {
        let jobs = [need(GPU / 4, Accepted::Any), need(GPU, Accepted::Any)];
        let w = Workload::new(&jobs);
        let quarter = &jobs[0];
        let mk = |gpus| Node::for_test(1, free(gpus, 8), free(8 * GPU, 8));
        let whole = mk(8 * GPU);
        let partly_used = mk(7 * GPU + GPU / 2);
        assert!(w.delta(&partly_used, quarter) < w.delta(&whole, quarter));
        assert!(w.delta(&partly_used, quarter) < 0);
        assert!(w.as_gpus(w.delta(&whole, quarter)) > 0.0);
    }

    #[test]
    fn the_most_common_kinds_are_kept() {
        let mut needs: Vec<Need> = (1..=40).map(|g| need(g * 100, Accepted::Any)).collect();
        needs.push(need(GPU, Accepted::Any));
        needs.push(need(GPU, Accepted::Any));
        let w = Workload::new(&needs);
        assert_eq!(w.classes.len(), MAX_CLASSES);
        assert_eq!(w.classes[0].gpus, GPU);
        assert_eq!(w.classes[0].weight, 2);
    }

    #[test]
    fn contention_is_restricted_demand_per_gpu_of_the_model() {
        let needs = [
            need(GPU, Accepted::Only(vec![2])),
            need(GPU, Accepted::Only(vec![2])),
            need(GPU, Accepted::Only(vec![2])),
            need(GPU, Accepted::Only(vec![1, 2])),
            need(GPU, Accepted::Any),
        ];
        let w = Workload::new(&needs).with_supply(vec![0, 8 * GPU, 8 * GPU]);
        // Model 2: 3.5 GPUs asked of 8; model 1: 0.5 of 8; no one needs 3.
        assert_eq!(w.contention(2), 3_500 * CONTENTION_SCALE / 8_000);
        assert_eq!(w.contention(1), 500 * CONTENTION_SCALE / 8_000);
        assert_eq!(w.contention(3), 0);
    }
}
