//! The shared conformance suite against the simulator on the real clock,
//! with the suite's default entrypoints (the simulator interprets them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use raybroker_adapter::ClusterAdapter;
use raybroker_conformance::{run_all, Fixture};
use raybroker_core::{Bytes, GpuModel};
use raybroker_sim::{NodeShape, SimAdapter, SimClusterConfig, SystemClock};

fn cluster() -> SimAdapter {
    let config = SimClusterConfig::new(
        "conformance-ours",
        vec![
            NodeShape::cpu(2, 8, Bytes(32 << 30)),
            NodeShape::gpu(1, 16, Bytes(64 << 30), 2, GpuModel::parse("L4").unwrap()),
        ],
    );
    SimAdapter::new("sim", config, Arc::new(SystemClock)).unwrap()
}

#[tokio::test]
async fn simulator_passes_the_conformance_suite() {
    let ours = cluster();
    let foreign: Arc<dyn ClusterAdapter> = Arc::new(ours.with_origin("conformance-theirs"));
    let mut fixture = Fixture::new("sim", foreign);
    // The simulator answers at once; keep failures quick.
    fixture.timeouts.start = Duration::from_secs(10);
    fixture.timeouts.finish = Duration::from_secs(20);
    fixture.timeouts.stop = Duration::from_secs(5);
    fixture.timeouts.poll = Duration::from_millis(50);
    let started = Instant::now();
    let report = match run_all(Arc::new(ours.clone()), &fixture).await {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    };
    eprintln!(
        "conformance against the simulator passed in {:.1} s:\n{report}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        report.passed.len(),
        raybroker_conformance::checks::ALL.len(),
        "every check ran and passed"
    );
    assert!(
        ours.running_jobs().is_empty() && ours.pending_jobs().is_empty(),
        "every check tidies up after itself"
    );
}
