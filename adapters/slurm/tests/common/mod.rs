//! What the Slurm tests share: the test cluster's settings, adapters,
//! requests, waiting.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raybroker_adapter::{ClusterAdapter, RemoteStatus, SubmitRequest};
pub use raybroker_conformance::unique_origin;
use raybroker_conformance::Fixture;
use raybroker_core::{JobId, JobSpec, Quantity, Resources, TenantId};
use raybroker_slurm::{SlurmAdapter, SlurmAuth, SlurmClusterConfig};

/// The variables `deploy/local/test.sh` exports for the Slurm it starts.
const VARS: [&str; 4] = [
    "RAYBROKER_TEST_SLURM_URL",
    "RAYBROKER_TEST_SLURM_JWT_KEY",
    "RAYBROKER_TEST_SLURM_JOBS_DIR",
    "RAYBROKER_TEST_SLURM_RAY_BIN",
];

/// The test Slurm's settings; fails (never skips) when they are not set.
pub struct TestSlurm {
    /// slurmrestd's URL.
    pub url: String,
    /// The JWT key file.
    pub jwt_key: PathBuf,
    /// The shared jobs directory.
    pub jobs_dir: PathBuf,
    /// The Ray venv's bin directory.
    pub ray_bin: PathBuf,
    /// The fake GPUs' model.
    pub gpu_model: String,
}

pub fn slurm() -> TestSlurm {
    let get = |var: &str| {
        match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{var} is not set: these tests need the real Slurm the project starts. From the \
             repository root run them through deploy/local/test.sh, or:\n\n  \
             deploy/local/slurm.sh start && eval \"$(deploy/local/slurm.sh env)\" && \
             export RAYBROKER_TEST_SLURM_RAY_BIN=$HOME/.cache/raybroker/venvs/ray-2.31.0-py311/bin\n\n\
             (needs {VARS:?})"
        ),
    }
    };
    TestSlurm {
        url: get(VARS[0]),
        jwt_key: get(VARS[1]).into(),
        jobs_dir: get(VARS[2]).into(),
        ray_bin: get(VARS[3]).into(),
        gpu_model: std::env::var("RAYBROKER_TEST_SLURM_GPU_MODEL")
            .unwrap_or_else(|_| "H100".into()),
    }
}

/// A config for the test Slurm, minting tokens of `lifespan`.
pub fn config(origin: &str, lifespan: Duration) -> SlurmClusterConfig {
    let slurm = slurm();
    let mut config = SlurmClusterConfig::new(
        slurm.url,
        "root",
        SlurmAuth::JwtKey {
            key_file: slurm.jwt_key,
            lifespan,
        },
        slurm.ray_bin,
        slurm.jobs_dir,
        origin,
    );
    config.request_timeout = Duration::from_secs(15);
    config
}

/// An adapter tagging with `origin`.
pub fn adapter(name: &str, origin: &str) -> Arc<SlurmAdapter> {
    adapter_with(name, config(origin, Duration::from_secs(600)))
}

pub fn adapter_with(name: &str, config: SlurmClusterConfig) -> Arc<SlurmAdapter> {
    Arc::new(SlurmAdapter::new(name, config).expect("a valid test config"))
}

/// The conformance fixture, with a foreign-origin adapter on the same Slurm.
pub fn fixture(name: &str) -> Fixture {
    let foreign: Arc<dyn ClusterAdapter> =
        adapter(&format!("{name}-foreign"), &unique_origin("foreign"));
    Fixture::new(&format!("rbtest-{name}"), foreign)
}

/// A request for a fresh job.
pub fn request(id: &str, entrypoint: &str, resources: Resources) -> SubmitRequest {
    SubmitRequest {
        submission_id: id.to_string(),
        job_id: JobId::generate(now_ms()),
        tenant: TenantId::new("robotics").expect("a valid tenant"),
        attempt: 1,
        spec: JobSpec {
            entrypoint: entrypoint.to_string(),
            resources,
            ..JobSpec::default()
        },
        extra_env: BTreeMap::from([("TRACEPARENT".to_string(), "00-trace-span-01".to_string())]),
    }
}

/// One CPU, no GPU.
pub fn small() -> Resources {
    Resources {
        cpus: Quantity::whole(1),
        ..Resources::default()
    }
}

/// A fresh submission id.
pub fn fresh_id(label: &str) -> String {
    raybroker_conformance::unique_ids("rbtest-slurm")(label)
}

/// Polls until `done` holds, for at most `within`.
pub async fn wait_for(
    adapter: &dyn ClusterAdapter,
    id: &str,
    within: Duration,
    done: impl Fn(&RemoteStatus) -> bool,
) -> RemoteStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = adapter.status(id).await.expect("status");
        if done(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} not as expected within {within:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls until the job is final.
pub async fn wait_final(adapter: &dyn ClusterAdapter, id: &str, within: Duration) -> RemoteStatus {
    wait_for(adapter, id, within, |s| s.state.is_final()).await
}

/// The whole log of a job.
pub async fn whole_log(adapter: &dyn ClusterAdapter, id: &str) -> String {
    adapter.logs(id, 0).await.expect("logs").text
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
