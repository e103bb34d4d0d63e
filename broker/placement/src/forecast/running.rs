//! Releases for running jobs whose nodes the backend does not report.
//!
//! Ray's Jobs API, KubeRay and Slurm tell the broker that a job runs, not on
//! which node its tasks hold resources. [`releases_of_running`] attributes
//! each running job's release to nodes of its cluster that have at least that
//! much in use (total less free in the snapshot), of a GPU model the job
//! accepts, and never attributes to a node more than it has in use. The
//! forecast may then name the wrong node of the right shape, but it never
//! counts on capacity that is not held by some running job.

use raybroker_adapter::NodeResources;
use raybroker_core::{Bytes, GpuModel, Quantity, Resources};

use crate::types::Totals;
use crate::ClusterView;

use super::Release;

/// A job running on a cluster, as the broker knows it.
#[derive(Clone, Debug)]
pub struct RunningJob<'a> {
    /// The cluster of its current attempt.
    pub cluster: &'a str,
    /// When it ends at the latest: seen running plus its time limit, ms
    /// since the epoch.
    pub by_ms: u64,
    /// What it asked for (per node, on `nodes` nodes, of the accepted
    /// GPU models).
    pub resources: &'a Resources,
}

/// What one node has in use, left to attribute.
struct InUse<'a> {
    id: &'a str,
    model: Option<&'a GpuModel>,
    left: Totals,
}

/// One release per node a running job holds, attributed by best fit (the
/// node with the least in use that still covers the job's share) in order
/// of `by_ms`, then of `running`. Jobs that find too few nodes (the snapshot
/// shows less in use than they hold, e.g. it predates their start) give no
/// release: the forecast then counts on less, never on more.
///
/// `unexplained_by` says what to assume of capacity in use that no job of
/// `running` accounts for (a job without a time limit, work the broker did
/// not send): `None`, that it never frees; `Some(at)`, that it may free by
/// `at`, so a job that could use it waits its bound as if there were no
/// forecast, while jobs that could not burst at once.
pub fn releases_of_running(
    clusters: &[ClusterView],
    running: &[RunningJob<'_>],
    unexplained_by: Option<u64>,
) -> Vec<Release> {
    // Per cluster, its nodes' capacity in use.
    let mut in_use: Vec<Vec<InUse<'_>>> = clusters
        .iter()
        .map(|cluster| {
            let nodes = cluster.snapshot.as_ref().map_or(&[][..], |s| &s.nodes);
            nodes
                .iter()
                .map(|node| InUse {
                    id: &node.id,
                    model: node.gpu_model.as_ref(),
                    left: minus(totals(&node.total), totals(&node.free)),
                })
                .collect()
        })
        .collect();
    let mut order: Vec<&RunningJob<'_>> = running.iter().collect();
    order.sort_by_key(|job| job.by_ms);
    let mut releases = Vec::new();
    for job in order {
        let Some(ci) = clusters.iter().position(|c| c.name == job.cluster) else {
            continue;
        };
        let share = Totals {
            gpus: job.resources.gpus,
            cpus: job.resources.cpus,
            memory: job.resources.memory,
        };
        let wanted = job.resources.nodes.max(1) as usize;
        let nodes = &mut in_use[ci];
        let mut chosen: Vec<usize> = Vec::with_capacity(wanted);
        while chosen.len() < wanted {
            let best = nodes
                .iter()
                .enumerate()
                .filter(|(k, n)| {
                    !chosen.contains(k)
                        && covers(n.left, share)
                        && model_accepted(&job.resources.gpu_types, share, n.model)
                })
                .min_by_key(|(_, n)| (n.left.gpus.units(), n.left.cpus.units(), n.left.memory.0))
                .map(|(k, _)| k);
            match best {
                Some(k) => chosen.push(k),
                None => break,
            }
        }
        if chosen.len() < wanted {
            continue;
        }
        for k in chosen {
            let node = &mut nodes[k];
            node.left = minus(node.left, share);
            releases.push(Release {
                cluster: job.cluster.to_string(),
                node: node.id.to_string(),
                by_ms: job.by_ms,
                frees: share,
            });
        }
    }
    if let Some(at) = unexplained_by {
        for (cluster, nodes) in clusters.iter().zip(&in_use) {
            for node in nodes.iter().filter(|n| n.left != Totals::default()) {
                releases.push(Release {
                    cluster: cluster.name.clone(),
                    node: node.id.to_string(),
                    by_ms: at,
                    frees: node.left,
                });
            }
        }
    }
    releases
}

fn covers(have: Totals, want: Totals) -> bool {
    have.gpus >= want.gpus && have.cpus >= want.cpus && have.memory >= want.memory
}

fn totals(resources: &NodeResources) -> Totals {
    Totals {
        gpus: resources.gpus,
        cpus: resources.cpus,
        memory: resources.memory,
    }
}

/// `have` less `take`, each resource at least zero.
fn minus(have: Totals, take: Totals) -> Totals {
    let less = |a: u64, b: u64| a.saturating_sub(b);
    Totals {
        gpus: Quantity::from_units(less(have.gpus.units(), take.gpus.units())),
        cpus: Quantity::from_units(less(have.cpus.units(), take.cpus.units())),
        memory: Bytes(less(have.memory.0, take.memory.0)),
    }
}

/// A job holding GPUs runs on a node of a model it accepts (any model when
/// it names none); a CPU-only job may run on any node.
fn model_accepted(accepted: &[GpuModel], share: Totals, model: Option<&GpuModel>) -> bool {
    if share.gpus.units() == 0 || accepted.is_empty() {
        return true;
    }
    model.is_some_and(|m| accepted.contains(m))
}
