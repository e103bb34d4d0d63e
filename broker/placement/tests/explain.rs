//! Explanations agree with the plan and say, cluster by cluster, why.

mod common;

use common::*;
use raybroker_placement::{
    explain, ClusterVerdict, Outcome, Problem, Usage, WaitReason, MAX_HEAD_PER_TENANT,
};

fn clusters() -> Vec<raybroker_placement::ClusterView> {
    let mut cloud = cluster("cloud", 1, vec![node("c1", Some("A100"), 8.0, 8.0)]);
    cloud.cost_per_gpu_hour = 3.5;
    vec![
        cluster("t4s", 0, vec![node("t1", Some("T4"), 2.0, 2.0)]),
        cluster("onprem", 0, vec![node("o1", Some("A100"), 8.0, 2.0)]),
        cloud,
    ]
}

#[test]
fn a_placed_job_shows_every_clusters_verdict_and_the_chosen_score() {
    let clusters = clusters();
    let jobs = [job("j", "t", 2.0, "A100")];
    let policy = plain_policy();
    let usage = Usage::default();
    let problem = Problem {
        now_ms: 0,
        jobs: &jobs,
        clusters: &clusters,
        policy: &policy,
        usage: &usage,
    };
    let e = explain("j", &problem);
    assert_eq!(
        e.outcome,
        Outcome::Placed {
            cluster: "onprem".into(),
            nodes: vec!["o1".into()]
        }
    );
    assert_eq!(e.effective_priority, Some(0));
    assert_eq!(e.clusters.len(), 3);
    match &e.clusters[0].verdict {
        ClusterVerdict::Infeasible { reason } => {
            assert!(reason.contains("no GPU of model A100"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match &e.clusters[1].verdict {
        ClusterVerdict::Startable {
            score,
            chosen: true,
            note: None,
        } => {
            assert_eq!(score.nodes, ["o1"]);
            assert_eq!(score.tier, 0);
            assert_eq!(score.leftover_gpus, 0.0);
        }
        other => panic!("{other:?}"),
    }
    match &e.clusters[2].verdict {
        ClusterVerdict::Startable {
            score,
            chosen: false,
            ..
        } => {
            assert_eq!(score.cost_per_gpu_hour, 3.5);
            assert_eq!(score.leftover_gpus, 6.0);
        }
        other => panic!("{other:?}"),
    }
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["outcome"]["kind"], "placed");
    assert_eq!(json["clusters"][0]["verdict"]["kind"], "infeasible");
}

#[test]
fn a_waiting_job_shows_its_position_and_what_it_waits_for() {
    let clusters = clusters();
    let mut policy = plain_policy();
    policy.default_tenant.max_wait_ms = 600_000;
    let jobs = [
        job("first", "t", 2.0, "A100"),
        job("second", "t", 4.0, "A100"),
    ];
    let usage = Usage::default();
    let problem = Problem {
        now_ms: 1_000,
        jobs: &jobs,
        clusters: &clusters,
        policy: &policy,
        usage: &usage,
    };
    let e = explain("second", &problem);
    assert_eq!(
        e.outcome,
        Outcome::Waiting {
            position: 1,
            reason: WaitReason::BurstWaitBound { until_ms: 600_000 }
        }
    );
    // Taken when `second` was decided: `first` already holds o1's GPUs.
    match &e.clusters[1].verdict {
        ClusterVerdict::Blocked { reason } => assert_eq!(reason, "not enough free capacity now"),
        other => panic!("{other:?}"),
    }
    match &e.clusters[2].verdict {
        ClusterVerdict::Startable {
            chosen: false,
            note: Some(note),
            ..
        } => {
            assert!(note.contains("burst tier"), "{note}")
        }
        other => panic!("{other:?}"),
    }
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["outcome"]["reason"]["kind"], "burst_wait_bound");
    assert_eq!(json["outcome"]["reason"]["until_ms"], 600_000);
}

#[test]
fn unknown_and_not_yet_considered_jobs_are_told_apart() {
    let clusters = clusters();
    let jobs: Vec<_> = (0..MAX_HEAD_PER_TENANT + 5)
        .map(|i| job(&format!("j{i:04}"), "t", 1.0, "A100"))
        .collect();
    let policy = plain_policy();
    let usage = Usage::default();
    let problem = Problem {
        now_ms: 0,
        jobs: &jobs,
        clusters: &clusters,
        policy: &policy,
        usage: &usage,
    };
    assert_eq!(explain("nope", &problem).outcome, Outcome::UnknownJob);
    let last = format!("j{:04}", MAX_HEAD_PER_TENANT + 4);
    let e = explain(&last, &problem);
    assert_eq!(
        e.outcome,
        Outcome::NotConsidered {
            tenant_position: MAX_HEAD_PER_TENANT + 5,
            considered: MAX_HEAD_PER_TENANT
        }
    );
    assert!(matches!(
        e.clusters[0].verdict,
        ClusterVerdict::Infeasible { .. }
    ));
    assert!(matches!(
        e.clusters[1].verdict,
        ClusterVerdict::Blocked { .. }
    ));
}

#[test]
fn explaining_does_not_change_the_plan() {
    let clusters = clusters();
    let jobs: Vec<_> = (0..6)
        .map(|i| {
            job(
                &format!("j{i}"),
                if i % 2 == 0 { "a" } else { "b" },
                1.0,
                "",
            )
        })
        .collect();
    let policy = plain_policy();
    let usage = Usage::default();
    let problem = Problem {
        now_ms: 0,
        jobs: &jobs,
        clusters: &clusters,
        policy: &policy,
        usage: &usage,
    };
    let plan = raybroker_placement::plan(&problem);
    for j in &jobs {
        let e = explain(&j.id, &problem);
        match (&e.outcome, plan.placement_of(&j.id), plan.waiting_of(&j.id)) {
            (Outcome::Placed { cluster, nodes }, Some(p), None) => {
                assert_eq!((cluster, nodes), (&p.cluster, &p.nodes));
                let chosen: Vec<&str> = e
                    .clusters
                    .iter()
                    .filter(|c| matches!(c.verdict, ClusterVerdict::Startable { chosen: true, .. }))
                    .map(|c| c.cluster.as_str())
                    .collect();
                assert_eq!(chosen, [p.cluster.as_str()]);
            }
            (Outcome::Waiting { position, reason }, None, Some(w)) => {
                assert_eq!((position, reason), (&w.position, &w.reason))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn explanations_read_as_text() {
    let clusters = clusters();
    let jobs = [job("j", "t", 2.0, "A100"), job("never", "t", 1.0, "H100")];
    let policy = plain_policy();
    let usage = Usage::default();
    let problem = Problem {
        now_ms: 0,
        jobs: &jobs,
        clusters: &clusters,
        policy: &policy,
        usage: &usage,
    };
    let text = explain("j", &problem).to_string();
    assert!(
        text.starts_with("job j: starts now on onprem (o1)\n"),
        "{text}"
    );
    assert!(
        text.contains("  t4s (tier 0): never: has no GPU of model A100 (it has: T4)\n"),
        "{text}"
    );
    assert!(
        text.contains("  onprem (tier 0): chosen: fragmentation"),
        "{text}"
    );
    assert!(
        text.contains("cost 3.5/GPU-hour, leaves 6 GPUs and 63 CPUs free on c1"),
        "{text}"
    );
    let text = explain("never", &problem).to_string();
    assert!(
        text.starts_with(
            "job never: waiting, position 1: fits no cluster: t4s: has no GPU of model H100"
        ),
        "{text}"
    );
    let held = WaitReason::Capacity {
        per_cluster: vec![("a".into(), "not enough free capacity now".into())],
        reserved: Some(raybroker_placement::Reserved {
            cluster: "a".into(),
            nodes: vec!["n1".into()],
        }),
    };
    assert_eq!(
        held.to_string(),
        "waiting for capacity: a: not enough free capacity now; capacity held for it on a (n1)"
    );
    assert_eq!(
        WaitReason::Quota {
            tier: Some(1),
            detail: "gpus: 2 in flight + 1 asked > quota 2".into()
        }
        .to_string(),
        "waiting for the tier 1 quota: gpus: 2 in flight + 1 asked > quota 2"
    );
}
