//! Releases for running jobs whose nodes the backend does not report: each
//! goes to a node of its cluster that has that much in use, of a model the
//! job accepts, and no node is credited with more than it has in use.

mod common;

use common::*;
use raybroker_adapter::NodeCapacity;
use raybroker_core::{GpuModel, Quantity, Resources};
use raybroker_placement::{
    plan_with_releases, releases_of_running, verify_with_releases, ClusterView, Policy, Problem,
    Release, RunningJob, Usage, WaitReason,
};

/// A node of `gpus` GPUs with `used` of them and `used` CPUs held.
fn busy(id: &str, model: &str, gpus: f64, used: f64) -> NodeCapacity {
    let mut n = node(id, Some(model), gpus, gpus - used);
    n.free.cpus = Quantity::from_units(n.total.cpus.units() - q(used).units());
    n
}

/// `nodes` × (`gpus` GPUs of `models`, one CPU).
fn asks(gpus: f64, models: &str, nodes: u32) -> Resources {
    Resources {
        gpus: q(gpus),
        gpu_types: GpuModel::parse_list(models).unwrap(),
        nodes,
        ..Resources::default()
    }
}

fn running<'a>(cluster: &'a str, by_ms: u64, resources: &'a Resources) -> RunningJob<'a> {
    RunningJob {
        cluster,
        by_ms,
        resources,
    }
}

/// (node, by_ms, GPUs) of each release, in order.
fn summary(releases: &[Release]) -> Vec<(String, u64, Quantity)> {
    releases
        .iter()
        .map(|r| (r.node.clone(), r.by_ms, r.frees.gpus))
        .collect()
}

#[test]
fn a_running_job_frees_its_share_on_a_node_that_holds_it() {
    let clusters = vec![cluster(
        "onprem",
        0,
        vec![busy("idle", "A100", 8.0, 0.0), busy("b1", "A100", 8.0, 2.0)],
    )];
    let two = asks(2.0, "", 1);
    let releases = releases_of_running(&clusters, &[running("onprem", 5_000, &two)], None);
    assert_eq!(summary(&releases), vec![("b1".into(), 5_000, q(2.0))]);
    assert_eq!(releases[0].cluster, "onprem");
    assert_eq!(releases[0].frees.cpus, two.cpus);
}

#[test]
fn no_node_is_credited_with_more_than_it_has_in_use() {
    // Two jobs say they hold 2 GPUs each; the snapshot shows 2 in use.
    let clusters = vec![cluster("onprem", 0, vec![busy("b1", "A100", 8.0, 2.0)])];
    let two = asks(2.0, "", 1);
    let releases = releases_of_running(
        &clusters,
        &[
            running("onprem", 9_000, &two),
            running("onprem", 4_000, &two),
        ],
        None,
    );
    // The one ending first gets the node; the other gives nothing.
    assert_eq!(summary(&releases), vec![("b1".into(), 4_000, q(2.0))]);
}

#[test]
fn a_release_goes_to_a_node_of_a_model_the_job_accepts() {
    let clusters = vec![cluster(
        "onprem",
        0,
        vec![busy("a", "A100", 8.0, 4.0), busy("h", "H100", 8.0, 4.0)],
    )];
    let h100 = asks(4.0, "H100", 1);
    let releases = releases_of_running(&clusters, &[running("onprem", 1, &h100)], None);
    assert_eq!(summary(&releases), vec![("h".into(), 1, q(4.0))]);
}

#[test]
fn a_gang_frees_one_share_per_node_or_nothing() {
    let gang = asks(8.0, "", 2);
    let two_busy = vec![cluster(
        "onprem",
        0,
        vec![busy("n1", "A100", 8.0, 8.0), busy("n2", "A100", 8.0, 8.0)],
    )];
    let releases = releases_of_running(&two_busy, &[running("onprem", 7, &gang)], None);
    assert_eq!(
        summary(&releases),
        vec![("n1".into(), 7, q(8.0)), ("n2".into(), 7, q(8.0))]
    );
    let one_busy = vec![cluster(
        "onprem",
        0,
        vec![busy("n1", "A100", 8.0, 8.0), busy("n2", "A100", 8.0, 0.0)],
    )];
    assert_eq!(
        releases_of_running(&one_busy, &[running("onprem", 7, &gang)], None),
        vec![]
    );
}

#[test]
fn jobs_on_unknown_clusters_give_nothing() {
    let clusters = vec![cluster("onprem", 0, vec![busy("b1", "A100", 8.0, 8.0)])];
    let eight = asks(8.0, "", 1);
    assert_eq!(
        releases_of_running(&clusters, &[running("gone", 1, &eight)], None),
        vec![]
    );
}

/// On-prem is full with one 8-GPU job; the cloud is idle. A new 8-GPU job
/// bursts at once when the running one may hold on-prem past the bound,
/// and waits when it ends within it.
#[test]
fn a_running_jobs_time_limit_decides_between_waiting_and_bursting() {
    const BOUND: u64 = 600_000;
    let mut cloud = cluster("cloud", 1, vec![busy("c1", "A100", 8.0, 0.0)]);
    cloud.cost_per_gpu_hour = 3.0;
    let clusters: Vec<ClusterView> = vec![
        cluster("onprem", 0, vec![busy("o1", "A100", 8.0, 8.0)]),
        cloud,
    ];
    let mut policy: Policy = plain_policy();
    policy.default_tenant.max_wait_ms = BOUND;
    let jobs = vec![job("new", "t", 8.0, "")];
    let usage = Usage::default();
    let problem = Problem {
        now_ms: 0,
        jobs: &jobs,
        clusters: &clusters,
        policy: &policy,
        usage: &usage,
    };
    let held = asks(8.0, "", 1);
    let plan_for = |ends_by: u64| {
        let releases = releases_of_running(&clusters, &[running("onprem", ends_by, &held)], None);
        let result = plan_with_releases(&problem, &releases);
        assert_eq!(verify_with_releases(&problem, &releases, &result), Ok(()));
        result
    };
    let late = plan_for(BOUND + 60_000);
    assert_eq!(
        late.placement_of("new").map(|p| p.cluster.as_str()),
        Some("cloud")
    );
    let soon = plan_for(BOUND - 60_000);
    assert!(soon.placement_of("new").is_none(), "{soon:?}");
    assert!(
        !matches!(
            soon.waiting_of("new").map(|w| &w.reason),
            Some(WaitReason::NeverFits { .. })
        ),
        "{soon:?}"
    );
}

/// Capacity in use that no running job with a time limit accounts for is,
/// with `unexplained_by`, assumed to free by then: a job that could use it
/// waits its bound as without a forecast; without it, nothing frees.
#[test]
fn unexplained_use_may_free_by_the_given_time_or_never() {
    let clusters = vec![cluster("onprem", 0, vec![busy("b1", "A100", 8.0, 6.0)])];
    let two = asks(2.0, "", 1);
    let known = [running("onprem", 9_000, &two)];
    assert_eq!(
        summary(&releases_of_running(&clusters, &known, Some(100))),
        vec![("b1".into(), 9_000, q(2.0)), ("b1".into(), 100, q(4.0))]
    );
    assert_eq!(
        summary(&releases_of_running(&clusters, &known, None)),
        vec![("b1".into(), 9_000, q(2.0))]
    );
}
