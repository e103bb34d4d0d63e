//! The broker's HTTP answers that have no type in `raybroker-core`, as the CLI
//! reads them. Unknown fields are ignored so a newer broker does not break an
//! older CLI.

use std::collections::BTreeMap;

use raybroker_core::{FieldError, Job, JobId, JobState};
use serde::Deserialize;

/// `GET /v1/jobs`: one page of jobs.
#[derive(Clone, Debug, Deserialize)]
pub struct JobPage {
    /// The jobs on this page.
    pub jobs: Vec<Job>,
    /// Pass back as `cursor` for the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// What a cancel request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelEffect {
    /// The job had not reached a cluster and is now cancelled.
    Cancelled,
    /// The job is on a cluster; the broker is carrying the cancel there.
    Requested,
    /// The job had already finished; nothing changed.
    AlreadyFinished,
}

/// `POST /v1/jobs/{id}/cancel`.
#[derive(Clone, Debug, Deserialize)]
pub struct CancelReply {
    /// What happened.
    pub effect: CancelEffect,
    /// The job after the request.
    pub job: Job,
}

/// One configured cluster, as `GET /v1/clusters` reports it.
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterInfo {
    /// The cluster's name, as used in `--allow-cluster`.
    pub name: String,
    /// The backend, e.g. `ray` or `slurm`.
    #[serde(default)]
    pub kind: String,
    /// Preference tier; shown as the broker sends it (a number or a name).
    #[serde(default)]
    pub tier: serde_json::Value,
    /// Price of one GPU hour, when configured.
    #[serde(default)]
    pub cost_per_gpu_hour: Option<f64>,
    /// Labels that `--require-label` matches against.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// True while the cluster takes new jobs.
    #[serde(default)]
    pub healthy: bool,
    /// Why it is unhealthy.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Its circuit breaker: `healthy`, `degraded` or `down`.
    #[serde(default)]
    pub health: Option<String>,
    /// The backend's version.
    #[serde(default)]
    pub version: Option<String>,
    /// GPUs by model.
    #[serde(default)]
    pub gpus: BTreeMap<String, GpuCount>,
}

/// GPUs of one model on a cluster.
#[derive(Clone, Debug, Deserialize)]
pub struct GpuCount {
    /// How many it has.
    pub total: f64,
    /// How many are free now.
    pub free: f64,
}

/// `GET /v1/clusters`.
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterList {
    /// Every configured cluster.
    pub clusters: Vec<ClusterInfo>,
}

/// The `data` of one `transition` event on `GET /v1/jobs/{id}/events`.
#[derive(Clone, Debug, Deserialize)]
pub struct TransitionEvent {
    /// The job that changed.
    pub job_id: JobId,
    /// The state before; absent for the creation.
    #[serde(default)]
    pub from: Option<JobState>,
    /// The state after.
    pub to: JobState,
    /// The attempt the change belongs to.
    #[serde(default)]
    pub attempt: u32,
    /// Why, in words.
    #[serde(default)]
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub at_ms: u64,
}

/// The body of every 4xx/5xx answer.
#[derive(Clone, Debug, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ApiError,
}

/// What the broker says went wrong (its stable `code` is left to `--output
/// json` users; the CLI goes by the HTTP status).
#[derive(Clone, Debug, Deserialize)]
pub struct ApiError {
    /// One line for people.
    pub message: String,
    /// The offending fields, for validation errors.
    #[serde(default)]
    pub fields: Vec<FieldError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_shapes() {
        let event: TransitionEvent = serde_json::from_str(
            r#"{"job_id": "01JDQ3ZK8V6X9T2M4N5P7R8S9A", "tenant": "robotics", "from": "running",
                "to": "failed", "attempt": 2, "reason": "exit code 1", "at_ms": 5, "cursor": "1-0"}"#,
        )
        .unwrap();
        assert_eq!(event.from, Some(JobState::Running));
        assert_eq!(event.to, JobState::Failed);
        assert_eq!(event.attempt, 2);

        let clusters: ClusterList = serde_json::from_str(
            r#"{"clusters": [{"name": "onprem-a", "kind": "ray", "tier": 0, "cost_per_gpu_hour": null, "labels": {"site": "onprem"}}]}"#,
        )
        .unwrap();
        assert_eq!(clusters.clusters[0].labels["site"], "onprem");
        assert_eq!(clusters.clusters[0].cost_per_gpu_hour, None);

        let error: ErrorBody = serde_json::from_str(
            r#"{"error": {"code": "invalid_spec", "message": "bad", "fields": [{"field": "priority", "message": "too high"}]}}"#,
        )
        .unwrap();
        assert_eq!(error.error.fields[0].field, "priority");

        let effect: CancelEffect = serde_json::from_str("\"already_finished\"").unwrap();
        assert_eq!(effect, CancelEffect::AlreadyFinished);
    }
}

/// `GET /v1/jobs/{id}/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsReply {
    /// Log text from the offset asked for.
    pub text: String,
    /// Where to continue.
    pub next_offset: u64,
    /// True once the job has finished.
    pub complete: bool,
}

/// `GET /v1/jobs/{id}/placement` and `POST /v1/placement/dry-run`: the
/// parts the CLI shows (`--output json` prints the whole body as sent).
#[derive(Clone, Debug, Deserialize)]
pub struct PlacementReport {
    /// The explanation, as readable text.
    pub text: String,
}
