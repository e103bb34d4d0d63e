use raybroker_core::{Bytes, Quantity};

use super::*;

fn node(name: &str, model: Option<&str>, gpus: u32) -> TraceNode {
    TraceNode {
        name: name.to_string(),
        cpus: Quantity::whole(32),
        memory: Bytes(64 << 30),
        gpus,
        gpu_model: model.map(|m| GpuModel::parse(m).unwrap()),
    }
}

fn fleet() -> Vec<TraceNode> {
    let mut nodes: Vec<TraceNode> = (0..200)
        .map(|i| node(&format!("g2-{i}"), Some("G2"), 8))
        .collect();
    nodes.push(node("t4-0", Some("T4"), 2));
    nodes.push(node("cpu-0", None, 0));
    nodes
}

const SPLIT: &str = "
version: 1
clusters:
  - name: east
    tier: 0
    cost_per_gpu_hour: 1.0
    nodes:
      - models: [G2]
        slice: [0.0, 0.5]
      - models: [cpu, t4]
  - name: burst
    tier: 1
    cost_per_gpu_hour: 3.5
    nodes:
      - models: [G2]
        slice: [0.5, 1.0]
";

/// The error of an assignment that should fail.
fn assign_error(split: &SplitFile, nodes: &[TraceNode]) -> String {
    match split.assign(nodes) {
        Ok(clusters) => panic!("expected an error, got {} clusters", clusters.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn slices_split_a_model_deterministically() {
    let split = SplitFile::parse(SPLIT).unwrap();
    let clusters = split.assign(&fleet()).unwrap();
    let east = &clusters[0];
    let burst = &clusters[1];
    assert_eq!(east.nodes.len() + burst.nodes.len(), 202);
    assert!(east.nodes.iter().any(|n| n.name == "t4-0"));
    assert!(east.nodes.iter().any(|n| n.name == "cpu-0"));
    // A hash slice is roughly its fraction, and the same every time.
    assert!(
        (75..=125).contains(&burst.nodes.len()),
        "{}",
        burst.nodes.len()
    );
    let low_names = burst.nodes.iter().filter(|n| n.name.len() <= 5).count();
    assert!(
        (25..=75).contains(&low_names),
        "g2-0..g2-99 spread over both halves: {low_names}"
    );
    let again = split.assign(&fleet()).unwrap();
    let names = |c: &ClusterSpec| c.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&again[1]), names(burst));
    assert_eq!(burst.tier, 1);
    assert_eq!(burst.cost_per_gpu_hour, 3.5);
}

#[test]
fn unknown_fields_are_refused() {
    let text = SPLIT.replace("tier: 1", "tier: 1\n    teir: 2");
    let err = SplitFile::parse(&text).unwrap_err().to_string();
    assert!(err.contains("unknown field `teir`"), "{err}");
}

#[test]
fn every_node_needs_exactly_one_cluster() {
    let uncovered = SPLIT.replace("slice: [0.5, 1.0]", "slice: [0.6, 1.0]");
    let err = assign_error(&SplitFile::parse(&uncovered).unwrap(), &fleet());
    assert!(err.contains("belong to no cluster"), "{err}");
    let overlap = SPLIT.replace("slice: [0.5, 1.0]", "slice: [0.4, 1.0]");
    let err = assign_error(&SplitFile::parse(&overlap).unwrap(), &fleet());
    assert!(err.contains("claimed by both east and burst"), "{err}");
}

#[test]
fn content_is_checked() {
    let cases = [
        ("version: 1", "version: 2", "version 2 is unknown"),
        ("name: burst", "name: east", "used twice"),
        ("name: burst", "name: Burst", "use a-z"),
        (
            "slice: [0.5, 1.0]",
            "slice: [0.7, 0.2]",
            "need 0 <= from < to <= 1",
        ),
        (
            "cost_per_gpu_hour: 3.5",
            "cost_per_gpu_hour: -1",
            "must be >= 0",
        ),
        (
            "models: [cpu, t4]",
            "models: [cpu, 'T 4']",
            "not a GPU model name",
        ),
    ];
    for (from, to, expected) in cases {
        let err = SplitFile::parse(&SPLIT.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{to}: {err}");
    }
}

#[test]
fn a_cluster_without_nodes_is_an_error() {
    let text = SPLIT.replace("models: [cpu, t4]", "models: [cpu, t4, a10]");
    let with_a10 = format!(
        "{text}  - name: empty\n    tier: 1\n    cost_per_gpu_hour: 1\n    nodes:\n      - models: [P100]\n"
    );
    let err = assign_error(&SplitFile::parse(&with_a10).unwrap(), &fleet());
    assert!(err.contains("cluster empty gets no node"), "{err}");
}
