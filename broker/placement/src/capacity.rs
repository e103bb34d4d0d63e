//! The capacity one plan works on: every node of every cluster in compact
//! form, with what is free at the start of the plan, what is free now that
//! the plan has placed jobs and held capacity for reservations, and an index
//! that finds nodes for a job without visiting every node.
//!
//! The index groups a cluster's nodes by (GPU model, free GPUs) and orders
//! each group by free CPUs, so finding the tightest node for a job visits
//! the groups with an accepted model and enough free GPUs and, in each,
//! starts at the first node with enough CPUs. A group is typically one shape
//! of node in one state of use, so the work per job follows the number of
//! groups, not of nodes; the worst case (every node skipped for memory or
//! custom resources) is one pass over the nodes.

use std::collections::{BTreeMap, BTreeSet};

use raybroker_core::Quantity;

use crate::need::{Accepted, Amount, ModelKey, Models, Need};
use crate::ClusterView;

/// Which free capacity a fit is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// Free now, after this plan's placements and reservations.
    Now,
    /// Free now, were no capacity held for reservations.
    IgnoringClaims,
    /// Free at the start of the plan.
    Initial,
}

/// Capacity held on a node for a job that waited too long.
#[derive(Clone, Debug)]
pub(crate) struct Claim {
    /// Index of the job in `Problem::jobs`.
    pub job: usize,
    amount: Amount,
    custom: Vec<(String, u64)>,
}

/// One node during a plan.
pub(crate) struct Node<'a> {
    pub id: &'a str,
    pub model: ModelKey,
    pub total: Amount,
    pub initial: Amount,
    pub free: Amount,
    custom_total: &'a BTreeMap<String, Quantity>,
    custom_initial: &'a BTreeMap<String, Quantity>,
    /// Custom resources taken during the plan, claims included.
    custom_taken: Vec<(String, u64)>,
    pub claim: Option<Claim>,
}

impl Node<'_> {
    fn amount(&self, view: View) -> Amount {
        match (view, &self.claim) {
            (View::Now, _) | (View::IgnoringClaims, None) => self.free,
            (View::IgnoringClaims, Some(claim)) => self.free.plus(claim.amount),
            (View::Initial, _) => self.initial,
        }
    }

    fn custom_free(&self, name: &str, view: View) -> u64 {
        let initial = self.custom_initial.get(name).map_or(0, |q| q.units());
        let sum = |list: &[(String, u64)]| -> u64 {
            list.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .sum()
        };
        match view {
            View::Initial => initial,
            View::Now => initial.saturating_sub(sum(&self.custom_taken)),
            View::IgnoringClaims => {
                let held = self.claim.as_ref().map_or(0, |c| sum(&c.custom));
                initial.saturating_sub(sum(&self.custom_taken).saturating_sub(held))
            }
        }
    }

    fn custom_fits(&self, need: &Need, view: View) -> bool {
        need.custom
            .iter()
            .all(|(name, amount)| self.custom_free(name, view) >= *amount)
    }

    /// True when one node of `need` fits in this node's `view` capacity.
    pub(crate) fn fits(&self, need: &Need, view: View) -> bool {
        need.accepted.allows(self.model)
            && self.amount(view).covers(need.per_node)
            && self.custom_fits(need, view)
    }

    /// True when the node could ever hold one node of `need`.
    fn could_hold(&self, need: &Need) -> bool {
        need.accepted.allows(self.model)
            && self.total.covers(need.per_node)
            && need.custom.iter().all(|(name, amount)| {
                self.custom_total.get(name).map_or(0, |q| q.units()) >= *amount
            })
    }
}

/// Index entry: free CPUs, free memory, node index.
type Slot = (u64, u64, u32);

/// One cluster during a plan.
pub(crate) struct ClusterState<'a> {
    pub view: &'a ClusterView,
    /// Whether the cluster takes new jobs now (fresh snapshot, pending jobs
    /// within its allowance), and why not.
    pub accepting: Result<(), String>,
    pub nodes: Vec<Node<'a>>,
    groups: BTreeMap<(ModelKey, u64), BTreeSet<Slot>>,
    /// Node counts by (model, total) for static checks; nodes with custom
    /// resources are checked one by one instead.
    shapes: BTreeMap<(ModelKey, Amount), u32>,
    custom_nodes: Vec<u32>,
    /// Nodes holding capacity for a reservation.
    pub claimed: Vec<u32>,
    /// (node, job) for every node of every job placed here in this plan.
    pub taken: Vec<(u32, usize)>,
}

impl<'a> ClusterState<'a> {
    /// The cluster's nodes at the start of a plan.
    pub(crate) fn new(view: &'a ClusterView, models: &Models) -> ClusterState<'a> {
        let accepting = match (&view.snapshot, view.fresh) {
            (Some(s), true) if s.pending_jobs > view.pending_allowance => Err(format!(
                "already holds {} pending jobs (allowance {})",
                s.pending_jobs, view.pending_allowance
            )),
            (Some(_), true) => Ok(()),
            _ => Err(
                "no fresh capacity snapshot (cluster unreachable or not polled yet)".to_string(),
            ),
        };
        let mut state = ClusterState {
            view,
            accepting,
            nodes: Vec::new(),
            groups: BTreeMap::new(),
            shapes: BTreeMap::new(),
            custom_nodes: Vec::new(),
            claimed: Vec::new(),
            taken: Vec::new(),
        };
        let Some(snapshot) = &view.snapshot else {
            return state;
        };
        for (idx, node) in snapshot.nodes.iter().enumerate() {
            let idx = idx as u32;
            let free = Amount::of_node(&node.free);
            let entry = Node {
                id: &node.id,
                model: models.key(node.gpu_model.as_ref()),
                total: Amount::of_node(&node.total),
                initial: free,
                free,
                custom_total: &node.total.custom,
                custom_initial: &node.free.custom,
                custom_taken: Vec::new(),
                claim: None,
            };
            if node.total.custom.is_empty() {
                *state.shapes.entry((entry.model, entry.total)).or_default() += 1;
            } else {
                state.custom_nodes.push(idx);
            }
            state.index(entry.model, free, idx);
            state.nodes.push(entry);
        }
        state
    }

    fn index(&mut self, model: ModelKey, free: Amount, idx: u32) {
        self.groups
            .entry((model, free.gpus))
            .or_default()
            .insert((free.cpus, free.memory, idx));
    }

    fn unindex(&mut self, model: ModelKey, free: Amount, idx: u32) {
        if let Some(group) = self.groups.get_mut(&(model, free.gpus)) {
            group.remove(&(free.cpus, free.memory, idx));
            if group.is_empty() {
                self.groups.remove(&(model, free.gpus));
            }
        }
    }

    /// True when enough nodes have the job's shape in total. A cluster never
    /// seen (no snapshot) is given the benefit of the doubt, as in
    /// [`crate::static_fit`].
    pub(crate) fn could_ever_run(&self, need: &Need) -> bool {
        if self.view.snapshot.is_none() {
            return true;
        }
        let wanted = need.nodes as usize;
        let mut count = 0usize;
        for (&(model, total), &n) in &self.shapes {
            if need.custom.is_empty() && need.accepted.allows(model) && total.covers(need.per_node)
            {
                count += n as usize;
                if count >= wanted {
                    return true;
                }
            }
        }
        for &idx in &self.custom_nodes {
            if self.nodes[idx as usize].could_hold(need) {
                count += 1;
            }
        }
        count >= wanted
    }

    /// The best `need.nodes` nodes that can hold the job now, ranked by
    /// `rank` (smallest first, then node index), or `None` when too few fit.
    /// Within each index group only the tightest nodes by CPU are ranked.
    pub(crate) fn find<K: Ord>(
        &self,
        need: &Need,
        mut rank: impl FnMut(&Node<'a>) -> K,
    ) -> Option<Vec<(K, u32)>> {
        let wanted = need.nodes as usize;
        let mut found: Vec<(K, u32)> = Vec::new();
        if wanted == 0 {
            return Some(found);
        }
        let mut visit = |group: &BTreeSet<Slot>, found: &mut Vec<(K, u32)>| {
            let mut taken = 0;
            for &(_, memory, idx) in group.range((need.per_node.cpus, 0, 0)..) {
                if memory < need.per_node.memory {
                    continue;
                }
                let node = &self.nodes[idx as usize];
                if !node.custom_fits(need, View::Now) {
                    continue;
                }
                found.push((rank(node), idx));
                taken += 1;
                if taken == wanted {
                    break;
                }
            }
        };
        match &need.accepted {
            Accepted::Any => {
                for (&(_, gpus), group) in &self.groups {
                    if gpus >= need.per_node.gpus {
                        visit(group, &mut found);
                    }
                }
            }
            Accepted::Only(models) => {
                for &model in models {
                    let from = (model, need.per_node.gpus);
                    for group in self.groups.range(from..=(model, u64::MAX)).map(|(_, g)| g) {
                        visit(group, &mut found);
                    }
                }
            }
        }
        if found.len() < wanted {
            return None;
        }
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        found.truncate(wanted);
        Some(found)
    }

    /// The first `need.nodes` nodes (by index) that fit in `view`, if enough
    /// do. A plain pass over the nodes, for explaining why a job waits.
    pub(crate) fn fits_in(&self, need: &Need, view: View) -> Option<Vec<u32>> {
        let fitting: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].fits(need, view))
            .take(need.nodes as usize)
            .collect();
        (fitting.len() == need.nodes as usize).then_some(fitting)
    }

    /// Takes one node of `need` off node `idx`'s free capacity for `job`.
    pub(crate) fn take(&mut self, idx: u32, job: usize, need: &Need) {
        let node = &self.nodes[idx as usize];
        debug_assert!(
            node.fits(need, View::Now),
            "taking from a node that does not fit"
        );
        let (model, before) = (node.model, node.free);
        let after = before.taking(need.per_node);
        self.unindex(model, before, idx);
        let node = &mut self.nodes[idx as usize];
        node.free = after;
        node.custom_taken.extend(need.custom.iter().cloned());
        self.index(model, after, idx);
        self.taken.push((idx, job));
    }

    /// Holds what node `idx` has free, up to one node of `need`, for `job`.
    pub(crate) fn claim(&mut self, idx: u32, job: usize, need: &Need) {
        let node = &self.nodes[idx as usize];
        debug_assert!(node.claim.is_none(), "a node holds one reservation at most");
        let (model, before) = (node.model, node.free);
        let amount = before.min(need.per_node);
        let custom: Vec<(String, u64)> = need
            .custom
            .iter()
            .map(|(name, want)| (name.clone(), node.custom_free(name, View::Now).min(*want)))
            .collect();
        self.unindex(model, before, idx);
        let node = &mut self.nodes[idx as usize];
        node.free = before.minus(amount);
        node.custom_taken.extend(custom.iter().cloned());
        node.claim = Some(Claim {
            job,
            amount,
            custom,
        });
        self.index(model, before.minus(amount), idx);
        self.claimed.push(idx);
    }

    /// How far node `idx` is from holding one node of `need` now (0 = it
    /// could; 1 per resource entirely missing), or `None` when it never
    /// could or already holds a reservation.
    pub(crate) fn deficit(&self, idx: u32, need: &Need) -> Option<f64> {
        let node = &self.nodes[idx as usize];
        if node.claim.is_some() || !node.could_hold(need) {
            return None;
        }
        let missing = |want: u64, have: u64| {
            if want == 0 {
                0.0
            } else {
                want.saturating_sub(have) as f64 / want as f64
            }
        };
        let want = need.per_node;
        Some(
            missing(want.gpus, node.free.gpus)
                + missing(want.cpus, node.free.cpus)
                + missing(want.memory, node.free.memory),
        )
    }
}

#[cfg(test)]
impl Node<'static> {
    /// A node without custom resources, for unit tests.
    pub(crate) fn for_test(model: ModelKey, free: Amount, total: Amount) -> Node<'static> {
        static NONE: BTreeMap<String, Quantity> = BTreeMap::new();
        Node {
            id: "test",
            model,
            total,
            initial: free,
            free,
            custom_total: &NONE,
            custom_initial: &NONE,
            custom_taken: Vec::new(),
            claim: None,
        }
    }
}
