//! When lower tiers will have room: the capacity running jobs give back by
//! their time limits, the way Slurm's backfill plans with time limits.
//!
//! A job may go above its lowest feasible tier once it has waited its bound
//! ([`crate::TenantPolicy::max_wait_ms`]). Waiting the whole bound is the
//! naive reading of "burst only when no lower tier can start it within the
//! bound": when the broker knows what its running jobs will give back and
//! by when (start plus time limit, the latest they can end), it can tell at
//! once that no lower tier will have room for the job within its bound, and
//! burst it now instead of after the bound, with no more cloud use than the
//! bound allows.
//!
//! The forecast is conservative: a release counts at its latest time, and
//! the capacity it promises is handed out once per plan, oldest waiting job
//! first, so a queue of jobs does not all count on the one node that frees
//! next. A job waiting for capacity is promised what frees within its bound
//! on its lowest feasible tier; a job that could burst now waits only while
//! what is left of the forecast gives it room on a lower tier by its bound.

use std::collections::HashMap;

use serde::Serialize;

use crate::capacity::ClusterState;
use crate::need::{Accepted, Amount, ModelKey, Need};
use crate::types::Totals;

mod running;
pub use running::{releases_of_running, RunningJob};

/// Capacity a running job gives back at the latest at `by_ms`: when it
/// started plus its time limit. A job without a time limit gives no release
/// (it may run forever), so the forecast never counts on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Release {
    /// The cluster it runs on.
    pub cluster: String,
    /// The node whose capacity it holds (one release per node of a gang).
    pub node: String,
    /// When it ends at the latest, ms since the epoch.
    pub by_ms: u64,
    /// What it holds on that node.
    pub frees: Totals,
}

/// One node's releases.
struct NodeReleases {
    model: ModelKey,
    node: u32,
    /// `(by_ms, amount)`, sorted by time.
    list: Vec<(u64, Amount)>,
}

/// The releases of one plan, indexed, and what the plan has promised of them.
pub(crate) struct Outlook {
    /// Per cluster index: the nodes with releases, by (GPU model, node
    /// index), each with its `(by_ms, amount)` sorted by time.
    releases: Vec<Vec<NodeReleases>>,
    /// Forecast capacity promised to waiting jobs, per cluster and node.
    promised: Vec<Vec<Amount>>,
    /// Per (shape, clusters looked at as a bit set): the latest time by
    /// which no room was found. Free capacity only shrinks and promises only
    /// grow during a plan, so the shape finds no room by then or earlier.
    no_room: HashMap<(u32, u64), u64>,
}

impl Outlook {
    /// Indexes `releases` by the clusters' and nodes' positions in the plan;
    /// releases of unknown clusters or nodes are dropped.
    pub(crate) fn new(clusters: &[ClusterState], releases: &[Release]) -> Outlook {
        let names: HashMap<&str, usize> = clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.view.name.as_str(), i))
            .collect();
        let nodes: Vec<HashMap<&str, u32>> = clusters
            .iter()
            .map(|c| (0..).zip(&c.nodes).map(|(i, n)| (n.id, i)).collect())
            .collect();
        // (model, node, by_ms, amount) per cluster, then grouped by node.
        let mut flat: Vec<Vec<(ModelKey, u32, u64, Amount)>> = vec![Vec::new(); clusters.len()];
        for release in releases {
            let Some(&ci) = names.get(release.cluster.as_str()) else {
                continue;
            };
            let Some(&ni) = nodes[ci].get(release.node.as_str()) else {
                continue;
            };
            let amount = Amount {
                gpus: release.frees.gpus.units(),
                cpus: release.frees.cpus.units(),
                memory: release.frees.memory.0,
            };
            let model = clusters[ci].nodes[ni as usize].model;
            flat[ci].push((model, ni, release.by_ms, amount));
        }
        let releases = flat
            .into_iter()
            .map(|mut list| {
                list.sort_unstable();
                let mut nodes: Vec<NodeReleases> = Vec::new();
                for (model, node, at, amount) in list {
                    match nodes.last_mut() {
                        Some(last) if last.node == node => last.list.push((at, amount)),
                        _ => nodes.push(NodeReleases {
                            model,
                            node,
                            list: vec![(at, amount)],
                        }),
                    }
                }
                nodes
            })
            .collect();
        Outlook {
            releases,
            promised: clusters
                .iter()
                .map(|c| vec![Amount::default(); c.nodes.len()])
                .collect(),
            no_room: HashMap::new(),
        }
    }

    /// Promises one node of `need` (shape id `shape`) on each of `need.nodes` nodes of the
    /// clusters `among` that, by `by_ms`, will have room for it: what they
    /// have free now in the plan, plus what frees by then, less what was
    /// promised to jobs decided before. True when enough nodes were found
    /// (and are now promised); false, promising nothing, otherwise.
    ///
    /// Only nodes with releases are looked at: a node that has room now
    /// would have been found by the placement itself.
    pub(crate) fn promise(
        &mut self,
        clusters: &[ClusterState],
        among: &[usize],
        need: &Need,
        shape: u32,
        by_ms: u64,
    ) -> bool {
        let wanted = need.nodes as usize;
        if wanted == 0 {
            return true;
        }
        // More than 64 clusters: no cache (the answer is the same).
        let set = among
            .iter()
            .try_fold(0u64, |set, &ci| (ci < 64).then(|| set | 1 << ci));
        let key = set.map(|set| (shape, set));
        if key
            .and_then(|k| self.no_room.get(&k))
            .is_some_and(|at| by_ms <= *at)
        {
            return false;
        }
        let mut found: Vec<(usize, u32)> = Vec::new();
        let mut earliest = u64::MAX;
        'clusters: for &ci in among {
            let Some(releases) = self.releases.get(ci) else {
                continue;
            };
            let models: &[ModelKey] = match &need.accepted {
                Accepted::Any => &[],
                Accepted::Only(models) => models,
            };
            let ranges: Vec<&[NodeReleases]> = if models.is_empty() {
                vec![releases]
            } else {
                models
                    .iter()
                    .map(|m| {
                        let from = releases.partition_point(|n| n.model < *m);
                        let to = releases.partition_point(|n| n.model <= *m);
                        &releases[from..to]
                    })
                    .collect()
            };
            for NodeReleases { node: ni, list, .. } in ranges.into_iter().flatten() {
                let ni = *ni;
                let node = &clusters[ci].nodes[ni as usize];
                if !node.total.covers(need.per_node) {
                    continue;
                }
                // The first time the node has room: after which release.
                let promised = self.promised[ci][ni as usize];
                let mut freed = node.free;
                let mut room_at = None;
                for (at, amount) in list {
                    freed = freed.plus(*amount);
                    if freed.min(node.total).minus(promised).covers(need.per_node) {
                        room_at = Some(*at);
                        break;
                    }
                }
                match room_at {
                    Some(at) if at <= by_ms => {
                        found.push((ci, ni));
                        if found.len() == wanted {
                            break 'clusters;
                        }
                    }
                    Some(at) => earliest = earliest.min(at),
                    None => {}
                }
            }
        }
        if found.len() < wanted {
            // No node has room before `earliest` (a gang needs several).
            if let Some(key) = key {
                let before = earliest.saturating_sub(1).max(by_ms);
                let at = self.no_room.entry(key).or_insert(before);
                *at = (*at).max(before);
            }
            return false;
        }
        for (ci, ni) in found {
            let held = &mut self.promised[ci][ni as usize];
            *held = held.plus(need.per_node);
        }
        true
    }
}
