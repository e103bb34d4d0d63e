//! The shapes of Ray's REST answers and requests (the fields the adapter
//! uses; Ray sends more, and serde ignores the rest).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A failed exchange with the dashboard, not yet given a meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// No HTTP answer: refused, reset, unresolvable, or out of time.
    Transport {
        /// `METHOD /path` of the call.
        call: String,
        /// The request ran past `request_timeout`.
        timed_out: bool,
        /// What the HTTP client said.
        message: String,
    },
    /// An HTTP answer other than 2xx.
    Status {
        /// `METHOD /path` of the call.
        call: String,
        /// The HTTP status code.
        status: u16,
        /// The whole body (Ray answers plain text, often a Python traceback).
        body: String,
    },
    /// A 2xx answer whose body is not what the API documents.
    Decode {
        /// `METHOD /path` of the call.
        call: String,
        /// The decoder's complaint and the start of the body.
        message: String,
    },
}

/// `GET /api/version`.
#[derive(Clone, Debug, Deserialize)]
pub struct VersionInfo {
    /// e.g. `2.31.0`.
    pub ray_version: String,
}

/// The body of `POST /api/jobs/` (Ray's `JobSubmitRequest`; unknown fields are
/// refused with 400, so only set what every supported version knows).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SubmitBody {
    /// Shell command run by the job's driver.
    pub entrypoint: String,
    /// The broker's id for the attempt; the key that makes submit idempotent.
    pub submission_id: String,
    /// Ray's `runtime_env` (env_vars, working_dir, pip, py_modules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_env: Option<Value>,
    /// String tags; the broker's `raybroker.*` keys.
    pub metadata: BTreeMap<String, String>,
    /// CPUs reserved for the entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_cpus: Option<f64>,
    /// GPUs reserved for the entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_gpus: Option<f64>,
    /// Memory reserved for the entrypoint, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_memory: Option<u64>,
    /// Custom resources reserved for the entrypoint.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub entrypoint_resources: BTreeMap<String, f64>,
}

/// One job as `GET /api/jobs/{id}` and `GET /api/jobs/` describe it (the
/// fields the adapter reads; Ray sends more).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct JobDetails {
    /// The submission id; absent for drivers started outside the Jobs API.
    #[serde(default)]
    pub submission_id: Option<String>,
    /// PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED.
    pub status: String,
    /// Ray's explanation (on failure it ends with up to 20,000 chars of log).
    #[serde(default)]
    pub message: Option<String>,
    /// e.g. `JOB_ENTRYPOINT_COMMAND_ERROR` (2.60; null in 2.31).
    #[serde(default)]
    pub error_type: Option<String>,
    /// Epoch ms; set when the job is submitted, not when it starts running.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// Epoch ms, once final.
    #[serde(default)]
    pub end_time: Option<u64>,
    /// Tags given at submit (values are strings in practice; kept loose so
    /// one odd job cannot break a listing).
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Value>>,
    /// The entrypoint's exit code, once it exited.
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
}

/// One node from `GET /api/v0/nodes`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct NodeInfo {
    /// Ray's node id (hex).
    pub node_id: String,
    /// ALIVE or DEAD.
    pub state: String,
    /// Resources with their real names (`gpu_a100`, `accelerator_type:A100`).
    #[serde(default)]
    pub resources_total: BTreeMap<String, f64>,
}

/// Usage from `GET /api/cluster_status` (`data.clusterStatus.loadMetricsReport`).
/// Resource names here are camelCased by the dashboard (`gpu_a100` becomes
/// `gpuA100`); node ids are not.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct LoadMetrics {
    /// Cluster-wide `{resource: [used, total]}`.
    #[serde(default)]
    pub usage: BTreeMap<String, Vec<f64>>,
    /// Per node id `{resource: [used, total]}`.
    #[serde(default, rename = "usageByNode")]
    pub usage_by_node: Option<BTreeMap<String, BTreeMap<String, Vec<f64>>>>,
}

#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    pub(super) data: T,
}

#[derive(Deserialize)]
pub(super) struct ClusterStatusData {
    #[serde(default, rename = "clusterStatus")]
    pub(super) cluster_status: Option<ClusterStatusBody>,
}

#[derive(Deserialize)]
pub(super) struct ClusterStatusBody {
    #[serde(default, rename = "loadMetricsReport")]
    pub(super) load_metrics_report: Option<LoadMetrics>,
}

#[derive(Deserialize)]
pub(super) struct NodesData {
    pub(super) result: NodesResult,
}

#[derive(Deserialize)]
pub(super) struct NodesResult {
    pub(super) result: Vec<NodeInfo>,
}

#[derive(Deserialize)]
pub(super) struct LogsAnswer {
    pub(super) logs: String,
}

#[derive(Deserialize)]
pub(super) struct StopAnswer {
    pub(super) stopped: bool,
}
