//! What the KubeRay adapter's tests share: a Kubernetes API test server in
//! front of a real Ray head, kubeconfigs for it, adapters and fixtures.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::PathBuf;
use std::sync::Arc;

use raybroker_adapter::ClusterAdapter;
pub use raybroker_conformance::unique_origin;
use raybroker_conformance::Fixture;
use raybroker_kube_testserver::{gpu_node, schema, TestServer, TestServerConfig};
use raybroker_kuberay::{KubeRayAdapter, KubeRayClusterConfig};
use serde_json::json;

/// The Ray head the test operator runs entrypoints on (Ray 2.60, 2 fake L4s).
pub const HEAD_B: &str = "RAYBROKER_TEST_RAY_B";
/// The namespace every test uses.
pub const NAMESPACE: &str = "ray-jobs";
/// The bearer token the test server requires.
pub const TOKEN: &str = "kuberay-test-token";

/// The head's dashboard URL; fails (never skips) when it is not set.
pub fn head_url() -> String {
    match std::env::var(HEAD_B) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{HEAD_B} is not set: the test operator runs jobs on a real Ray head. From the repository root:\n\
             \n  deploy/local/ray.sh start rbkube --version 2.60.0 --index 12 --gpus 2 --gpu-model L4\
             \n  export {HEAD_B}=$(deploy/local/ray.sh url rbkube)\n\
             \nor run the tests through deploy/local/test.sh -p raybroker-kuberay"
        ),
    }
}

/// A test server with one L4 node and one CPU node, requiring [`TOKEN`].
pub async fn server() -> TestServer {
    let mut cpu = gpu_node("cpu-1", "kubernetes.io/os", "linux", 0);
    cpu["status"]["allocatable"]["nvidia.com/gpu"] = json!("0");
    TestServer::start(TestServerConfig {
        crds_dir: schema::crds_dir(),
        ray_url: head_url(),
        token: Some(TOKEN.to_string()),
        nodes: vec![
            gpu_node("l4-1", "cloud.google.com/gke-accelerator", "nvidia-l4", 2),
            cpu,
        ],
    })
    .await
    .expect("the kubernetes api test server starts (are the KubeRay CRDs readable?)")
}

/// Writes a kubeconfig for `server` with `user` and returns its path.
pub fn write_kubeconfig(server: &TestServer, label: &str, user: &serde_json::Value) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "raybroker-kuberay-{label}-{}-{}.yaml",
        std::process::id(),
        unique_origin("k")
    ));
    std::fs::write(&path, server.kubeconfig(user)).expect("write the kubeconfig");
    path
}

/// An ephemeral-mode config (L4 workers, a 4-node autoscaled L4 pool) for `server`.
pub fn config(server: &TestServer, origin: &str) -> KubeRayClusterConfig {
    let kubeconfig = write_kubeconfig(server, origin, &json!({"token": TOKEN}));
    let yaml = format!(
        r#"
kubeconfig: {kubeconfig}
namespace: {NAMESPACE}
origin: {origin}
ttl_after_finished: 1s
template:
  ray_version: 2.60.0
  image: rayproject/ray:2.60.0-gpu
  head: {{cpus: 1, memory: 2GiB}}
  worker_groups:
    - gpu_model: L4
      label_value: nvidia-l4
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
      autoscale_max_nodes: 4
      autoscale_node: {{cpus: 8, memory: 32GiB, gpus: 2}}
"#,
        kubeconfig = kubeconfig.display()
    );
    serde_norway::from_str(&yaml).expect("a valid test config")
}

/// An adapter for `config`.
pub fn adapter(name: &str, config: KubeRayClusterConfig) -> Arc<KubeRayAdapter> {
    Arc::new(KubeRayAdapter::new(name, config).expect("a valid test config"))
}

/// The conformance fixture, with a foreign-origin adapter on the same server.
pub fn fixture(server: &TestServer, name: &str) -> Fixture {
    let foreign: Arc<dyn ClusterAdapter> = adapter(
        &format!("{name}-foreign"),
        config(server, &unique_origin("foreign")),
    );
    let mut fixture = Fixture::new(&format!("rbtest-{name}"), foreign);
    // KubeRay's status has no exit code.
    fixture.reports_exit_codes = false;
    fixture
}
