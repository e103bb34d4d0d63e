//! The plan's contract, checked: pre-conditions on a problem and
//! post-conditions on a plan. [`crate::plan`] asserts both in debug builds;
//! tests and the trace replay can call [`verify`] on any plan.
//!
//! Written against the problem's own types (snapshots, resources, quotas),
//! not the planner's index, so it checks the planner rather than repeats it.

use std::collections::{BTreeMap, HashMap, HashSet};

use raybroker_adapter::NodeCapacity;

use crate::fit::static_fit;
use crate::forecast::Release;
use crate::need::{Models, Need};
use crate::types::{PendingJob, Plan, Problem, TenantUsage};

/// Why `problem` is not a valid input, or `Ok`.
pub(crate) fn preconditions(problem: &Problem) -> Result<(), String> {
    let mut ids = HashSet::new();
    if let Some(job) = problem.jobs.iter().find(|j| !ids.insert(j.id.as_str())) {
        return Err(format!("job {} appears twice", job.id));
    }
    let policy = problem.policy;
    let tenants = policy.tenants.iter().map(|(n, p)| (n.as_str(), p));
    for (name, tenant) in tenants.chain([("(default)", &policy.default_tenant)]) {
        if !(tenant.weight.is_finite() && tenant.weight > 0.0) {
            return Err(format!("tenant {name} has weight {}", tenant.weight));
        }
    }
    Ok(())
}

/// Per-node amounts a plan takes: GPUs and CPUs in units, memory in bytes,
/// custom resources in units.
#[derive(Default)]
struct Taken {
    gpus: u64,
    cpus: u64,
    memory: u64,
    custom: BTreeMap<String, u64>,
}

/// Which post-condition `plan` breaks for `problem`, or `Ok`:
/// - every job at most once, every job known, positions 1, 2, 3...;
/// - placed only on a fresh cluster that could run the job (constraints,
///   capabilities, shapes), on exactly `nodes` distinct nodes of it, each of
///   a GPU model the job accepts;
/// - the jobs placed on a node fit in what the node had free, together;
/// - a job above the lowest tier that could ever run it only when its
///   tenant bursts and it has waited its bound, or no lower tier that could
///   run it takes jobs now, or a job of its line (GPUs per node, accepted
///   models) has waited past its own bound;
/// - no tenant's quota, overall or per tier, broken by what was placed.
pub fn verify(problem: &Problem, plan: &Plan) -> Result<(), String> {
    check(problem, plan, false)
}

/// [`verify`] for a plan made by [`crate::plan_with_releases`]: the same
/// post-conditions, except that a job may go above its lowest feasible tier
/// before its wait bound (the forecast said no lower tier would have room
/// for it within the bound; that rule is unit-tested, not re-derived here).
pub fn verify_with_releases(
    problem: &Problem,
    _releases: &[Release],
    plan: &Plan,
) -> Result<(), String> {
    check(problem, plan, true)
}

/// The post-conditions; `forecast`: the plan had a forecast of releases.
pub(crate) fn check(problem: &Problem, plan: &Plan, forecast: bool) -> Result<(), String> {
    let jobs: HashMap<&str, &PendingJob> =
        problem.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let mut seen = HashSet::new();
    let decided = plan.placed.iter().map(|p| &p.job_id);
    for id in decided.chain(plan.waiting.iter().map(|w| &w.job_id)) {
        if !jobs.contains_key(id.as_str()) {
            return Err(format!("job {id} is not in the problem"));
        }
        if !seen.insert(id) {
            return Err(format!("job {id} is decided twice"));
        }
    }
    if let Some((i, w)) = plan
        .waiting
        .iter()
        .enumerate()
        .find(|(i, w)| w.position != i + 1)
    {
        return Err(format!(
            "job {} at index {i} has position {}",
            w.job_id, w.position
        ));
    }

    // Lines (GPUs per node, accepted models) with a job past its wait bound:
    // a job of such a line may burst before its own bound.
    let models = Models::new(problem.clusters);
    let overdue_lines: HashSet<_> = problem
        .jobs
        .iter()
        .filter(|j| j.waited_out(problem.now_ms, problem.policy))
        .map(|j| Need::new(&j.resources, &models).line())
        .collect();
    let mut nodes: HashMap<(&str, &str), &NodeCapacity> = HashMap::new();
    for cluster in problem.clusters {
        for node in cluster.snapshot.iter().flat_map(|s| &s.nodes) {
            nodes.insert((&cluster.name, &node.id), node);
        }
    }
    let mut taken: BTreeMap<(&str, &str), Taken> = BTreeMap::new();
    let mut added: BTreeMap<&str, TenantUsage> = BTreeMap::new();
    for placed in &plan.placed {
        let job = jobs[placed.job_id.as_str()];
        let r = &job.resources;
        let fail = |what: String| Err(format!("job {} on {}: {what}", job.id, placed.cluster));
        let Some(cluster) = problem.clusters.iter().find(|c| c.name == placed.cluster) else {
            return fail("no such cluster".into());
        };
        if !cluster.fresh || cluster.snapshot.is_none() {
            return fail("the cluster has no fresh snapshot".into());
        }
        if let Err(why) = static_fit(r, &job.placement, cluster) {
            return fail(format!("the cluster could never run it: {why}"));
        }
        let distinct: HashSet<&String> = placed.nodes.iter().collect();
        if placed.nodes.len() != r.nodes as usize || distinct.len() != placed.nodes.len() {
            return fail(format!(
                "{} nodes for a {}-node job",
                distinct.len(),
                r.nodes
            ));
        }
        for id in &placed.nodes {
            let Some(node) = nodes.get(&(cluster.name.as_str(), id.as_str())) else {
                return fail(format!("no node {id}"));
            };
            let model_ok = match &node.gpu_model {
                Some(model) => r.accepts_gpu(model),
                None => r.gpu_types.is_empty(),
            };
            if !r.gpus.is_zero() && !model_ok {
                return fail(format!("node {id} has GPU model {:?}", node.gpu_model));
            }
            let t = taken.entry((&cluster.name, id)).or_default();
            t.gpus += r.gpus.units();
            t.cpus += r.cpus.units();
            t.memory += r.memory.0;
            for (name, amount) in &r.custom {
                *t.custom.entry(name.clone()).or_default() += amount.units();
            }
        }
        let policy = problem.policy.tenant(&job.tenant);
        let home = problem
            .clusters
            .iter()
            .filter(|c| static_fit(r, &job.placement, c).is_ok())
            .map(|c| c.tier)
            .min()
            .unwrap_or(cluster.tier);
        let bound = job.max_wait_ms.unwrap_or(policy.max_wait_ms);
        let held_back = !forecast
            && job.waited_ms(problem.now_ms) < bound
            && !overdue_lines.contains(&Need::new(r, &models).line())
            && problem.clusters.iter().any(|c| {
                c.tier < cluster.tier && c.takes_jobs() && static_fit(r, &job.placement, c).is_ok()
            });
        if cluster.tier > home && (!policy.burst || held_back) {
            return fail(format!(
                "tier {} above home tier {home} (burst: {}, waited {} of {bound} ms)",
                cluster.tier,
                policy.burst,
                job.waited_ms(problem.now_ms)
            ));
        }
        let usage = added.entry(&job.tenant).or_default();
        usage.total = usage.total.plus(job.demand());
        let on_tier = usage.by_tier.entry(cluster.tier).or_default();
        *on_tier = on_tier.plus(job.demand());
    }

    for ((cluster, id), t) in &taken {
        let free = &nodes[&(*cluster, *id)].free;
        let custom_ok = t
            .custom
            .iter()
            .all(|(name, amount)| free.custom.get(name).map_or(0, |q| q.units()) >= *amount);
        if t.gpus > free.gpus.units()
            || t.cpus > free.cpus.units()
            || t.memory > free.memory.0
            || !custom_ok
        {
            return Err(format!(
                "node {id} of {cluster} is given more than it has free"
            ));
        }
    }
    for (tenant, add) in &added {
        let policy = problem.policy.tenant(tenant);
        let base = problem.usage.by_tenant.get(*tenant);
        let base_total = base.map(|u| u.total).unwrap_or_default();
        if let Some(why) = policy.quota.breach(base_total, add.total) {
            return Err(format!("tenant {tenant} breaks its quota: {why}"));
        }
        for (tier, amount) in &add.by_tier {
            let Some(quota) = policy.tier_quotas.get(tier) else {
                continue;
            };
            let base_tier = base
                .and_then(|u| u.by_tier.get(tier).copied())
                .unwrap_or_default();
            if let Some(why) = quota.breach(base_tier, *amount) {
                return Err(format!(
                    "tenant {tenant} breaks its tier {tier} quota: {why}"
                ));
            }
        }
    }
    Ok(())
}
