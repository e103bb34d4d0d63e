//! Properties of every plan, over random federations, queues and policies:
//! never beyond free capacity, never a GPU model the job does not accept,
//! never beyond a quota, gangs all or nothing, higher tiers only when
//! allowed, and the same plan for the same problem in any job order.
//!
//! The checks here are written against the problem's own types, apart from
//! the planner and from `verify` (which is also called, as a second opinion).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use raybroker_adapter::{CapacitySnapshot, NodeCapacity, NodeResources};
use raybroker_core::{Bytes, GpuModel, Placement, Quantity, Resources};
use raybroker_placement::{
    plan, plan_with_releases, static_fit, verify, verify_with_releases, ClusterView, PendingJob,
    Plan, Policy, Problem, Quota, Release, TenantPolicy, Totals, Usage, WaitReason,
};

const MODELS: [&str; 3] = ["A100", "T4", "H100"];
const TENANTS: [&str; 3] = ["a", "b", "c"];
const GIB: u64 = 1 << 30;

fn arb_node(id: String) -> impl Strategy<Value = NodeCapacity> {
    (
        0usize..4,
        prop::sample::select(vec![1u64, 2, 4, 8]),
        16u64..=64,
        64u64..=256,
        0u64..=100,
        20u64..=100,
        20u64..=100,
        prop::bool::weighted(0.15),
    )
        .prop_map(
            move |(model, gpus, cpus, mem, g_pct, c_pct, m_pct, licensed)| {
                let gpus = if model == 3 { 0 } else { gpus };
                // Free GPUs in quarters, so partly used GPUs appear.
                let free_gpus = (gpus * 4 * g_pct / 100) * 2_500;
                let mut total = NodeResources {
                    cpus: Quantity::whole(cpus),
                    memory: Bytes(mem * GIB),
                    gpus: Quantity::whole(gpus),
                    custom: BTreeMap::new(),
                };
                let mut free = NodeResources {
                    cpus: Quantity::whole(cpus * c_pct / 100),
                    memory: Bytes(mem * GIB * m_pct / 100),
                    gpus: Quantity::from_units(free_gpus),
                    custom: BTreeMap::new(),
                };
                if licensed {
                    total.custom.insert("lic".into(), Quantity::whole(2));
                    free.custom.insert("lic".into(), Quantity::whole(c_pct % 3));
                }
                NodeCapacity {
                    id: id.clone(),
                    gpu_model: (model < 3).then(|| GpuModel::parse(MODELS[model]).unwrap()),
                    total,
                    free,
                }
            },
        )
}

fn arb_cluster(i: usize) -> impl Strategy<Value = ClusterView> {
    let nodes = (1usize..=8).prop_flat_map(move |n| {
        (0..n)
            .map(|k| arb_node(format!("c{i}n{k}")))
            .collect::<Vec<_>>()
    });
    (
        nodes,
        0u32..=2,
        0u32..=4,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop::bool::ANY,
        0u32..=3,
    )
        .prop_map(
            move |(nodes, tier, cost, fresh, fractional, multi, site_a, pending)| {
                let mut view = common::cluster(&format!("c{i}"), tier, nodes);
                view.cost_per_gpu_hour = f64::from(cost);
                view.fresh = fresh;
                view.capabilities.fractional_gpus = fractional;
                view.capabilities.multi_node = multi;
                view.labels
                    .insert("site".into(), if site_a { "a" } else { "b" }.into());
                view.pending_allowance = 2;
                view.snapshot.as_mut().unwrap().pending_jobs = pending;
                view
            },
        )
}

fn arb_job(i: usize) -> impl Strategy<Value = PendingJob> {
    (
        (0usize..3, -2i32..=2, 0u64..100_000),
        prop::sample::select(vec![0u64, 2_500, 5_000, 10_000, 20_000, 40_000, 80_000]),
        prop::collection::vec(0usize..3, 0..=2),
        (
            prop::sample::select(vec![1u32, 1, 1, 2, 3]),
            1u64..=8,
            0u64..=32,
        ),
        (
            prop::bool::weighted(0.1),
            0u8..4,
            prop::option::of(0u64..200_000),
        ),
    )
        .prop_map(
            move |(
                (tenant, priority, enqueued),
                gpus,
                models,
                (nodes, cpus, mem),
                (lic, constraint, max_wait),
            )| {
                let mut resources = Resources {
                    cpus: Quantity::whole(cpus),
                    memory: Bytes(mem * GIB),
                    gpus: Quantity::from_units(gpus),
                    gpu_types: models
                        .iter()
                        .map(|m| GpuModel::parse(MODELS[*m]).unwrap())
                        .collect(),
                    nodes,
                    custom: BTreeMap::new(),
                };
                resources.gpu_types.dedup();
                if lic {
                    resources.custom.insert("lic".into(), Quantity::whole(1));
                }
                let mut placement = Placement::default();
                match constraint {
                    1 => {
                        placement.required_labels.insert("site".into(), "a".into());
                    }
                    2 => placement.denied_clusters.push("c0".into()),
                    _ => {}
                }
                PendingJob {
                    id: format!("j{i}"),
                    tenant: TENANTS[tenant].into(),
                    priority,
                    enqueued_at_ms: enqueued,
                    resources,
                    placement,
                    max_wait_ms: max_wait,
                }
            },
        )
}

fn arb_quota() -> impl Strategy<Value = Quota> {
    (
        prop::option::of(0u64..=24),
        prop::option::of(0u64..=96),
        prop::option::of(0u64..=512),
    )
        .prop_map(|(g, c, m)| Quota {
            gpus: g.map(Quantity::whole),
            cpus: c.map(Quantity::whole),
            memory: m.map(|m| Bytes(m * GIB)),
        })
}

fn arb_tenant() -> impl Strategy<Value = TenantPolicy> {
    (
        1u32..=8,
        arb_quota(),
        prop::option::of(arb_quota()),
        prop::bool::ANY,
        0u64..150_000,
    )
        .prop_map(|(weight, quota, tier1, burst, max_wait_ms)| TenantPolicy {
            weight: f64::from(weight) / 2.0,
            quota,
            tier_quotas: tier1.into_iter().map(|q| (1, q)).collect(),
            burst,
            max_wait_ms,
        })
}

fn arb_problem() -> impl Strategy<Value = (Vec<PendingJob>, Vec<ClusterView>, Policy, Usage, u64)> {
    let clusters = (1usize..=4).prop_flat_map(|n| (0..n).map(arb_cluster).collect::<Vec<_>>());
    let jobs = (0usize..=40).prop_flat_map(|n| (0..n).map(arb_job).collect::<Vec<_>>());
    let policy = (
        prop::collection::vec(arb_tenant(), 3),
        prop::sample::select(vec![0u64, 10_000]),
        prop::sample::select(vec![0u64, 30_000, 90_000]),
    )
        .prop_map(|(tenants, aging, reserve)| Policy {
            tenants: TENANTS.iter().map(|t| t.to_string()).zip(tenants).collect(),
            default_tenant: TenantPolicy::default(),
            aging_ms_per_priority: aging,
            reserve_after_ms: reserve,
        });
    let usage = prop::collection::vec((0u64..=8, 0u32..=1), 3).prop_map(|used| {
        let mut usage = Usage::default();
        for (tenant, (gpus, tier)) in TENANTS.iter().zip(used) {
            usage.add(
                tenant,
                tier,
                Totals {
                    gpus: Quantity::whole(gpus),
                    cpus: Quantity::whole(gpus * 4),
                    memory: Bytes(gpus * 16 * GIB),
                },
            );
        }
        usage
    });
    (jobs, clusters, policy, usage, 100_000u64..200_000)
}

/// The properties, checked from scratch.
fn check(
    problem: &Problem,
    releases: Option<&[Release]>,
    plan: &Plan,
) -> Result<(), TestCaseError> {
    let jobs: HashMap<&str, &PendingJob> =
        problem.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    // Every job decided exactly once (queues here are shorter than the head bound).
    let mut decided: Vec<&str> = plan.placed.iter().map(|p| p.job_id.as_str()).collect();
    decided.extend(plan.waiting.iter().map(|w| w.job_id.as_str()));
    decided.sort_unstable();
    let mut all: Vec<&str> = jobs.keys().copied().collect();
    all.sort_unstable();
    prop_assert_eq!(decided, all);

    let mut taken: HashMap<(&str, &str), (u64, u64, u64, u64)> = HashMap::new();
    let mut in_flight: BTreeMap<&str, (Totals, BTreeMap<u32, Totals>)> = BTreeMap::new();
    for p in &plan.placed {
        let job = jobs[p.job_id.as_str()];
        let r = &job.resources;
        let cluster = problem
            .clusters
            .iter()
            .find(|c| c.name == p.cluster)
            .unwrap();
        prop_assert!(cluster.fresh);
        prop_assert!(static_fit(r, &job.placement, cluster).is_ok());
        // Gang: exactly its node count, distinct.
        let distinct: HashSet<&String> = p.nodes.iter().collect();
        prop_assert_eq!(p.nodes.len(), r.nodes as usize);
        prop_assert_eq!(distinct.len(), p.nodes.len());
        let snapshot = cluster.snapshot.as_ref().unwrap();
        for id in &p.nodes {
            let node = snapshot.nodes.iter().find(|n| &n.id == id).unwrap();
            if !r.gpus.is_zero() {
                match &node.gpu_model {
                    Some(model) => prop_assert!(r.accepts_gpu(model), "{} on {model}", job.id),
                    None => prop_assert!(r.gpu_types.is_empty()),
                }
            }
            let t = taken.entry((&cluster.name, id)).or_default();
            t.0 += r.gpus.units();
            t.1 += r.cpus.units();
            t.2 += r.memory.0;
            t.3 += r.custom.get("lic").map_or(0, |q| q.units());
            prop_assert!(t.0 <= node.free.gpus.units(), "GPUs of {id}");
            prop_assert!(t.1 <= node.free.cpus.units(), "CPUs of {id}");
            prop_assert!(t.2 <= node.free.memory.0, "memory of {id}");
            prop_assert!(t.3 <= node.free.custom.get("lic").map_or(0, |q| q.units()));
        }
        // Tiers: above the lowest tier that could ever run it only when allowed.
        let policy = problem.policy.tenant(&job.tenant);
        let home = problem
            .clusters
            .iter()
            .filter(|c| static_fit(r, &job.placement, c).is_ok())
            .map(|c| c.tier)
            .min()
            .unwrap();
        if cluster.tier > home {
            prop_assert!(policy.burst);
            // Before its bound, only when no lower tier that could run it
            // takes jobs (stale, or over its pending allowance), or a job of
            // its line (GPUs per node, accepted models) waited past its own.
            let line = |r: &Resources| {
                let present: Vec<&GpuModel> = problem
                    .clusters
                    .iter()
                    .filter_map(|c| c.snapshot.as_ref())
                    .flat_map(|s| &s.nodes)
                    .filter_map(|n| n.gpu_model.as_ref())
                    .collect();
                let mut models: Vec<GpuModel> = r
                    .gpu_types
                    .iter()
                    .filter(|m| present.contains(m))
                    .cloned()
                    .collect();
                models.sort();
                models.dedup();
                let any = r.gpus.is_zero() || r.gpu_types.is_empty();
                (r.gpus, (!any).then_some(models))
            };
            let line_overdue = problem.jobs.iter().any(|other| {
                line(&other.resources) == line(r)
                    && other.waited_ms(problem.now_ms)
                        >= other
                            .max_wait_ms
                            .unwrap_or(problem.policy.tenant(&other.tenant).max_wait_ms)
            });
            let lower_takes = !line_overdue
                && problem.clusters.iter().any(|c| {
                    c.tier < cluster.tier
                        && c.fresh
                        && c.snapshot.as_ref().unwrap().pending_jobs <= c.pending_allowance
                        && static_fit(r, &job.placement, c).is_ok()
                });
            // With a forecast it may go before its bound (no lower tier
            // frees room for it in time; tests/forecast.rs checks that rule).
            prop_assert!(
                releases.is_some()
                    || job.waited_ms(problem.now_ms)
                        >= job.max_wait_ms.unwrap_or(policy.max_wait_ms)
                    || !lower_takes
            );
        }
        let entry = in_flight.entry(&job.tenant).or_default();
        entry.0 = entry.0.plus(job.demand());
        let tier = entry.1.entry(cluster.tier).or_default();
        *tier = tier.plus(job.demand());
    }
    // Quotas: what was in flight plus what the plan adds.
    for (tenant, (total, by_tier)) in &in_flight {
        let policy = problem.policy.tenant(tenant);
        let base = problem
            .usage
            .by_tenant
            .get(*tenant)
            .cloned()
            .unwrap_or_default();
        let within = |q: &Quota, used: Totals| {
            q.gpus.is_none_or(|l| used.gpus <= l)
                && q.cpus.is_none_or(|l| used.cpus <= l)
                && q.memory.is_none_or(|l| used.memory <= l)
        };
        prop_assert!(
            within(&policy.quota, base.total.plus(*total)),
            "quota of {tenant}"
        );
        for (tier, added) in by_tier {
            if let Some(q) = policy.tier_quotas.get(tier) {
                let before = base.by_tier.get(tier).copied().unwrap_or_default();
                prop_assert!(
                    within(q, before.plus(*added)),
                    "tier {tier} quota of {tenant}"
                );
            }
        }
    }
    // A job never fits exactly when no cluster could ever run it.
    for w in &plan.waiting {
        let job = jobs[w.job_id.as_str()];
        let anywhere = problem
            .clusters
            .iter()
            .any(|c| static_fit(&job.resources, &job.placement, c).is_ok());
        prop_assert_eq!(matches!(w.reason, WaitReason::NeverFits { .. }), !anywhere);
    }
    match releases {
        None => prop_assert_eq!(verify(problem, plan), Ok(())),
        Some(r) => prop_assert_eq!(verify_with_releases(problem, r, plan), Ok(())),
    }
    Ok(())
}

/// Releases on random nodes of `clusters` (some of unknown nodes), by
/// times around `now`: what running jobs would give back.
fn arb_releases(clusters: &[ClusterView], now: u64) -> impl Strategy<Value = Vec<Release>> {
    let mut nodes: Vec<(String, String)> = clusters
        .iter()
        .flat_map(|c| {
            let ids = c
                .snapshot
                .iter()
                .flat_map(|s| &s.nodes)
                .map(|n| n.id.clone());
            ids.map(move |id| (c.name.clone(), id))
        })
        .collect();
    nodes.push(("nowhere".to_string(), "n0".to_string()));
    let release = (prop::sample::select(nodes), 0u64..4, 0u64..1_200_000).prop_map(
        move |((cluster, node), gpus, after)| Release {
            cluster,
            node,
            by_ms: now + after,
            frees: Totals {
                gpus: Quantity::whole(gpus),
                cpus: Quantity::whole(gpus * 4),
                memory: Bytes(gpus * 16 * GIB),
            },
        },
    );
    prop::collection::vec(release, 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_plan_keeps_its_promises((jobs, clusters, policy, usage, now) in arb_problem()) {
        let problem = Problem { now_ms: now, jobs: &jobs, clusters: &clusters, policy: &policy, usage: &usage };
        let first = plan(&problem);
        check(&problem, None, &first)?;
        // Deterministic, and independent of the order jobs are given in.
        prop_assert_eq!(&plan(&problem), &first);
        let mut reversed = jobs.clone();
        reversed.reverse();
        let problem = Problem { jobs: &reversed, ..problem };
        prop_assert_eq!(&plan(&problem), &first);
    }

    #[test]
    fn plans_with_a_forecast_keep_their_promises(
        ((jobs, clusters, policy, usage, now), releases) in arb_problem()
            .prop_flat_map(|p| { let r = arb_releases(&p.1, p.4); (Just(p), r) })
    ) {
        let problem = Problem { now_ms: now, jobs: &jobs, clusters: &clusters, policy: &policy, usage: &usage };
        let first = plan_with_releases(&problem, &releases);
        check(&problem, Some(&releases), &first)?;
        prop_assert_eq!(&plan_with_releases(&problem, &releases), &first);
        let mut reversed = releases.clone();
        reversed.reverse();
        prop_assert_eq!(&plan_with_releases(&problem, &reversed), &first);
    }

    #[test]
    fn placing_what_a_plan_placed_leaves_nothing_negative(
        (jobs, clusters, policy, usage, now) in arb_problem()
    ) {
        // Applying a plan with `reserve`, the way dispatch applies it, never
        // needs to clamp: each node had what the plan gave out.
        let problem = Problem { now_ms: now, jobs: &jobs, clusters: &clusters, policy: &policy, usage: &usage };
        let result = plan(&problem);
        let mut after: Vec<CapacitySnapshot> = clusters.iter().filter_map(|c| c.snapshot.clone()).collect();
        for p in &result.placed {
            let job = jobs.iter().find(|j| j.id == p.job_id).unwrap();
            let i = clusters.iter().filter(|c| c.snapshot.is_some()).position(|c| c.name == p.cluster).unwrap();
            for id in &p.nodes {
                let node = after[i].nodes.iter().find(|n| &n.id == id).unwrap();
                prop_assert!(node.free.gpus >= job.resources.gpus);
                prop_assert!(node.free.cpus >= job.resources.cpus);
                prop_assert!(node.free.memory >= job.resources.memory);
            }
            raybroker_placement::reserve(&mut after[i], &job.resources, &p.nodes);
        }
    }
}
