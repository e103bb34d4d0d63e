//! [`plan`]: the decisions of one dispatch round, in order, over a working
//! copy of the clusters' free capacity.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::capacity::ClusterState;
use crate::decide::decide;
use crate::explain::Trace;
use crate::fairness::{self, Ledger, Share};
use crate::forecast::{Outlook, Release};
use crate::need::{Accepted, Models, Need};
use crate::score::Workload;
use crate::types::{PendingJob, Placed, Plan, Problem, WaitReason, Waiting};
use crate::verify::{check, preconditions};
use raybroker_core::Placement;

/// The most reservations one plan makes (one per tenant at most).
pub const MAX_RESERVATIONS: usize = 16;

/// The most jobs of one kind (same shape, placement constraints and wait
/// bound) of one tenant a plan considers: the oldest of that kind in the
/// tenant's head. A later job of the kind waits behind them: what stops
/// them (no free node of that shape, a wait bound) stops it too, and it is
/// considered once they start. Bounding per kind rather than only per
/// tenant keeps one stuck kind (T4-only jobs while the T4 nodes are full)
/// from hiding the tenant's other jobs, while a plan's work stays bounded.
pub const MAX_HEAD_PER_SHAPE: usize = 32;

/// Decides which queued jobs start now and where, and why the others wait:
/// a pure, deterministic function of the problem.
///
/// Pre-conditions (asserted in debug builds): job ids are unique, tenant
/// weights are positive. Post-conditions (asserted in debug builds with
/// [`crate::verify`], and property-tested): nothing placed beyond free
/// capacity or on a GPU model the job does not accept, no quota broken, a
/// multi-node job gets all its nodes or none, a job above the lowest tier
/// that could ever run it only when its tenant bursts and its wait bound has
/// passed. Same problem, same plan: every collection iterated is ordered.
///
/// Order of decisions:
/// 1. The head of each tenant's queue: at most [`crate::MAX_HEAD_PER_TENANT`]
///    jobs by effective priority (priority plus aging), then age, and of
///    those at most [`MAX_HEAD_PER_SHAPE`] of each kind of job. The others
///    appear in neither list of the plan.
/// 2. Reservations: each tenant's oldest considered job that has waited
///    `reserve_after_ms`, oldest first, at most [`crate::MAX_RESERVATIONS`].
///    It starts if it can; otherwise what its best cluster has free, up to
///    its shape, is held for it, so later (smaller) jobs only backfill onto
///    capacity it does not need.
/// 3. The rest, tenant by tenant: a tenant offers its next job, jobs that
///    have waited at least one aging step (`aging_ms_per_priority`) first,
///    oldest first, whatever their tenant; then by weighted DRF, the tenant
///    with the smallest dominant share first (its share is recomputed when
///    the job is placed). DRF orders the jobs that just arrived; a job it
///    put behind another tenant's younger ones competes by age once it has
///    waited an aging step, so fair share never defers one tenant's work
///    for longer than that (aging across tenants, as aging within one).
///    With no aging (0), DRF alone.
///
/// One job: the clusters that could ever run it (none: it never fits); its
/// overall quota; then tier by tier from the lowest that could ever run it
/// (its home tier), the best cluster that can start it now. A tier above
/// home is used only when no lower tier can start it, its tenant bursts, and
/// it has waited its bound. Best, in order (see [`crate::ScoreComponents`]):
/// no CPU-only job on GPU nodes; the least growth of GPU fragmentation, the
/// free GPUs the queued jobs could not use (FGD, Weng et al., ATC 2023: keep
/// remainders usable, pack GPU shares onto partly used GPUs); the lowest
/// cost per GPU-hour; the tightest fit.
///
/// Cost: one pass over `problem.jobs` to pick the heads (dispatch passes only
/// heads), an index of the nodes by (GPU model, free GPUs), then per decision
/// a visit of the index groups for the job's models and a score of the few
/// nodes found against at most 16 kinds of queued job: never dependent on
/// how many jobs are queued behind the heads.
pub fn plan(problem: &Problem) -> Plan {
    run(problem, None, None).0
}

/// [`plan`] with a forecast of when lower tiers will have room: what each
/// running job gives back at the latest by its time limit (see
/// [`crate::Release`]). A job that a higher tier could start now, and that
/// by the forecast no lower tier will have room for within its wait bound
/// (less what the forecast already promised to jobs decided before it),
/// bursts now instead of after its bound. A job waiting for capacity is
/// promised what frees within its bound on its lowest feasible tier, so the
/// jobs behind it do not count on the same capacity. `plan` is this with
/// no forecast: every job waits its whole bound before it bursts.
///
/// Pass every running job the broker knows a time limit for; a running job
/// without one is left out (it may never end). An empty list says that
/// nothing is known to free within any bound.
pub fn plan_with_releases(problem: &Problem, releases: &[Release]) -> Plan {
    run(problem, Some(releases), None).0
}

/// Interns the placement constraints of jobs, so jobs of one shape and
/// constraints count as one kind for [`MAX_HEAD_PER_SHAPE`]. A linear scan:
/// almost every job has the default constraints.
#[derive(Default)]
pub(crate) struct Kinds<'a> {
    seen: Vec<&'a Placement>,
}

impl<'a> Kinds<'a> {
    /// The number of `job`'s constraints.
    pub(crate) fn of(&mut self, job: &'a PendingJob) -> usize {
        if let Some(i) = self.seen.iter().position(|p| **p == job.placement) {
            return i;
        }
        self.seen.push(&job.placement);
        self.seen.len() - 1
    }
}

/// A considered job.
pub(crate) struct Candidate {
    /// Index in `Problem::jobs`.
    pub(crate) job: usize,
    pub(crate) need: Need,
    /// Equal needs share a shape id (for the no-fit caches).
    pub(crate) shape: u32,
}

/// What does not change during a plan.
pub(crate) struct Input<'a> {
    pub(crate) problem: Problem<'a>,
    pub(crate) workload: Workload,
    pub(crate) candidates: Vec<Candidate>,
    /// Tenants by name, each with its candidates in queue order.
    pub(crate) tenants: Vec<(&'a str, Vec<usize>)>,
    /// Cluster indices by tier (lowest first), by name within a tier.
    pub(crate) tiers: Vec<(u32, Vec<usize>)>,
    /// The job being explained, if any.
    pub(crate) trace: Option<usize>,
    /// Lines (GPUs per node and accepted models) in which some considered
    /// job has waited past its own wait bound.
    pub(crate) overdue_lines: HashSet<(u64, Accepted)>,
}

/// What a plan changes as it decides.
pub(crate) struct State<'a> {
    pub(crate) clusters: Vec<ClusterState<'a>>,
    pub(crate) ledger: Ledger<'a>,
    /// (shape, cluster) pairs that found no nodes: they find none for the
    /// rest of the plan, as free capacity only shrinks.
    pub(crate) no_fit: HashSet<(u32, usize)>,
    /// Whether a shape fitted a cluster's capacity at the start of the plan.
    pub(crate) fitted_initially: HashMap<(u32, usize), bool>,
    pub(crate) placed: Vec<Placed>,
    /// Job index and reason, in decision order.
    pub(crate) waiting: Vec<(usize, WaitReason)>,
    pub(crate) trace: Option<Trace>,
    /// When lower tiers will have room, when the caller knows.
    pub(crate) outlook: Option<Outlook>,
}

/// When a tenant offers its next job: aged jobs first, oldest first, then
/// the others by their tenant's weighted dominant share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Turn {
    /// The job has waited at least one aging step: when it was enqueued.
    Aged(u64),
    /// Its tenant's weighted dominant share.
    Share(Share),
}

/// Moves `cursor` to tenant `t`'s next undecided candidate and says when
/// that candidate's turn is, or `None` when the tenant has none left.
fn next_turn(
    input: &Input,
    state: &State,
    decided: &[bool],
    cursor: &mut usize,
    t: usize,
) -> Option<Turn> {
    let (name, list) = &input.tenants[t];
    while *cursor < list.len() && decided[list[*cursor]] {
        *cursor += 1;
    }
    let job = &input.problem.jobs[input.candidates[*list.get(*cursor)?].job];
    let step = input.problem.policy.aging_ms_per_priority;
    Some(if step > 0 && job.waited_ms(input.problem.now_ms) >= step {
        Turn::Aged(job.enqueued_at_ms)
    } else {
        Turn::Share(Share(state.ledger.share(name)))
    })
}

/// [`plan`] (with the forecast of `releases`, when given), recording how
/// the job at index `trace` was decided.
pub(crate) fn run(
    problem: &Problem,
    releases: Option<&[Release]>,
    trace: Option<usize>,
) -> (Plan, Option<Trace>) {
    debug_assert_eq!(preconditions(problem), Ok(()));
    let problem = *problem;
    let jobs = problem.jobs;
    let models = Models::new(problem.clusters);
    let mut shapes: HashMap<Need, u32> = HashMap::new();
    let mut candidates = Vec::new();
    let mut tenants = Vec::new();
    let mut kinds = Kinds::default();
    for (tenant, list) in fairness::heads(&problem) {
        let mut mine = Vec::with_capacity(list.len());
        let mut per_kind: HashMap<(u32, usize, Option<u64>), usize> = HashMap::new();
        for job in list {
            let need = Need::new(&jobs[job].resources, &models);
            let next = shapes.len() as u32;
            let shape = *shapes.entry(need.clone()).or_insert(next);
            let kind = (shape, kinds.of(&jobs[job]), jobs[job].max_wait_ms);
            let seen = per_kind.entry(kind).or_default();
            if *seen == MAX_HEAD_PER_SHAPE {
                continue; // waits behind older jobs of its kind
            }
            *seen += 1;
            mine.push(candidates.len());
            candidates.push(Candidate { job, need, shape });
        }
        tenants.push((tenant, mine));
    }
    let mut supply: Vec<u64> = Vec::new();
    let snapshots = problem.clusters.iter().filter_map(|c| c.snapshot.as_ref());
    for node in snapshots.flat_map(|s| &s.nodes) {
        let model = models.key(node.gpu_model.as_ref()) as usize;
        if supply.len() <= model {
            supply.resize(model + 1, 0);
        }
        supply[model] += node.total.gpus.units();
    }
    let mut by_tier: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, cluster) in problem.clusters.iter().enumerate() {
        by_tier.entry(cluster.tier).or_default().push(i);
    }
    for group in by_tier.values_mut() {
        group.sort_by(|a, b| problem.clusters[*a].name.cmp(&problem.clusters[*b].name));
    }
    let overdue_lines = candidates
        .iter()
        .filter(|c| jobs[c.job].waited_out(problem.now_ms, problem.policy))
        .map(|c| c.need.line())
        .collect();
    let input = Input {
        problem,
        overdue_lines,
        workload: Workload::new(candidates.iter().map(|c| &c.need)).with_supply(supply),
        candidates,
        tenants,
        tiers: by_tier.into_iter().collect(),
        trace,
    };
    let clusters: Vec<ClusterState> = problem
        .clusters
        .iter()
        .map(|v| ClusterState::new(v, &models))
        .collect();
    let mut state = State {
        outlook: releases.map(|r| Outlook::new(&clusters, r)),
        clusters,
        ledger: Ledger::new(&problem),
        no_fit: HashSet::new(),
        fitted_initially: HashMap::new(),
        placed: Vec::new(),
        waiting: Vec::new(),
        trace: None,
    };
    let mut decided = vec![false; input.candidates.len()];

    let age = |c: &usize| {
        let job = &jobs[input.candidates[*c].job];
        (job.enqueued_at_ms, job.id.as_str())
    };
    let reserve_after = problem.policy.reserve_after_ms;
    if reserve_after > 0 {
        let mut overdue: Vec<usize> = input
            .tenants
            .iter()
            .filter_map(|(_, list)| {
                list.iter()
                    .copied()
                    .filter(|c| {
                        jobs[input.candidates[*c].job].waited_ms(problem.now_ms) >= reserve_after
                    })
                    .min_by_key(age)
            })
            .collect();
        overdue.sort_by_key(age);
        overdue.truncate(MAX_RESERVATIONS);
        for c in overdue {
            decide(&input, &mut state, c, true);
            decided[c] = true;
        }
    }

    let mut cursors = vec![0usize; input.tenants.len()];
    let mut turns: BTreeSet<(Turn, usize)> = BTreeSet::new();
    for (t, cursor) in cursors.iter_mut().enumerate() {
        if let Some(turn) = next_turn(&input, &state, &decided, cursor, t) {
            turns.insert((turn, t));
        }
    }
    while let Some((_, t)) = turns.pop_first() {
        let c = input.tenants[t].1[cursors[t]];
        cursors[t] += 1;
        decide(&input, &mut state, c, false);
        decided[c] = true;
        if let Some(turn) = next_turn(&input, &state, &decided, &mut cursors[t], t) {
            turns.insert((turn, t));
        }
    }

    let waiting = state
        .waiting
        .into_iter()
        .enumerate()
        .map(|(i, (job, reason))| Waiting {
            job_id: jobs[job].id.clone(),
            position: i + 1,
            reason,
        })
        .collect();
    let plan = Plan {
        placed: state.placed,
        waiting,
    };
    debug_assert_eq!(check(&problem, &plan, releases.is_some()), Ok(()));
    (plan, state.trace)
}
