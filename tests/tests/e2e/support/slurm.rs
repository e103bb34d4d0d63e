//! The test Slurm in a test's broker: its cluster entry, the Slurm job of a
//! broker job, and cleaning up the Slurm jobs a test left.
//!
//! Needs what `deploy/local/test.sh` exports for the Slurm it starts:
//! `RAYBROKER_TEST_SLURM_URL`, `_JWT_KEY`, `_JOBS_DIR`, `_RAY_BIN`.

use std::path::PathBuf;
use std::time::Duration;

use raybroker_adapter::ClusterAdapter;
pub use raybroker_conformance::processes::processes_mentioning;
use raybroker_slurm::{SlurmAdapter, SlurmAuth, SlurmClusterConfig};

use super::{Options, TestEnv};

/// The broker's name for the test Slurm.
pub const SLURM: &str = "slurm";
/// The fake GPUs' model there (`slurm.sh start` default); no Ray head has it.
pub const SLURM_GPU_MODEL: &str = "H100";
/// How long the broker's minted Slurm tokens live: short, so every test
/// run on Slurm goes through several token renewals.
pub const TOKEN_LIFESPAN: &str = "4s";

fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{name} is not set: the Slurm end-to-end tests need the real Slurm the project \
             starts. Run them through the project's test command:\n\n  \
             deploy/local/test.sh -p raybroker-e2e -- slurm\n"
        ),
    }
}

/// The test Slurm's settings.
pub struct SlurmSettings {
    /// slurmrestd's URL.
    pub url: String,
    /// The JWT key file.
    pub jwt_key: PathBuf,
    /// The shared jobs directory.
    pub jobs_dir: PathBuf,
    /// The Ray venv's bin directory on the (single) node.
    pub ray_bin: PathBuf,
}

impl SlurmSettings {
    /// From the environment; fails (never skips) when unset.
    pub fn from_env() -> SlurmSettings {
        SlurmSettings {
            url: var("RAYBROKER_TEST_SLURM_URL"),
            jwt_key: var("RAYBROKER_TEST_SLURM_JWT_KEY").into(),
            jobs_dir: var("RAYBROKER_TEST_SLURM_JOBS_DIR").into(),
            ray_bin: var("RAYBROKER_TEST_SLURM_RAY_BIN").into(),
        }
    }

    /// An adapter on the test Slurm tagging with `origin`, as the broker's.
    pub fn adapter(&self, origin: &str) -> SlurmAdapter {
        let config = SlurmClusterConfig::new(
            &self.url,
            "root",
            SlurmAuth::JwtKey {
                key_file: self.jwt_key.clone(),
                lifespan: Duration::from_secs(600),
            },
            &self.ray_bin,
            &self.jobs_dir,
            origin,
        );
        SlurmAdapter::new("slurm-test-view", config).expect("a valid test config")
    }
}

/// `config` (a test broker's YAML) with the test Slurm added to `clusters`.
pub fn with_slurm_cluster(config: &str) -> String {
    let slurm = SlurmSettings::from_env();
    let entry = format!(
        r#"  - name: {SLURM}
    kind: slurm
    tier: 0
    labels: {{site: hpc}}
    pending_allowance: 2
    slurm:
      address: "{url}"
      user: root
      auth: {{jwt_key_file: "{key}", lifespan: {TOKEN_LIFESPAN}}}
      ray_bin_dir: "{bin}"
      jobs_dir: "{jobs}"
      request_timeout: 15s
"#,
        url = slurm.url,
        key = slurm.jwt_key.display(),
        bin = slurm.ray_bin.display(),
        jobs = slurm.jobs_dir.display(),
    );
    match config.find("\nloops:") {
        Some(at) => format!("{}\n{}{}", &config[..at], entry.trim_end(), &config[at..]),
        None => panic!("the test broker's config has no `loops:` after its clusters"),
    }
}

impl TestEnv {
    /// A broker over both Ray heads and the test Slurm, ready.
    pub async fn start_with_slurm(label: &str) -> TestEnv {
        TestEnv::start_over(label, Options::default(), true).await
    }

    /// The Slurm view of this test's jobs.
    pub fn slurm(&self) -> SlurmAdapter {
        SlurmSettings::from_env().adapter(&self.origin)
    }
}

/// Cancels and removes every Slurm job of `origin` (best effort, on a
/// runtime of its own: the caller may be unwinding).
pub fn clean_up(origin: &str) {
    let owned_origin = origin.to_string();
    let outcome = std::thread::spawn(move || {
        let origin = owned_origin;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let adapter = SlurmSettings::from_env().adapter(&origin);
            let jobs = adapter.list_owned().await.map_err(|e| e.to_string())?;
            for job in &jobs {
                adapter
                    .cancel(&job.submission_id)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            for job in &jobs {
                while adapter.cleanup(&job.submission_id).await.is_err()
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Ok::<(), String>(())
        })
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("cleaning up the Slurm jobs of {origin}: {e}"),
        Err(_) => eprintln!("cleaning up the Slurm jobs of {origin} panicked"),
    }
}
