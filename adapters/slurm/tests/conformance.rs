//! The shared conformance suite against the real Slurm `deploy/local/slurm.sh`
//! starts, each job a Ray cluster inside its allocation.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use raybroker_adapter::ClusterAdapter;

#[tokio::test]
async fn conformance_on_slurm() {
    let adapter: Arc<dyn ClusterAdapter> =
        common::adapter("slurm", &common::unique_origin("slurm"));
    let mut fixture = common::fixture("slurm");
    // A Ray head inside a job takes 3-10 s to come up on a busy 2-core machine.
    fixture.timeouts.start = Duration::from_secs(90);
    fixture.timeouts.finish = Duration::from_secs(120);
    // Slurm ends a cancelled job with SIGTERM, then SIGKILL after KillWait.
    fixture.timeouts.stop = Duration::from_secs(60);
    let started = Instant::now();
    match raybroker_conformance::run_all(adapter, &fixture).await {
        Ok(report) => eprintln!(
            "conformance against slurm passed in {:.1} s:\n{report}",
            started.elapsed().as_secs_f64()
        ),
        Err(failure) => panic!("{failure}"),
    }
}
