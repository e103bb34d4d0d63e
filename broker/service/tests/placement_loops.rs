//! The dispatch loop under a placement policy: tenants' quotas, the wait
//! bound before bursting and bursting switched off, over simulated clusters
//! on a manual clock (see `loops/support.rs`).

#[path = "loops/support.rs"]
#[allow(dead_code)]
mod support;

use std::time::Duration;

use raybroker_core::{JobState, TenantId};
use raybroker_placement::{Policy, Quota, TenantPolicy};
use support::{gpu_nodes, gpu_spec, Harness, SimCluster};

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("a valid tenant name")
}

#[tokio::test]
async fn a_tenant_over_its_gpu_quota_waits_while_another_is_placed() {
    let mut policy = Policy::default();
    policy.tenants.insert(
        "robotics".into(),
        TenantPolicy {
            quota: Quota {
                gpus: Some("4".parse().expect("a quantity")),
                ..Quota::default()
            },
            ..TenantPolicy::default()
        },
    );
    let h = Harness::with_policy(
        "quota",
        vec![SimCluster::new("onprem", vec![gpu_nodes(1, 8, "A100")])],
        policy,
    );
    let first = h.submit(gpu_spec("sleep 3600", 4, Some("A100"))).await;
    assert_eq!(h.tick().await.submitted, 1);
    assert_eq!(h.job(&first).await.state, JobState::Running);

    // 4 GPUs are free: both 2-GPU jobs would fit, but robotics is at its quota.
    let over = h.submit(gpu_spec("sleep 3600", 2, Some("A100"))).await;
    let other = h
        .submit_as(&tenant("vision"), gpu_spec("sleep 3600", 2, Some("A100")))
        .await;
    let report = h.tick().await;
    assert_eq!((report.submitted, report.waiting), (1, 1), "{report:?}");
    assert_eq!(h.job(&other).await.state, JobState::Running);
    assert_eq!(h.job(&over).await.state, JobState::Queued);
    assert_eq!(h.sim("onprem").running_jobs().len(), 2);
}

/// Tier 0 with one GPU (taken by a long job), tier 1 with one free GPU.
fn two_tiers(label: &str, policy: Policy) -> Harness {
    let mut burst = SimCluster::new("cloud", vec![gpu_nodes(1, 1, "A100")]);
    burst.tier = 1;
    Harness::with_policy(
        label,
        vec![
            SimCluster::new("onprem", vec![gpu_nodes(1, 1, "A100")]),
            burst,
        ],
        policy,
    )
}

#[tokio::test]
async fn a_job_bursts_only_after_its_max_wait() {
    let mut policy = Policy::default();
    policy.default_tenant.max_wait_ms = 10 * 60 * 1000;
    let h = two_tiers("burst-wait", policy);
    let long = h.submit(gpu_spec("sleep 36000", 1, Some("A100"))).await;
    h.tick().await;
    assert_eq!(h.job(&long).await.cluster.as_deref(), Some("onprem"));

    let waiting = h.submit(gpu_spec("sleep 60", 1, Some("A100"))).await;
    assert_eq!(h.tick().await.waiting, 1);
    h.advance(Duration::from_secs(9 * 60));
    let report = h.tick().await;
    assert_eq!((report.submitted, report.waiting), (0, 1), "{report:?}");
    assert_eq!(h.job(&waiting).await.state, JobState::Queued);
    assert!(h.sim("cloud").running_jobs().is_empty());

    h.advance(Duration::from_secs(61));
    assert_eq!(h.tick().await.submitted, 1);
    let job = h.job(&waiting).await;
    assert_eq!(
        (job.state, job.cluster.as_deref()),
        (JobState::Running, Some("cloud"))
    );
}

/// With the forecast, the running job's time limit tells whether tier 0
/// will have room within the bound: when it can hold the GPU past the bound,
/// the new job bursts at once instead of after the bound; when it ends
/// within the bound, the new job waits for it.
#[tokio::test]
async fn a_job_bursts_at_once_when_running_time_limits_leave_no_room_within_the_bound() {
    for (limit_min, bursts_now) in [(60, true), (5, false)] {
        let mut policy = Policy::default();
        policy.default_tenant.max_wait_ms = 10 * 60 * 1000;
        let h = two_tiers(&format!("forecast-{limit_min}"), policy);
        let mut long = gpu_spec("sleep 36000", 1, Some("A100"));
        long.time_limit = Some(Duration::from_secs(limit_min * 60));
        let long = h.submit(long).await;
        h.tick().await;
        let job = h.job(&long).await;
        assert_eq!(
            (job.state, job.cluster.as_deref()),
            (JobState::Running, Some("onprem"))
        );

        let next = h.submit(gpu_spec("sleep 60", 1, Some("A100"))).await;
        h.advance(Duration::from_secs(1));
        let report = h.tick().await;
        let job = h.job(&next).await;
        if bursts_now {
            assert_eq!(report.submitted, 1, "limit {limit_min} min: {report:?}");
            assert_eq!(job.cluster.as_deref(), Some("cloud"), "{job:#?}");
        } else {
            assert_eq!(report.waiting, 1, "limit {limit_min} min: {report:?}");
            assert_eq!(job.state, JobState::Queued, "{job:#?}");
            assert!(h.sim("cloud").running_jobs().is_empty());
        }
    }
}

#[tokio::test]
async fn a_tenant_without_bursting_never_leaves_its_tier() {
    let mut policy = Policy::default();
    policy.tenants.insert(
        "robotics".into(),
        TenantPolicy {
            burst: false,
            max_wait_ms: 60 * 1000,
            ..TenantPolicy::default()
        },
    );
    let h = two_tiers("no-burst", policy);
    let long = h.submit(gpu_spec("sleep 36000", 1, Some("A100"))).await;
    h.tick().await;
    assert_eq!(h.job(&long).await.cluster.as_deref(), Some("onprem"));

    let waiting = h.submit(gpu_spec("sleep 60", 1, Some("A100"))).await;
    for _ in 0..4 {
        h.advance(Duration::from_secs(20 * 60));
        let report = h.tick().await;
        assert_eq!((report.submitted, report.waiting), (0, 1), "{report:?}");
    }
    assert_eq!(h.job(&waiting).await.state, JobState::Queued);
    assert!(h.sim("cloud").running_jobs().is_empty());
    // Another tenant, bursting by default, goes at once past its bound.
    let other = h
        .submit_as(&tenant("vision"), gpu_spec("sleep 60", 1, Some("A100")))
        .await;
    h.advance(Duration::from_secs(11 * 60));
    h.tick().await;
    assert_eq!(h.job(&other).await.cluster.as_deref(), Some("cloud"));
}
