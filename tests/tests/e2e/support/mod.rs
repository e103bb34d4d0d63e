//! What the end-to-end tests share: the two Ray heads, a broker process per
//! test with a config of its own, the heads' own view of the jobs, and specs.
//!
//! Isolation: every test has its own Redis key prefix, its own `origin` (so
//! it only ever sees its own Ray jobs) and its own random token. The heads
//! are shared, and their capacity is what several tests assert on, so the
//! tests of this binary run one at a time ([`TestEnv`] holds a lock).

// Not every test uses every helper.
#![allow(dead_code)]

mod api;
mod broker;
pub mod ray;
pub mod slurm;

use std::time::Duration;

use serde_json::{json, Value};

pub use broker::{Options, TestEnv};
pub use ray::RayJob;

/// Environment variable with head A's dashboard URL (Ray 2.31.0, 4 x A100).
pub const HEAD_A_VAR: &str = "RAYBROKER_TEST_RAY_A";
/// Environment variable with head B's dashboard URL (current Ray, 2 x L4).
pub const HEAD_B_VAR: &str = "RAYBROKER_TEST_RAY_B";
/// The broker's name for head A.
pub const HEAD_A: &str = "head-a";
/// The broker's name for head B.
pub const HEAD_B: &str = "head-b";
/// GPUs of head A (`--gpus 4 --gpu-model A100`).
pub const HEAD_A_GPUS: u32 = 4;
/// GPUs of head B (`--gpus 2 --gpu-model L4`).
pub const HEAD_B_GPUS: u32 = 2;

/// CPUs every test job asks for: a head has 2 CPUs, so 8 such jobs run at
/// once and a GPU job is never held back by CPUs.
pub const JOB_CPUS: f64 = 0.25;

/// Poll interval for everything that waits.
pub const POLL: Duration = Duration::from_millis(100);

/// The two heads' dashboard URLs.
#[derive(Clone, Debug)]
pub struct Heads {
    /// Head A's URL.
    pub a: String,
    /// Head B's URL.
    pub b: String,
}

impl Heads {
    /// Reads both URLs; fails (never skips) when either is missing.
    pub fn from_env() -> Heads {
        Heads {
            a: head_url(HEAD_A_VAR),
            b: head_url(HEAD_B_VAR),
        }
    }

    /// Every head as (the broker's cluster name, URL).
    pub fn all(&self) -> [(&'static str, &str); 2] {
        [(HEAD_A, self.a.as_str()), (HEAD_B, self.b.as_str())]
    }

    /// The URL of the head the broker calls `cluster`.
    pub fn url(&self, cluster: &str) -> &str {
        match cluster {
            HEAD_A => &self.a,
            HEAD_B => &self.b,
            other => panic!("no head is called {other}"),
        }
    }
}

fn head_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "{var} is not set: the end-to-end tests need two real Ray heads.\n\
             Run the project's test command, which starts both (and Redis):\n\
             \n  deploy/local/test.sh\n\
             \nor start the heads yourself and point the tests at them:\n\
             \n  deploy/local/ray.sh install 2.31.0 2.60.0\
             \n  deploy/local/ray.sh start rbtest-a --version 2.31.0 --index 10 --gpus 4 --gpu-model A100\
             \n  deploy/local/ray.sh start rbtest-b --version 2.60.0 --index 11 --gpus 2 --gpu-model L4\
             \n  export {HEAD_A_VAR}=$(deploy/local/ray.sh url rbtest-a) {HEAD_B_VAR}=$(deploy/local/ray.sh url rbtest-b)\
             \n  cargo test -p raybroker-e2e\n"
        ),
    }
}

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("RAYBROKER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390".into())
}

/// A CPU job running `entrypoint` with [`JOB_CPUS`].
pub fn spec(entrypoint: &str) -> Value {
    json!({"entrypoint": entrypoint, "resources": {"cpus": JOB_CPUS}})
}

/// A job asking for `gpus` GPUs of `model`.
pub fn gpu_spec(entrypoint: &str, gpus: u32, model: &str) -> Value {
    json!({
        "entrypoint": entrypoint,
        "resources": {"cpus": JOB_CPUS, "gpus": gpus, "gpu_types": [model]},
    })
}
