//! Bursting with a forecast: a job goes above its lowest tier before its
//! wait bound exactly when, by what running jobs give back by their time
//! limits, no lower tier will have room for it within the bound.

mod common;

use common::*;
use raybroker_core::{Bytes, Quantity};
use raybroker_placement::{
    plan_with_releases, verify_with_releases, ClusterView, PendingJob, Plan, Policy, Problem,
    Release, Totals, Usage, WaitReason,
};

/// The bound every job here waits before it may burst: 10 minutes.
const BOUND: u64 = 600_000;

/// On-prem: one 8-GPU node with 2 GPUs free; the cloud has room.
fn clusters() -> Vec<ClusterView> {
    let mut cloud = cluster("cloud", 1, vec![node("c1", Some("A100"), 8.0, 8.0)]);
    cloud.cost_per_gpu_hour = 3.0;
    vec![
        cluster("onprem", 0, vec![node("o1", Some("A100"), 8.0, 2.0)]),
        cloud,
    ]
}

/// A running job on `o1` that frees `gpus` GPUs at `by_ms` at the latest.
fn release(gpus: u64, by_ms: u64) -> Release {
    Release {
        cluster: "onprem".into(),
        node: "o1".into(),
        by_ms,
        frees: Totals {
            gpus: Quantity::whole(gpus),
            cpus: Quantity::whole(1),
            memory: Bytes(0),
        },
    }
}

/// A 4-GPU job enqueued at `at_ms`.
fn four_gpus(id: &str, at_ms: u64) -> PendingJob {
    let mut j = job(id, "t", 4.0, "");
    j.enqueued_at_ms = at_ms;
    j
}

/// Plans at `now` on `clusters` with the forecast `releases`, checked.
fn forecast_on(
    clusters: &[ClusterView],
    now: u64,
    jobs: &[PendingJob],
    releases: &[Release],
) -> Plan {
    let usage = Usage::default();
    let problem = Problem {
        now_ms: now,
        jobs,
        clusters,
        policy: &bounded_policy(),
        usage: &usage,
    };
    let result = plan_with_releases(&problem, releases);
    assert_eq!(verify_with_releases(&problem, releases, &result), Ok(()));
    result
}

/// Plans at `now` on [`clusters`] with the forecast `releases`, checked.
fn forecast(now: u64, jobs: &[PendingJob], releases: &[Release]) -> Plan {
    forecast_on(&clusters(), now, jobs, releases)
}

/// No aging or reservations; every job waits [`BOUND`] before it bursts.
fn bounded_policy() -> Policy {
    let mut policy = plain_policy();
    policy.default_tenant.max_wait_ms = BOUND;
    policy
}

#[test]
fn a_job_bursts_at_once_when_no_lower_tier_frees_room_within_its_bound() {
    let jobs = [four_gpus("j", 1_000)];
    // On-prem frees 4 GPUs 20 minutes from now: after the bound.
    let plan = forecast(2_000, &jobs, &[release(4, 2_000 + 2 * BOUND)]);
    assert_eq!(placed(&plan, "j").0, "cloud");
    // Nothing known to free: the same.
    let plan = forecast(2_000, &jobs, &[]);
    assert_eq!(placed(&plan, "j").0, "cloud");
    // Without a forecast it waits its bound, as before.
    let plan = run(
        2_000,
        &jobs,
        &clusters(),
        &bounded_policy(),
        &Usage::default(),
    );
    assert_eq!(
        plan.waiting[0].reason,
        WaitReason::BurstWaitBound {
            until_ms: 1_000 + BOUND
        }
    );
}

#[test]
fn a_job_waits_when_a_lower_tier_frees_room_within_its_bound() {
    let jobs = [four_gpus("j", 1_000)];
    // 2 free + 2 freed by 5 minutes from now: room for 4 within the bound.
    let plan = forecast(2_000, &jobs, &[release(2, 300_000)]);
    assert_eq!(
        plan.waiting[0].reason,
        WaitReason::BurstWaitBound {
            until_ms: 1_000 + BOUND
        }
    );
    // Freed 1 ms after its bound ends: too late.
    let plan = forecast(2_000, &jobs, &[release(2, 1_000 + BOUND + 1)]);
    assert_eq!(placed(&plan, "j").0, "cloud");
    // Freed, but too little: 2 + 1 < 4.
    let plan = forecast(2_000, &jobs, &[release(1, 300_000)]);
    assert_eq!(placed(&plan, "j").0, "cloud");
}

#[test]
fn forecast_room_is_promised_once_oldest_first() {
    // Room for one 4-GPU job within the bound: the older job waits for it,
    // the younger one cannot count on it and bursts now.
    let jobs = [four_gpus("young", 5_000), four_gpus("old", 1_000)];
    let plan = forecast(6_000, &jobs, &[release(2, 300_000)]);
    assert!(matches!(
        plan.waiting_of("old").map(|w| &w.reason),
        Some(WaitReason::BurstWaitBound { .. })
    ));
    assert_eq!(placed(&plan, "young").0, "cloud");
    // Two releases: room for both within the bound.
    let plan = forecast(6_000, &jobs, &[release(2, 300_000), release(4, 400_000)]);
    assert!(plan.placed.is_empty(), "{plan:?}");
}

#[test]
fn a_job_waiting_for_capacity_takes_the_forecast_room_before_younger_ones() {
    // An 8-GPU job only on-prem could run it waits for the whole node; the
    // 6 GPUs that free within the bound are its, so the younger 4-GPU job
    // bursts rather than wait for them.
    let mut clusters = clusters();
    clusters[1] = cluster("cloud", 1, vec![node("c1", Some("A100"), 4.0, 4.0)]);
    let mut big = job("big", "t", 8.0, "");
    big.enqueued_at_ms = 1_000;
    let jobs = [big, four_gpus("small", 5_000)];
    let result = forecast_on(&clusters, 6_000, &jobs, &[release(6, 300_000)]);
    assert!(matches!(
        result.waiting_of("big").map(|w| &w.reason),
        Some(WaitReason::Capacity { .. })
    ));
    assert_eq!(placed(&result, "small").0, "cloud");
    // Without the forecast the small job waits its bound.
    let result = run(
        6_000,
        &jobs,
        &clusters,
        &bounded_policy(),
        &Usage::default(),
    );
    assert!(result.placement_of("small").is_none());
}

#[test]
fn releases_of_unknown_clusters_or_nodes_count_for_nothing() {
    let jobs = [four_gpus("j", 1_000)];
    let mut elsewhere = release(4, 300_000);
    elsewhere.node = "o9".into();
    let mut nowhere = release(4, 300_000);
    nowhere.cluster = "gone".into();
    let plan = forecast(2_000, &jobs, &[elsewhere, nowhere]);
    assert_eq!(placed(&plan, "j").0, "cloud");
}
