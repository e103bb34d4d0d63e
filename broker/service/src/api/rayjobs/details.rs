//! A broker [`Job`] as Ray's clients read it: Ray's `JobDetails` shape and
//! the state table. Pure.
//!
//! | broker state                         | Ray status  |
//! |--------------------------------------|-------------|
//! | `queued`, `dispatching`, `submitted` | `PENDING`   |
//! | `running`                            | `RUNNING`   |
//! | `succeeded`                          | `SUCCEEDED` |
//! | `failed`                             | `FAILED`    |
//! | `cancelled`                          | `STOPPED`   |

use std::collections::BTreeMap;

use raybroker_core::{Job, JobState, RuntimeEnv};
use serde::Serialize;
use serde_json::{Map, Value};

use super::convert::ACCELERATOR_PREFIX;

/// Ray's job status for a broker state.
pub(crate) fn ray_status(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Dispatching | JobState::Submitted => "PENDING",
        JobState::Running => "RUNNING",
        JobState::Succeeded => "SUCCEEDED",
        JobState::Failed => "FAILED",
        JobState::Cancelled => "STOPPED",
    }
}

/// The id a Ray client knows a job by: its idempotency key (the
/// `submission_id` it was submitted with), else the broker's job id.
pub(crate) fn submission_id(job: &Job) -> String {
    job.spec
        .idempotency_key
        .clone()
        .unwrap_or_else(|| job.id.to_string())
}

/// Ray's `JobDetails`, plus a `raybroker` object Ray's clients ignore.
#[derive(Debug, Serialize)]
pub(crate) struct JobDetails {
    r#type: &'static str,
    job_id: String,
    submission_id: String,
    driver_info: Option<Value>,
    status: &'static str,
    entrypoint: String,
    message: String,
    error_type: Option<&'static str>,
    start_time: u64,
    end_time: Option<u64>,
    metadata: BTreeMap<String, String>,
    runtime_env: Value,
    driver_agent_http_address: Option<String>,
    driver_node_id: Option<String>,
    driver_exit_code: Option<i32>,
    entrypoint_num_cpus: f64,
    entrypoint_num_gpus: f64,
    entrypoint_memory: u64,
    entrypoint_resources: BTreeMap<String, f64>,
    raybroker: BrokerView,
}

/// What only the broker knows of a job.
#[derive(Debug, Serialize)]
struct BrokerView {
    /// The broker's own state (`queued`, `dispatching`, ...).
    state: JobState,
    /// The cluster of the current attempt.
    cluster: Option<String>,
    /// The current attempt (0 before the first dispatch).
    attempt: u32,
    /// The tenant.
    tenant: String,
}

/// A job as Ray's clients read it.
pub(crate) fn job_details(job: &Job) -> JobDetails {
    let spec = &job.spec;
    let terminal = job.state.is_terminal();
    let end_time = terminal.then(|| {
        job.history
            .iter()
            .rev()
            .find(|t| t.to.is_terminal())
            .map_or(job.updated_at_ms, |t| t.at_ms)
    });
    let error_type = (job.state == JobState::Failed && job.exit_code.is_some_and(|c| c != 0))
        .then_some("JOB_ENTRYPOINT_COMMAND_ERROR");
    let mut resources: BTreeMap<String, f64> = spec
        .resources
        .custom
        .iter()
        .map(|(name, amount)| (name.clone(), amount.as_f64()))
        .collect();
    for model in &spec.resources.gpu_types {
        resources.insert(format!("{ACCELERATOR_PREFIX}{model}"), 0.001);
    }
    JobDetails {
        r#type: "SUBMISSION",
        job_id: job.id.to_string(),
        submission_id: submission_id(job),
        driver_info: None,
        status: ray_status(job.state),
        entrypoint: spec.entrypoint.clone(),
        message: job.reason.clone(),
        error_type,
        start_time: job.created_at_ms,
        end_time,
        metadata: spec.labels.clone(),
        runtime_env: runtime_env_json(&spec.runtime_env),
        driver_agent_http_address: None,
        driver_node_id: None,
        driver_exit_code: job.exit_code,
        entrypoint_num_cpus: spec.resources.cpus.as_f64(),
        entrypoint_num_gpus: spec.resources.gpus.as_f64(),
        entrypoint_memory: spec.resources.memory.0,
        entrypoint_resources: resources,
        raybroker: BrokerView {
            state: job.state,
            cluster: job.cluster.clone(),
            attempt: job.attempt,
            tenant: job.tenant.to_string(),
        },
    }
}

/// The job's runtime_env as Ray writes it (only the keys that are set).
fn runtime_env_json(env: &RuntimeEnv) -> Value {
    let mut out = Map::new();
    if !env.env_vars.is_empty() {
        out.insert("env_vars".into(), serde_json::json!(env.env_vars));
    }
    if let Some(dir) = &env.working_dir {
        out.insert("working_dir".into(), Value::String(dir.clone()));
    }
    if !env.py_modules.is_empty() {
        out.insert("py_modules".into(), serde_json::json!(env.py_modules));
    }
    if !env.pip.is_empty() {
        out.insert("pip".into(), serde_json::json!(env.pip));
    }
    Value::Object(out)
}
