//! The shared conformance suite against real Ray heads (see `common::head_url`).

mod common;

use std::sync::Arc;
use std::time::Instant;

use raybroker_adapter::ClusterAdapter;
use raybroker_ray::GpuModelResource;

async fn run_against(var: &str, name: &str) {
    let url = common::head_url(var);
    let adapter: Arc<dyn ClusterAdapter> = common::adapter(
        name,
        &url,
        &common::unique_origin(name),
        GpuModelResource::AcceleratorType,
    );
    let fixture = common::fixture(name, &url);
    let started = Instant::now();
    match raybroker_conformance::run_all(adapter, &fixture).await {
        Ok(report) => eprintln!(
            "conformance against {name} ({url}) passed in {:.1} s:\n{report}",
            started.elapsed().as_secs_f64()
        ),
        Err(failure) => panic!("{failure}"),
    }
}

#[tokio::test]
async fn conformance_on_ray_2_31_head() {
    run_against(common::HEAD_A, "ray-a").await;
}

#[tokio::test]
async fn conformance_on_current_ray_head() {
    run_against(common::HEAD_B, "ray-b").await;
}
