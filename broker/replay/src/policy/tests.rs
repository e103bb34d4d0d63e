use raybroker_core::Quantity;

use super::*;
use crate::testkit::{fed, half, job, spec, task};

/// Cluster 0 (tier 0): an 8-GPU G2 node and a 2-GPU T4 node.
/// Cluster 1 (tier 1): a 2-GPU G2 node.
fn fleet() -> Federation {
    fed(&[
        spec(
            "onprem",
            0,
            &[("big", Some("G2"), 8), ("t4", Some("T4"), 2)],
        ),
        spec("cloud", 1, &[("small", Some("G2"), 2)]),
    ])
}

#[test]
fn round_robin_sends_by_arrival_count_unchecked() {
    let fed = fleet();
    let mut rr = RoundRobin;
    let t4_only = task(0, job(Quantity::whole(1), "T4"), 0, 1);
    let sent: Vec<Arrival> = (0..4).map(|i| rr.on_arrival(i, &t4_only, &fed)).collect();
    assert_eq!(
        sent,
        [
            Arrival::Send(0),
            Arrival::Send(1),
            Arrival::Send(0),
            Arrival::Send(1)
        ]
    );
    // The T4-only job is sent to the cloud, which has no T4: no check.
    assert!(!fed.could_ever_run(1, &t4_only.resources));
}

#[test]
fn first_fit_takes_the_first_cluster_and_node() {
    let fed = fleet();
    let one = task(0, job(Quantity::whole(1), ""), 0, 1);
    assert_eq!(FirstFit.on_arrival(0, &one, &fed), Arrival::Hold);
    assert_eq!(
        FirstFit.choose(&one, &fed),
        Choice::Start {
            cluster: 0,
            node: 0
        }
    );
}

#[test]
fn best_fit_takes_the_tightest_node_across_tiers() {
    let fed = fleet();
    // One G2 GPU: the cloud's 2-GPU node leaves 1 idle, the 8-GPU node 7.
    let one = task(0, job(Quantity::whole(1), "G2"), 0, 1);
    assert_eq!(
        BestFit.choose(&one, &fed),
        Choice::Start {
            cluster: 1,
            node: 0
        }
    );
}

#[test]
fn raybroker_prefers_the_lower_tier_then_the_tightest_node() {
    let mut fed = fleet();
    let one = task(0, job(Quantity::whole(1), "G2"), 0, 1);
    assert_eq!(
        Raybroker::new(EngineConfig::default()).choose(&one, &fed),
        Choice::Start {
            cluster: 0,
            node: 0
        }
    );
    // Any model: the 2-GPU T4 node on-prem is tighter than the 8-GPU one.
    let any = task(1, job(Quantity::whole(1), ""), 0, 1);
    assert_eq!(
        Raybroker::new(EngineConfig::default()).choose(&any, &fed),
        Choice::Start {
            cluster: 0,
            node: 1
        }
    );
    // With on-prem's G2 node full, it bursts.
    fed.start(&job(Quantity::whole(8), ""), 0, 0).unwrap();
    assert_eq!(
        Raybroker::new(EngineConfig::default()).choose(&one, &fed),
        Choice::Start {
            cluster: 1,
            node: 0
        }
    );
}

#[test]
fn raybroker_sees_per_device_shares() {
    let mut fed = fed(&[spec("a", 0, &[("n0", Some("T4"), 2)])]);
    let share = job(Quantity::from_units(6_000), "");
    fed.start(&share, 0, 0).unwrap();
    fed.start(&share, 0, 0).unwrap();
    // 0.8 GPU free, split 0.4 + 0.4: half a GPU must wait.
    let half_job = task(0, job(half(), ""), 0, 1);
    assert_eq!(
        Raybroker::new(EngineConfig::default()).choose(&half_job, &fed),
        Choice::Wait
    );
    assert_eq!(BestFit.choose(&half_job, &fed), Choice::Wait);
}

#[test]
fn checked_policies_wait_or_refuse() {
    let mut fed = fleet();
    let a10 = task(0, job(Quantity::whole(1), "A10"), 0, 1);
    let eight = task(1, job(Quantity::whole(8), ""), 0, 1);
    fed.start(&job(Quantity::whole(1), ""), 0, 0).unwrap();
    for policy in ALL.iter().skip(1) {
        let mut p = by_name(policy, &EngineConfig::default()).unwrap();
        assert_eq!(
            p.choose(&a10, &fed),
            Choice::Never,
            "{policy}: no A10 anywhere"
        );
        assert_eq!(
            p.choose(&eight, &fed),
            Choice::Wait,
            "{policy}: 8 GPUs only when big is idle"
        );
    }
    assert!(by_name("random", &EngineConfig::default()).is_none());
    assert_eq!(
        by_name("rb", &EngineConfig::default()).unwrap().name(),
        "raybroker"
    );
}
