//! What the end-to-end tests share: the heads' URLs, adapters, fixtures.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raybroker_adapter::{ClusterAdapter, RemoteStatus};
pub use raybroker_conformance::unique_origin;
use raybroker_conformance::Fixture;
use raybroker_ray::{GpuModelResource, RayAdapter, RayClusterConfig};

/// Head A: Ray 2.31.0 with 4 fake A100s.
pub const HEAD_A: &str = "RAYBROKER_TEST_RAY_A";
/// Head B: the current Ray release with 2 fake L4s.
pub const HEAD_B: &str = "RAYBROKER_TEST_RAY_B";

/// The dashboard URL of a test head; fails (never skips) when it is not set.
pub fn head_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{var} is not set: these tests need real Ray heads. Start them from the repository root:\n\
             \n  deploy/local/ray.sh install\
             \n  deploy/local/ray.sh start ray-a --version 2.31.0 --index 1 --gpus 4 --gpu-model A100\
             \n  deploy/local/ray.sh start ray-b --version 2.60.0 --index 2 --gpus 2 --gpu-model L4\
             \n  export {HEAD_A}=$(deploy/local/ray.sh url ray-a) {HEAD_B}=$(deploy/local/ray.sh url ray-b)\n"
        ),
    }
}

/// An adapter for `url` tagging with `origin`.
pub fn adapter(name: &str, url: &str, origin: &str, mode: GpuModelResource) -> Arc<RayAdapter> {
    let mut config = RayClusterConfig::new(url, origin);
    config.gpu_model_resource = mode;
    config.request_timeout = Duration::from_secs(15);
    Arc::new(RayAdapter::new(name, config).expect("a valid test config"))
}

/// The conformance fixture for a head, with a foreign-origin adapter beside it.
pub fn fixture(name: &str, url: &str) -> Fixture {
    let foreign: Arc<dyn ClusterAdapter> = adapter(
        &format!("{name}-foreign"),
        url,
        &unique_origin("foreign"),
        GpuModelResource::AcceleratorType,
    );
    Fixture::new(&format!("rbtest-{name}"), foreign)
}

/// Polls until the job is final, for at most `within`.
pub async fn wait_final(adapter: &dyn ClusterAdapter, id: &str, within: Duration) -> RemoteStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = adapter.status(id).await.expect("status");
        if status.state.is_final() {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} not final within {within:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
