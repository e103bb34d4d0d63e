//! What the Ray Jobs API tests share: an in-process broker whose clusters are
//! the two real Ray heads, the Ray client venvs, and running Ray's CLI and
//! Python scripts against the broker.
//!
//! Needs Redis at `RAYBROKER_TEST_REDIS_URL` (default `redis://127.0.0.1:6390`),
//! the heads at `RAYBROKER_TEST_RAY_A` (Ray 2.31.0, 4 x A100) and
//! `RAYBROKER_TEST_RAY_B` (Ray 2.60.0, 2 x L4), and the venvs that
//! `deploy/local/ray.sh install` creates; `deploy/local/test.sh` provides all
//! of them. Without them the tests fail, naming that script.

#![allow(dead_code)] // each test uses its own part

#[path = "../support/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use raybroker::auth::hash_token;
use serde_json::Value;

pub use common::{redis_connection, Broker, ROBOTICS, VISION};

/// Cluster name of head A in the broker's config.
pub const CLUSTER_A: &str = "ray-a";
/// Cluster name of head B in the broker's config.
pub const CLUSTER_B: &str = "ray-b";
/// `api.max_body_bytes` of the test broker: below the size of the working
/// directories the tests upload, so uploads prove the package limit applies.
pub const MAX_BODY_BYTES: u64 = 64 << 10;
/// `ray_jobs_api.max_package_bytes` of the test broker.
pub const MAX_PACKAGE_BYTES: u64 = 1 << 20;
/// Longest one Ray CLI or Python run may take.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The two Ray versions the project supports, each with its head.
#[derive(Clone, Copy, Debug)]
pub enum RayVersion {
    /// Ray 2.31.0 (Isaac Lab's pin): head A, fake A100s.
    Pinned,
    /// Ray 2.60.0: head B, fake L4s.
    Current,
}

impl RayVersion {
    /// The release, e.g. `2.31.0`.
    pub fn release(self) -> &'static str {
        match self {
            RayVersion::Pinned => "2.31.0",
            RayVersion::Current => "2.60.0",
        }
    }

    /// The URL of the real head running this version.
    pub fn head_url(self) -> String {
        match self {
            RayVersion::Pinned => head_url("RAYBROKER_TEST_RAY_A"),
            RayVersion::Current => head_url("RAYBROKER_TEST_RAY_B"),
        }
    }

    /// The broker's name for that head.
    pub fn cluster(self) -> &'static str {
        match self {
            RayVersion::Pinned => CLUSTER_A,
            RayVersion::Current => CLUSTER_B,
        }
    }

    /// The GPU model that head has.
    pub fn gpu_model(self) -> &'static str {
        match self {
            RayVersion::Pinned => "A100",
            RayVersion::Current => "L4",
        }
    }

    /// The venv with this version's clients (`ray`, `python`).
    pub fn venv(self) -> PathBuf {
        let root = std::env::var_os("RAYBROKER_RAY_VENV_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".cache/raybroker/venvs"))
            })
            .unwrap_or_default();
        let prefix = format!("ray-{}-py", self.release());
        let found = std::fs::read_dir(&root).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .find(|path| path.join("bin/ray").exists())
        });
        found.unwrap_or_else(|| {
            panic!(
                "no Ray {} client venv ({}*) under {}: run deploy/local/test.sh, which \
                 installs it (or deploy/local/ray.sh install {})",
                self.release(),
                prefix,
                root.display(),
                self.release()
            )
        })
    }
}

/// A head's URL from `var`; fails, never skips, when it is not set.
fn head_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url.trim_end_matches('/').to_string(),
        _ => panic!(
            "{var} is not set: the Ray Jobs API tests drive Ray's real clients against a broker \
             over real Ray heads. Run them with deploy/local/test.sh (it starts Redis and both \
             heads), e.g. deploy/local/test.sh -p raybroker --test rayjobs"
        ),
    }
}

impl Broker {
    /// Starts a broker whose clusters are heads A and B.
    pub async fn over_heads() -> Broker {
        let (head_a, head_b) = (
            RayVersion::Pinned.head_url(),
            RayVersion::Current.head_url(),
        );
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let prefix = format!("test-{id}");
        // Each broker has its own origin: brokers of concurrent tests must
        // not collect each other's jobs on the shared heads as orphans.
        let yaml = format!(
            r#"
version: 1
listen: 127.0.0.1:0
redis: {{url: "{redis}", key_prefix: "{prefix}", pool_size: 8}}
api: {{max_body_bytes: {MAX_BODY_BYTES}}}
ray_jobs_api: {{max_package_bytes: {MAX_PACKAGE_BYTES}, package_ttl: 10m}}
origin: rbtest-rayjobs-{id}
tenants:
  - {{name: robotics, token_sha256: "{robotics}"}}
  - {{name: vision, token_sha256: "{vision}"}}
loops: {{snapshot_every: 1s, dispatch_every: 100ms, reconcile_every: 300ms}}
clusters:
  - {{name: {CLUSTER_A}, kind: ray, ray: {{address: "{head_a}", request_timeout: 15s}}}}
  - {{name: {CLUSTER_B}, kind: ray, ray: {{address: "{head_b}", request_timeout: 15s}}}}
"#,
            redis = common::redis_url(),
            robotics = hash_token(ROBOTICS),
            vision = hash_token(VISION),
        );
        let mut broker = Broker::from_yaml(prefix, &yaml).await;
        // Shutting down may wait on calls to the real heads.
        broker.stop_within = Duration::from_secs(20);
        broker
    }
}

/// The Python scripts beside this file.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rayjobs")
        .join(name)
}

/// Runs `program` (from `version`'s venv) with `args`, off the async
/// runtime so the in-process broker keeps serving, within [`RUN_LIMIT`].
/// The environment is cleaned of Ray variables that would redirect the
/// client (`RAY_ADDRESS`, ...), and the venv comes first on `PATH`.
pub async fn run(version: RayVersion, program: &str, args: Vec<String>) -> Output {
    run_with_env(version, program, args, Vec::new()).await
}

/// [`run`] with extra environment variables (set after the cleaning).
pub async fn run_with_env(
    version: RayVersion,
    program: &str,
    args: Vec<String>,
    extra_env: Vec<(&'static str, String)>,
) -> Output {
    let venv = version.venv();
    let executable = venv.join("bin").join(program);
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shown = format!("{} {}", executable.display(), args.join(" "));
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(&executable);
        command
            .args(&args)
            .env("PATH", path)
            .env("PYTHONUNBUFFERED", "1");
        for name in [
            "RAY_ADDRESS",
            "RAY_API_SERVER_ADDRESS",
            "RAY_JOB_HEADERS",
            "RAY_AUTH_MODE",
            "RAY_AUTH_TOKEN",
        ] {
            command.env_remove(name);
        }
        command.envs(extra_env);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let started = Instant::now();
        while child.try_wait().expect("the child can be polled").is_none() {
            if started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let output = child.wait_with_output().expect("output");
                panic!(
                    "{shown} ran longer than {RUN_LIMIT:?}\n{}",
                    describe(&output)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("the output is collected")
    })
    .await
    .expect("the runner did not panic")
}

/// Runs one of the Python scripts with `args`; its last stdout line is JSON.
pub async fn run_script(version: RayVersion, name: &str, args: &[&str]) -> Value {
    let mut all = vec![script(name).display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let output = run(version, "python", all).await;
    assert!(
        output.status.success(),
        "{name} with Ray {} failed:\n{}",
        version.release(),
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "{name}: the last line is not JSON ({e}):\n{}",
            describe(&output)
        )
    })
}

/// Exit status, stdout and stderr, for failure messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `Authorization` header as `ray job --headers` takes it.
pub fn headers_json(token: &str) -> String {
    serde_json::json!({ "Authorization": format!("Bearer {token}") }).to_string()
}
