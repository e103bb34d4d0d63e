//! Node-level fit, GPU models and cost, tiers and bursting.

mod common;

use common::*;
use raybroker_core::Resources;
use raybroker_placement::{Usage, WaitReason};

#[test]
fn a_job_goes_where_its_remainder_stays_usable_not_where_it_fits_tightest() {
    // Best-fit would put the 1-GPU job on `two` (1 GPU left) and strand that
    // GPU: every other queued job needs 2. Fragmentation-aware placement
    // puts it on `three` and all three jobs start.
    let clusters = [cluster(
        "c",
        0,
        vec![
            node("two", Some("T4"), 8.0, 2.0),
            node("three", Some("T4"), 8.0, 3.0),
        ],
    )];
    let mut small = job("small", "t", 1.0, "");
    small.priority = 10;
    let jobs = [small, job("big1", "t", 2.0, ""), job("big2", "t", 2.0, "")];
    let plan = run(0, &jobs, &clusters, &plain_policy(), &Usage::default());
    assert_eq!(placed(&plan, "small").1, ["three"]);
    assert_eq!(plan.placed.len(), 3, "{plan:?}");
}

#[test]
fn a_gpu_share_packs_onto_a_partly_used_gpu() {
    // `whole` has the tighter fit by GPUs left (1.5 vs 7), but taking half
    // of one of its whole GPUs leaves a half no whole-GPU job can use.
    let clusters = [cluster(
        "c",
        0,
        vec![
            node("partly", Some("A100"), 8.0, 7.5),
            node("whole", Some("A100"), 2.0, 2.0),
        ],
    )];
    let mut half = job("half", "t", 0.5, "");
    half.priority = 10;
    let jobs = [half, job("one", "t", 1.0, ""), job("two", "t", 2.0, "")];
    let plan = run(0, &jobs, &clusters, &plain_policy(), &Usage::default());
    assert_eq!(placed(&plan, "half").1, ["partly"]);
    assert_eq!(placed(&plan, "two").1, ["whole"]);
}

#[test]
fn cpu_jobs_prefer_cpu_nodes() {
    let clusters = [cluster(
        "c",
        0,
        vec![
            node("gpu", Some("A100"), 8.0, 8.0),
            node("cpu", None, 0.0, 0.0),
        ],
    )];
    let plan = run(
        0,
        &[job("cpu-job", "t", 0.0, "")],
        &clusters,
        &plain_policy(),
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "cpu-job").1, ["cpu"]);
}

#[test]
fn a_job_accepting_several_models_takes_the_cheaper_cluster() {
    let mut h100 = cluster("h100", 0, vec![node("h", Some("H100"), 8.0, 8.0)]);
    h100.cost_per_gpu_hour = 4.0;
    let mut a100 = cluster("a100", 0, vec![node("a", Some("A100"), 8.0, 8.0)]);
    a100.cost_per_gpu_hour = 2.0;
    let clusters = [h100, a100];
    let jobs = [
        job("j", "t", 8.0, "A100|H100"),
        job("only-h", "t", 8.0, "H100"),
    ];
    let plan = run(0, &jobs, &clusters, &plain_policy(), &Usage::default());
    assert_eq!(placed(&plan, "j").0, "a100");
    assert_eq!(placed(&plan, "only-h").0, "h100");
}

#[test]
fn never_a_gpu_model_the_job_does_not_accept() {
    let clusters = [cluster("c", 0, vec![node("t4", Some("T4"), 8.0, 8.0)])];
    let plan = run(
        0,
        &[job("j", "t", 1.0, "A100")],
        &clusters,
        &plain_policy(),
        &Usage::default(),
    );
    match &plan.waiting[0].reason {
        WaitReason::NeverFits { per_cluster } => {
            assert!(
                per_cluster[0].1.contains("no GPU of model A100"),
                "{per_cluster:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(plan.placed.is_empty());
}

#[test]
fn a_multi_node_job_gets_all_its_nodes_or_none() {
    let clusters = [cluster(
        "c",
        0,
        vec![
            node("n1", Some("A100"), 8.0, 8.0),
            node("n2", Some("A100"), 8.0, 8.0),
            node("n3", Some("A100"), 8.0, 4.0),
        ],
    )];
    let mut gang = job("gang", "t", 8.0, "");
    gang.resources.nodes = 3;
    let plan = run(
        0,
        &[gang.clone()],
        &clusters,
        &plain_policy(),
        &Usage::default(),
    );
    assert!(plan.placed.is_empty());
    assert!(matches!(
        plan.waiting[0].reason,
        WaitReason::Capacity { .. }
    ));
    gang.resources.nodes = 2;
    let plan = run(0, &[gang], &clusters, &plain_policy(), &Usage::default());
    let (_, nodes) = placed(&plan, "gang");
    assert_eq!(nodes, ["n1", "n2"]);
}

fn onprem_and_cloud(onprem_free: f64) -> Vec<raybroker_placement::ClusterView> {
    let mut cloud = cluster("cloud", 1, vec![node("c1", Some("A100"), 8.0, 8.0)]);
    cloud.cost_per_gpu_hour = 3.0;
    vec![
        cluster(
            "onprem",
            0,
            vec![node("o1", Some("A100"), 8.0, onprem_free)],
        ),
        cloud,
    ]
}

#[test]
fn the_lowest_tier_that_can_start_a_job_wins() {
    let mut policy = plain_policy();
    policy.default_tenant.max_wait_ms = 0;
    let plan = run(
        0,
        &[job("j", "t", 4.0, "")],
        &onprem_and_cloud(4.0),
        &policy,
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "j").0, "onprem");
}

#[test]
fn a_job_bursts_only_after_its_wait_bound() {
    let mut policy = plain_policy();
    policy.default_tenant.max_wait_ms = 600_000;
    let clusters = onprem_and_cloud(2.0);
    let mut j = job("j", "t", 4.0, "");
    j.enqueued_at_ms = 1_000;
    let plan = run(
        500_000,
        std::slice::from_ref(&j),
        &clusters,
        &policy,
        &Usage::default(),
    );
    assert_eq!(
        plan.waiting[0].reason,
        WaitReason::BurstWaitBound { until_ms: 601_000 }
    );
    let plan = run(
        601_000,
        std::slice::from_ref(&j),
        &clusters,
        &policy,
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "j").0, "cloud");
    // The job's own bound overrides the tenant's.
    j.max_wait_ms = Some(60_000);
    let plan = run(
        100_000,
        std::slice::from_ref(&j),
        &clusters,
        &policy,
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "j").0, "cloud");
}

#[test]
fn a_tenant_that_does_not_burst_stays_on_its_lowest_tier() {
    let mut policy = plain_policy();
    policy.default_tenant.burst = false;
    let plan = run(
        10_000_000,
        &[job("j", "t", 4.0, "")],
        &onprem_and_cloud(2.0),
        &policy,
        &Usage::default(),
    );
    match &plan.waiting[0].reason {
        WaitReason::Capacity { per_cluster, .. } => {
            assert!(
                per_cluster
                    .iter()
                    .any(|(c, why)| c == "cloud" && why.contains("does not burst")),
                "{per_cluster:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_model_only_a_higher_tier_has_goes_there_at_once() {
    let mut policy = plain_policy();
    policy.default_tenant.burst = false;
    policy.default_tenant.max_wait_ms = u64::MAX;
    let mut clusters = onprem_and_cloud(8.0);
    clusters[1]
        .snapshot
        .as_mut()
        .unwrap()
        .nodes
        .push(node("c2", Some("H100"), 8.0, 8.0));
    let plan = run(
        0,
        &[job("h", "t", 1.0, "H100")],
        &clusters,
        &policy,
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "h"), ("cloud", &["c2".to_string()][..]));
}

#[test]
fn a_stale_cluster_takes_nothing() {
    let mut clusters = onprem_and_cloud(8.0);
    clusters[0].fresh = false;
    clusters[1].fresh = false;
    let plan = run(
        0,
        &[job("j", "t", 1.0, "")],
        &clusters,
        &plain_policy(),
        &Usage::default(),
    );
    match &plan.waiting[0].reason {
        WaitReason::Capacity { per_cluster, .. } => {
            assert!(
                per_cluster[0].1.contains("no fresh capacity snapshot"),
                "{per_cluster:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn custom_resources_and_memory_bind_like_gpus() {
    let mut licensed = node("lic", None, 0.0, 0.0);
    licensed.total.custom.insert("matlab".into(), q(1.0));
    licensed.free.custom.insert("matlab".into(), q(1.0));
    let clusters = [cluster(
        "c",
        0,
        vec![node("plain", None, 0.0, 0.0), licensed],
    )];
    let mut a = job("a", "t", 0.0, "");
    a.resources.custom.insert("matlab".into(), q(1.0));
    a.priority = 1;
    let mut b = a.clone();
    b.id = "b".into();
    b.priority = 0;
    let mut huge = job("huge", "t", 0.0, "");
    huge.resources = Resources {
        memory: raybroker_core::Bytes(512 << 30),
        ..Resources::default()
    };
    let plan = run(
        0,
        &[a, b, huge],
        &clusters,
        &plain_policy(),
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "a").1, ["lic"]);
    assert!(matches!(
        plan.waiting_of("b").unwrap().reason,
        WaitReason::Capacity { .. }
    ));
    assert!(matches!(
        plan.waiting_of("huge").unwrap().reason,
        WaitReason::NeverFits { .. }
    ));
}

#[test]
fn only_a_lower_tier_that_takes_jobs_holds_a_job_back() {
    let mut policy = plain_policy();
    policy.default_tenant.max_wait_ms = 600_000;
    let j = job("j", "t", 4.0, "");
    let plan_at_1s = |clusters: &[raybroker_placement::ClusterView]| {
        run(
            1_000,
            std::slice::from_ref(&j),
            clusters,
            &policy,
            &Usage::default(),
        )
    };
    // On-prem is full but answers: the job waits out its bound.
    let plan = plan_at_1s(&onprem_and_cloud(2.0));
    assert_eq!(
        plan.waiting[0].reason,
        WaitReason::BurstWaitBound { until_ms: 600_000 }
    );
    // On-prem is unreachable: waiting for it gains nothing, it bursts now.
    let mut down = onprem_and_cloud(8.0);
    down[0].fresh = false;
    assert_eq!(placed(&plan_at_1s(&down), "j").0, "cloud");
    // On-prem holds more pending jobs than its allowance: the same.
    let mut busy = onprem_and_cloud(2.0);
    let allowance = busy[0].pending_allowance;
    if let Some(s) = busy[0].snapshot.as_mut() {
        s.pending_jobs = allowance + 1;
    }
    assert_eq!(placed(&plan_at_1s(&busy), "j").0, "cloud");
}

#[test]
fn gpu_shares_placed_in_one_plan_never_overfill_a_device() {
    // One free GPU and 0.4 of a partly used one: 1.4 as snapshots report it.
    let clusters = [cluster("c", 0, vec![node("n", Some("A100"), 2.0, 1.4)])];
    let jobs = [job("a", "t", 0.5, ""), job("b", "t", 0.8, "")];
    let plan = run(0, &jobs, &clusters, &plain_policy(), &Usage::default());
    // a takes 0.5 of the free GPU (0.4 has no room): 0.5 and 0.4 are left
    // on two devices. 0.9 is free in total, but no device holds 0.8.
    assert!(plan.placement_of("a").is_some());
    assert!(plan.placement_of("b").is_none(), "{plan:?}");
    // A whole GPU leaves the partly used one as it was.
    let jobs = [job("a", "t", 1.0, ""), job("b", "t", 0.4, "")];
    let plan = run(0, &jobs, &clusters, &plain_policy(), &Usage::default());
    assert_eq!(plan.placed.len(), 2, "{plan:?}");
}

#[test]
fn a_job_behind_an_overdue_job_of_its_line_bursts_before_its_bound() {
    let mut policy = plain_policy();
    policy.default_tenant.max_wait_ms = 600_000;
    let clusters = onprem_and_cloud(2.0);
    let old = job("old", "t", 4.0, "");
    let mut young = job("young", "t", 4.0, "");
    young.enqueued_at_ms = 500_000;
    // On-prem has not started a 4-GPU job for a whole bound: the younger one
    // would not start there within its bound either.
    let plan = run(
        700_000,
        &[old.clone(), young.clone()],
        &clusters,
        &policy,
        &Usage::default(),
    );
    assert_eq!(placed(&plan, "old").0, "cloud");
    assert_eq!(placed(&plan, "young").0, "cloud");
    // A job of another line (3 GPUs) tells nothing about it: it waits.
    let mut other = old;
    other.resources.gpus = q(3.0);
    let plan = run(
        700_000,
        &[other, young],
        &clusters,
        &policy,
        &Usage::default(),
    );
    assert_eq!(
        plan.waiting_of("young").map(|w| &w.reason),
        Some(&WaitReason::BurstWaitBound {
            until_ms: 1_100_000
        })
    );
}
