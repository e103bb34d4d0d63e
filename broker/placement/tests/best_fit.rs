use std::collections::BTreeMap;

use proptest::prelude::*;
use raybroker_adapter::{Capabilities, CapacitySnapshot, NodeCapacity, NodeResources};
use raybroker_core::{Bytes, GpuModel, Placement, Quantity, Resources};

use raybroker_placement::*;

fn caps() -> Capabilities {
    Capabilities {
        fractional_gpus: true,
        multi_node: true,
        gpu_models: true,
        custom_resources: true,
    }
}

fn node(id: &str, model: Option<&str>, cpus: u64, gpus: u64, free_gpus: Quantity) -> NodeCapacity {
    let total = NodeResources {
        cpus: Quantity::whole(cpus),
        memory: Bytes(64 << 30),
        gpus: Quantity::whole(gpus),
        custom: BTreeMap::new(),
    };
    let free = NodeResources {
        gpus: free_gpus,
        ..total.clone()
    };
    NodeCapacity {
        id: id.into(),
        gpu_model: model.map(|m| GpuModel::parse(m).unwrap()),
        total,
        free,
    }
}

fn cluster(name: &str, tier: u32, nodes: Vec<NodeCapacity>) -> ClusterView {
    ClusterView {
        name: name.into(),
        tier,
        cost_per_gpu_hour: 0.0,
        labels: BTreeMap::new(),
        capabilities: caps(),
        snapshot: Some(CapacitySnapshot {
            taken_at_ms: 0,
            nodes,
            pending_jobs: 0,
            version: "test".into(),
        }),
        fresh: true,
        pending_allowance: 2,
    }
}

fn gpus(n: Quantity, models: &str) -> Resources {
    Resources {
        gpus: n,
        gpu_types: GpuModel::parse_list(models).unwrap(),
        ..Resources::default()
    }
}

#[test]
fn a_gpu_model_goes_where_that_model_is() {
    let clusters = [
        cluster(
            "a",
            0,
            vec![node("a1", Some("A100"), 8, 4, Quantity::whole(4))],
        ),
        cluster(
            "b",
            0,
            vec![node("b1", Some("L4"), 8, 2, Quantity::whole(2))],
        ),
    ];
    let d = place(
        &gpus(Quantity::whole(1), "L4"),
        &Placement::default(),
        &clusters,
    );
    assert_eq!(
        d,
        Decision::Place {
            cluster: "b".into(),
            nodes: vec!["b1".into()]
        }
    );
}

#[test]
fn lower_tier_wins_then_tightest_fit() {
    let clusters = [
        cluster(
            "cloud",
            1,
            vec![node("c1", Some("A100"), 8, 1, Quantity::whole(1))],
        ),
        cluster(
            "big",
            0,
            vec![node("b1", Some("A100"), 8, 8, Quantity::whole(8))],
        ),
        cluster(
            "tight",
            0,
            vec![node("t1", Some("A100"), 8, 2, Quantity::whole(1))],
        ),
    ];
    let d = place(
        &gpus(Quantity::whole(1), "A100"),
        &Placement::default(),
        &clusters,
    );
    assert_eq!(
        d,
        Decision::Place {
            cluster: "tight".into(),
            nodes: vec!["t1".into()]
        }
    );
}

#[test]
fn a_job_no_cluster_has_is_never_placed_with_reasons() {
    let clusters = [cluster(
        "a",
        0,
        vec![node("a1", Some("A100"), 8, 4, Quantity::whole(4))],
    )];
    match place(
        &gpus(Quantity::whole(1), "H100"),
        &Placement::default(),
        &clusters,
    ) {
        Decision::Never { reasons } => {
            assert_eq!(reasons.len(), 1);
            assert!(
                reasons[0].1.contains("no GPU of model H100 (it has: A100)"),
                "{reasons:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    match place(
        &gpus(Quantity::whole(5), ""),
        &Placement::default(),
        &clusters,
    ) {
        Decision::Never { reasons } => {
            assert!(reasons[0].1.contains("largest node"), "{reasons:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_busy_cluster_means_wait() {
    let clusters = [cluster(
        "a",
        0,
        vec![node("a1", Some("A100"), 8, 4, Quantity::ZERO)],
    )];
    assert!(matches!(
        place(
            &gpus(Quantity::whole(1), "A100"),
            &Placement::default(),
            &clusters
        ),
        Decision::Wait { .. }
    ));
    let mut stale = clusters[0].clone();
    stale.snapshot.as_mut().unwrap().nodes[0].free.gpus = Quantity::whole(4);
    stale.fresh = false;
    assert!(matches!(
        place(
            &gpus(Quantity::whole(1), "A100"),
            &Placement::default(),
            &[stale]
        ),
        Decision::Wait { .. }
    ));
}

#[test]
fn constraints_and_labels_are_honoured() {
    let mut onprem = cluster("onprem", 0, vec![node("o1", None, 8, 0, Quantity::ZERO)]);
    onprem.labels.insert("site".into(), "onprem".into());
    let cloud = cluster("cloud", 1, vec![node("c1", None, 8, 0, Quantity::ZERO)]);
    let clusters = [onprem, cloud];
    let mut p = Placement::default();
    p.required_labels.insert("site".into(), "onprem".into());
    assert!(
        matches!(place(&Resources::default(), &p, &clusters), Decision::Place { cluster, .. } if cluster == "onprem")
    );
    let p = Placement {
        denied_clusters: vec!["onprem".into()],
        ..Placement::default()
    };
    assert!(
        matches!(place(&Resources::default(), &p, &clusters), Decision::Place { cluster, .. } if cluster == "cloud")
    );
}

#[test]
fn fractional_gpus_share_a_node_until_it_is_full() {
    let mut clusters = [cluster(
        "a",
        0,
        vec![node("a1", Some("A100"), 64, 1, Quantity::whole(1))],
    )];
    let quarter = gpus(Quantity::from_units(2_500), "A100");
    clusters[0].pending_allowance = 100;
    for _ in 0..4 {
        let Decision::Place { nodes, .. } = place(&quarter, &Placement::default(), &clusters)
        else {
            panic!("should fit")
        };
        reserve(clusters[0].snapshot.as_mut().unwrap(), &quarter, &nodes);
    }
    assert!(matches!(
        place(&quarter, &Placement::default(), &clusters),
        Decision::Wait { .. }
    ));
}

#[test]
fn multi_node_jobs_get_all_nodes_or_none() {
    let clusters = [cluster(
        "a",
        0,
        vec![
            node("n1", Some("A100"), 8, 8, Quantity::whole(8)),
            node("n2", Some("A100"), 8, 8, Quantity::whole(4)),
        ],
    )];
    let two = Resources {
        nodes: 2,
        ..gpus(Quantity::whole(8), "A100")
    };
    assert!(matches!(
        place(&two, &Placement::default(), &clusters),
        Decision::Wait { .. }
    ));
    let two_small = Resources {
        nodes: 2,
        ..gpus(Quantity::whole(4), "A100")
    };
    assert!(
        matches!(place(&two_small, &Placement::default(), &clusters), Decision::Place { nodes, .. } if nodes.len() == 2)
    );
}

proptest! {
    /// Whatever the jobs and nodes, placing and reserving never takes more
    /// than a node has free, and never a GPU model the job does not accept.
    #[test]
    fn never_beyond_free_capacity(
        free in prop::collection::vec((0u64..=8, 0u64..=16), 1..6),
        jobs in prop::collection::vec((0u64..=40_000, 0u64..=8, prop::bool::ANY), 1..30),
    ) {
        let models = ["A100", "L4"];
        let nodes: Vec<NodeCapacity> = free.iter().enumerate()
            .map(|(i, (g, c))| {
                let mut n = node(&format!("n{i}"), Some(models[i % 2]), 16, 8, Quantity::whole(*g));
                n.free.cpus = Quantity::whole(*c);
                n
            })
            .collect();
        let mut clusters = [cluster("a", 0, nodes)];
        clusters[0].pending_allowance = u32::MAX;
        for (gpu_units, cpus, want_a100) in jobs {
            let resources = Resources {
                gpus: if gpu_units > 10_000 { Quantity::whole(gpu_units / 10_000) } else { Quantity::from_units(gpu_units) },
                cpus: Quantity::whole(cpus),
                gpu_types: if want_a100 { vec![GpuModel::parse("A100").unwrap()] } else { vec![] },
                ..Resources::default()
            };
            if let Decision::Place { nodes, .. } = place(&resources, &Placement::default(), &clusters) {
                let snapshot = clusters[0].snapshot.as_ref().unwrap();
                for id in &nodes {
                    let n = snapshot.nodes.iter().find(|n| &n.id == id).unwrap();
                    prop_assert!(n.free.gpus >= resources.gpus && n.free.cpus >= resources.cpus);
                    if !resources.gpus.is_zero() {
                        prop_assert!(resources.accepts_gpu(n.gpu_model.as_ref().unwrap()));
                    }
                }
                reserve(clusters[0].snapshot.as_mut().unwrap(), &resources, &nodes);
            }
        }
    }
}
