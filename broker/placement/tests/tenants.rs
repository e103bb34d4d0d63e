//! Tenants: fair share, priorities and aging, quotas, reservations, and the
//! bounded head of each queue.

mod common;

use common::*;
use raybroker_core::Quantity;
use raybroker_placement::{
    Quota, Reserved, TenantPolicy, Totals, Usage, WaitReason, MAX_HEAD_PER_SHAPE,
    MAX_HEAD_PER_TENANT,
};

fn gpus(n: u64) -> Totals {
    Totals {
        gpus: Quantity::whole(n),
        ..Totals::default()
    }
}

fn one_free_gpu() -> Vec<raybroker_placement::ClusterView> {
    vec![cluster("c", 0, vec![node("n", Some("A100"), 8.0, 1.0)])]
}

#[test]
fn the_tenant_with_the_smaller_dominant_share_goes_first() {
    let mut usage = Usage::default();
    usage.add("busy", 0, gpus(6));
    let jobs = [
        job("a-busy", "busy", 1.0, ""),
        job("b-idle", "idle", 1.0, ""),
    ];
    let plan = run(0, &jobs, &one_free_gpu(), &plain_policy(), &usage);
    assert_eq!(placed(&plan, "b-idle").0, "c");
    match &plan.waiting_of("a-busy").unwrap().reason {
        WaitReason::FairShare {
            dominant_share,
            ahead,
        } => {
            assert_eq!(ahead, &["idle".to_string()]);
            assert_eq!(*dominant_share, 6.0 / 8.0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn weights_scale_fair_share() {
    let mut usage = Usage::default();
    usage.add("heavy", 0, gpus(4));
    usage.add("light", 0, gpus(1));
    let mut policy = plain_policy();
    policy.tenants.insert(
        "heavy".into(),
        TenantPolicy {
            weight: 8.0,
            ..policy.default_tenant.clone()
        },
    );
    // heavy: 4/8 / 8 = 0.0625 < light: 1/8 / 1 = 0.125.
    let jobs = [job("h", "heavy", 1.0, ""), job("l", "light", 1.0, "")];
    let plan = run(0, &jobs, &one_free_gpu(), &policy, &usage);
    assert_eq!(placed(&plan, "h").0, "c");
    assert!(plan.placement_of("l").is_none());
}

#[test]
fn shares_are_recomputed_as_the_plan_places_jobs() {
    // Two free GPUs, equal tenants: one job each, not two for the first.
    let clusters = [cluster("c", 0, vec![node("n", Some("A100"), 8.0, 2.0)])];
    let jobs = [
        job("a1", "a", 1.0, ""),
        job("a2", "a", 1.0, ""),
        job("b1", "b", 1.0, ""),
    ];
    let plan = run(0, &jobs, &clusters, &plain_policy(), &Usage::default());
    let ids: Vec<&str> = plan.placed.iter().map(|p| p.job_id.as_str()).collect();
    assert_eq!(ids, ["a1", "b1"]);
    assert_eq!(plan.waiting_of("a2").unwrap().position, 1);
}

#[test]
fn priority_orders_a_tenants_jobs_and_aging_stops_starvation() {
    let mut old_low = job("old-low", "t", 1.0, "");
    old_low.enqueued_at_ms = 0;
    let mut new_high = job("new-high", "t", 1.0, "");
    new_high.priority = 5;
    new_high.enqueued_at_ms = 10 * 60_000;
    let jobs = [old_low, new_high];
    let plan = run(
        10 * 60_000,
        &jobs,
        &one_free_gpu(),
        &plain_policy(),
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "new-high").0, "c");
    let mut policy = plain_policy();
    policy.aging_ms_per_priority = 60_000;
    let plan = run(
        10 * 60_000,
        &jobs,
        &one_free_gpu(),
        &policy,
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "old-low").0, "c");
}

#[test]
fn a_job_that_waited_an_aging_step_goes_before_fair_share_order() {
    // "busy" holds 6 of 8 GPUs; its job has waited 2 minutes, "idle"'s job
    // just arrived. With aging (one step a minute) the aged job goes first
    // whatever its tenant's share: DRF orders only what has not yet waited
    // a step, so it defers one tenant's job by at most that.
    let mut usage = Usage::default();
    usage.add("busy", 0, gpus(6));
    let mut aged = job("aged", "busy", 1.0, "");
    aged.enqueued_at_ms = 0;
    let mut fresh = job("fresh", "idle", 1.0, "");
    fresh.enqueued_at_ms = 2 * 60_000;
    let jobs = [aged, fresh];
    let mut policy = plain_policy();
    policy.aging_ms_per_priority = 60_000;
    let plan = run(2 * 60_000, &jobs, &one_free_gpu(), &policy, &usage);
    assert_eq!(placed(&plan, "aged").0, "c");
    assert!(plan.placement_of("fresh").is_none());
    // Not yet a step: DRF decides, the idle tenant first.
    let plan = run(50_000, &jobs, &one_free_gpu(), &policy, &usage);
    assert_eq!(placed(&plan, "fresh").0, "c");
    // Two aged jobs of two tenants: the older first, though its tenant
    // holds more.
    let mut older = job("older", "busy", 1.0, "");
    older.enqueued_at_ms = 0;
    let mut newer = job("newer", "idle", 1.0, "");
    newer.enqueued_at_ms = 30_000;
    let plan = run(
        5 * 60_000,
        &[newer, older],
        &one_free_gpu(),
        &policy,
        &usage,
    );
    assert_eq!(placed(&plan, "older").0, "c");
}

#[test]
fn quotas_are_never_broken_overall() {
    let mut policy = plain_policy();
    policy.default_tenant.quota = Quota {
        gpus: Some(Quantity::whole(6)),
        ..Quota::default()
    };
    let mut usage = Usage::default();
    usage.add("t", 0, gpus(1));
    let clusters = [cluster("c", 0, vec![node("n", Some("A100"), 8.0, 8.0)])];
    let jobs = [job("first", "t", 4.0, ""), job("second", "t", 4.0, "")];
    let plan = run(0, &jobs, &clusters, &policy, &usage);
    assert_eq!(placed(&plan, "first").0, "c");
    match &plan.waiting_of("second").unwrap().reason {
        WaitReason::Quota { tier: None, detail } => {
            assert_eq!(detail, "gpus: 5 in flight + 4 asked > quota 6")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tier_quota_keeps_a_tenant_off_a_tier() {
    let mut policy = plain_policy();
    policy.default_tenant.tier_quotas.insert(
        1,
        Quota {
            gpus: Some(Quantity::ZERO),
            ..Quota::default()
        },
    );
    let mut cloud = cluster("cloud", 1, vec![node("c1", Some("A100"), 8.0, 8.0)]);
    cloud.cost_per_gpu_hour = 1.0;
    let clusters = [
        cluster("onprem", 0, vec![node("o1", Some("A100"), 8.0, 0.0)]),
        cloud,
    ];
    let plan = run(
        0,
        &[job("j", "t", 1.0, "")],
        &clusters,
        &policy,
        &Usage::default(),
    );
    match &plan.waiting[0].reason {
        WaitReason::Quota {
            tier: Some(1),
            detail,
        } => assert!(detail.starts_with("gpus"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // CPU-only jobs are not bound by a GPU quota.
    let plan = run(
        0,
        &[job("cpu", "t", 0.0, "")],
        &clusters,
        &policy,
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "cpu").0, "onprem");
}

#[test]
fn a_big_job_that_waited_too_long_holds_capacity_small_ones_only_backfill_around() {
    let mut policy = plain_policy();
    policy.reserve_after_ms = 3_600_000;
    // n1 could host the 8-GPU job once its busy GPUs free; n2 never could.
    let clusters = [cluster(
        "c",
        0,
        vec![
            node("n1", Some("A100"), 8.0, 6.0),
            node("n2", Some("A100"), 4.0, 2.0),
        ],
    )];
    let mut big = job("big", "big-tenant", 8.0, "");
    big.enqueued_at_ms = 0;
    let mut jobs = vec![big];
    for i in 0..5 {
        let mut small = job(&format!("small{i}"), "small-tenant", 1.0, "");
        small.enqueued_at_ms = 7_000_000;
        jobs.push(small);
    }
    let now = 7_200_000;
    let plan = run(now, &jobs, &clusters, &policy, &Usage::default());
    match &plan.waiting_of("big").unwrap().reason {
        WaitReason::Capacity { reserved, .. } => assert_eq!(
            reserved,
            &Some(Reserved {
                cluster: "c".into(),
                nodes: vec!["n1".into()]
            })
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(plan.waiting_of("big").unwrap().position, 1);
    // Two small jobs backfill on n2; none takes n1's held GPUs.
    let small_nodes: Vec<&str> = plan.placed.iter().map(|p| p.nodes[0].as_str()).collect();
    assert_eq!(small_nodes, ["n2", "n2"]);
    let blocked = plan.waiting_of("small2").unwrap();
    assert_eq!(
        blocked.reason,
        WaitReason::Reservation {
            for_job: "big".into()
        }
    );

    // Before the reservation bound, small jobs take n1 as well.
    let plan = run(3_000_000, &jobs, &clusters, &policy, &Usage::default());
    assert_eq!(plan.placed.len(), 5);
}

#[test]
fn a_job_past_the_reservation_bound_that_fits_starts_first() {
    let mut policy = plain_policy();
    policy.reserve_after_ms = 1_000;
    let mut usage = Usage::default();
    usage.add("rich", 0, gpus(7));
    let mut old = job("old", "rich", 1.0, "");
    old.enqueued_at_ms = 0;
    let mut fresh = job("fresh", "poor", 1.0, "");
    fresh.enqueued_at_ms = 9_500;
    // DRF alone would start `fresh` (poor has the smaller share).
    let plan = run(10_000, &[old, fresh], &one_free_gpu(), &policy, &usage);
    assert_eq!(placed(&plan, "old").0, "c");
    assert!(plan.placement_of("fresh").is_none());
}

#[test]
fn only_the_head_of_each_queue_is_considered() {
    let clusters = [cluster("c", 0, vec![node("n", Some("A100"), 8.0, 0.0)])];
    // Every job of its own shape (CPUs), so the per-shape bound does not bind.
    let mut jobs: Vec<_> = (0..MAX_HEAD_PER_TENANT + 36)
        .map(|i| {
            let mut j = job(&format!("a{i:04}"), "a", 1.0, "");
            j.resources.cpus = Quantity::whole(i as u64 + 1);
            j
        })
        .collect();
    jobs.push(job("b0", "b", 1.0, ""));
    let plan = run(0, &jobs, &clusters, &plain_policy(), &Usage::default());
    assert_eq!(plan.waiting.len(), MAX_HEAD_PER_TENANT + 1);
    assert!(plan.waiting_of("b0").is_some());
    assert!(plan
        .waiting_of(&format!("a{:04}", MAX_HEAD_PER_TENANT - 1))
        .is_some());
    assert!(plan
        .waiting_of(&format!("a{:04}", MAX_HEAD_PER_TENANT))
        .is_none());
}

#[test]
fn a_stuck_kind_of_job_does_not_hide_the_rest_of_the_queue() {
    // Only A100 nodes have room; the tenant's oldest jobs all want an H100.
    let clusters = [cluster(
        "c",
        0,
        vec![
            node("h", Some("H100"), 8.0, 0.0),
            node("a", Some("A100"), 8.0, 8.0),
        ],
    )];
    let mut jobs: Vec<_> = (0..MAX_HEAD_PER_SHAPE + 40)
        .map(|i| job(&format!("h{i:03}"), "t", 1.0, "H100"))
        .collect();
    for (i, j) in jobs.iter_mut().enumerate() {
        j.enqueued_at_ms = i as u64;
    }
    let mut late = job("late", "t", 1.0, "A100");
    late.enqueued_at_ms = 1_000;
    jobs.push(late);
    let plan = run(2_000, &jobs, &clusters, &plain_policy(), &Usage::default());
    assert_eq!(placed(&plan, "late").0, "c");
    // The oldest of the stuck kind wait; the rest of it is not considered.
    assert_eq!(plan.waiting.len(), MAX_HEAD_PER_SHAPE);
    assert!(plan.waiting_of("h000").is_some());
    let behind = format!("h{MAX_HEAD_PER_SHAPE:03}");
    assert!(plan.waiting_of(&behind).is_none());
    let problem = raybroker_placement::Problem {
        now_ms: 2_000,
        jobs: &jobs,
        clusters: &clusters,
        policy: &plain_policy(),
        usage: &Usage::default(),
    };
    assert_eq!(
        raybroker_placement::explain(&behind, &problem).outcome,
        raybroker_placement::Outcome::BehindItsKind {
            tenant_position: MAX_HEAD_PER_SHAPE + 1,
            considered: MAX_HEAD_PER_SHAPE
        }
    );
}
