//! Placement explanations: why a queued job waits or where it would start
//! (`GET /v1/jobs/{id}/placement`), where a placed job went, and what a spec
//! would meet if it were submitted now (`POST /v1/placement/dry-run`).
//!
//! A queued job is explained from the same inputs the dispatch loop plans
//! with: the clusters' latest snapshots, the configured policy, what every
//! tenant has in flight (read in full from the queue) and the head of the
//! job's tenant's queue. Nothing here writes to the queue.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use raybroker_core::{Job, JobSpec, JobState, TenantId};
use raybroker_placement::{
    explain_with_releases, Explanation, PendingJob, Problem, MAX_HEAD_PER_TENANT,
};
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::jobs::{read_spec, visible_job};
use super::{now_ms, AppState};
use crate::auth::Caller;
use crate::loops::usage::in_flight_now;

/// The id a dry-run spec goes by in its explanation.
pub(crate) const DRY_RUN_ID: &str = "dry-run";

/// Where a job is or would be placed, and why.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PlacementReport {
    /// The job (`dry-run` for a spec not submitted).
    job_id: String,
    /// Its state (`queued` for a dry run).
    state: JobState,
    /// For a queued job or a dry run: what placement does with it now and
    /// why, cluster by cluster.
    #[schema(value_type = Option<Object>)]
    explanation: Option<Explanation>,
    /// For a job already placed: its current attempt.
    placed: Option<PlacedAttempt>,
    /// All of the above, as readable text.
    text: String,
}

/// Where a job's current attempt went and when.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PlacedAttempt {
    /// The cluster.
    cluster: String,
    /// The attempt's number (1 for the first).
    attempt: u32,
    /// When the attempt was recorded, ms since the epoch.
    placed_at_ms: u64,
    /// When the cluster accepted it, ms since the epoch; absent while unconfirmed.
    submitted_at_ms: Option<u64>,
}

/// Explain a job's placement.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/placement", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "Why the job waits or where it went", body = PlacementReport),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such job for this tenant", body = ErrorBody),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn job_placement(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<PlacementReport>, ApiError> {
    let id = id.map_err(|_| ApiError::job_not_found())?;
    let job = visible_job(&state, &caller, &id).await?;
    if job.state == JobState::Queued {
        let pending = PendingJob::from_job(&job);
        let explanation = explain_pending(&state, &job.tenant, pending).await?;
        return Ok(Json(PlacementReport {
            job_id: job.id.to_string(),
            state: job.state,
            text: explanation.to_string(),
            explanation: Some(explanation),
            placed: None,
        }));
    }
    let placed = job.attempts.last().map(|a| PlacedAttempt {
        cluster: a.cluster.clone(),
        attempt: a.number,
        placed_at_ms: a.created_at_ms,
        submitted_at_ms: a.submitted_at_ms,
    });
    Ok(Json(PlacementReport {
        job_id: job.id.to_string(),
        state: job.state,
        text: placed_text(&job, placed.as_ref()),
        explanation: None,
        placed,
    }))
}

/// Explain where a spec would go if submitted now, without queueing it.
#[utoipa::path(
    post, path = "/v1/placement/dry-run", tag = "jobs",
    request_body(description = "The job spec, as JSON or YAML", content(
        (JobSpec = "application/json"), (JobSpec = "application/yaml"))),
    responses(
        (status = 200, description = "What placement would do with it now", body = PlacementReport),
        (status = 400, description = "Unreadable document", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 413, description = "Body over the configured limit", body = ErrorBody),
        (status = 415, description = "Not JSON or YAML", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn dry_run(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PlacementReport>, ApiError> {
    let spec = read_spec(&state, &headers, body).map_err(|(_, err)| err)?;
    let pending = PendingJob {
        id: DRY_RUN_ID.to_string(),
        tenant: caller.tenant.to_string(),
        priority: spec.priority,
        enqueued_at_ms: now_ms(),
        resources: spec.resources,
        placement: spec.placement,
        max_wait_ms: None,
    };
    let explanation = explain_pending(&state, &caller.tenant, pending).await?;
    Ok(Json(PlacementReport {
        job_id: DRY_RUN_ID.to_string(),
        state: JobState::Queued,
        text: explanation.to_string(),
        explanation: Some(explanation),
        placed: None,
    }))
}

/// Explains `job` among the head of `tenant`'s queue (where it is added at
/// the back unless it is already there), as a dispatch round would now.
async fn explain_pending(
    state: &AppState,
    tenant: &TenantId,
    job: PendingJob,
) -> Result<Explanation, ApiError> {
    let now = now_ms();
    let views = state.clusters.views(now);
    let (usage, releases) = in_flight_now(&state.queue, &views, now).await?;
    let policy = state.config.placement_policy();
    let mut jobs: Vec<PendingJob> = state
        .queue
        .peek(tenant, MAX_HEAD_PER_TENANT)
        .await?
        .iter()
        .map(PendingJob::from_job)
        .collect();
    if !jobs.iter().any(|j| j.id == job.id) {
        jobs.push(job.clone());
    }
    let problem = Problem {
        now_ms: now,
        jobs: &jobs,
        clusters: &views,
        policy: &policy,
        usage: &usage,
    };
    Ok(explain_with_releases(&job.id, &problem, &releases))
}

/// `job J: running on C, attempt N placed at T (submitted at T')`.
fn placed_text(job: &Job, placed: Option<&PlacedAttempt>) -> String {
    let state = serde_json::to_value(job.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", job.state));
    match placed {
        None => format!(
            "job {}: {state} without being placed: {}",
            job.id, job.reason
        ),
        Some(p) => {
            let mut text = format!(
                "job {}: {state}; attempt {} placed on {} at {}",
                job.id,
                p.attempt,
                p.cluster,
                rfc3339(p.placed_at_ms)
            );
            match p.submitted_at_ms {
                Some(at) => text.push_str(&format!(", submitted at {}", rfc3339(at))),
                None => text.push_str(", not confirmed submitted yet"),
            }
            text
        }
    }
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, submitted_at_ms: Option<u64>) -> Job {
        let mut attempt = serde_json::json!({"number": 2, "cluster": "gke-burst",
            "submission_id": "rb-x-2", "created_at_ms": 1_700_000_000_000_u64});
        if let Some(at) = submitted_at_ms {
            attempt["submitted_at_ms"] = at.into();
        }
        serde_json::from_value(serde_json::json!({
            "id": "01JDQ3ZK8V6X9T2M4N5P7R8S9A", "tenant": "robotics", "name": "train",
            "state": state, "reason": "because", "attempt": 2, "cluster": "gke-burst",
            "cancel_requested": false, "created_at_ms": 1_699_999_000_000_u64,
            "updated_at_ms": 1_700_000_060_000_u64,
            "spec": {"entrypoint": "python train.py", "resources": {"cpus": 8, "gpus": 2, "nodes": 1}},
            "attempts": [attempt], "history": []
        }))
        .expect("a job")
    }

    fn placed(job: &Job) -> Option<PlacedAttempt> {
        job.attempts.last().map(|a| PlacedAttempt {
            cluster: a.cluster.clone(),
            attempt: a.number,
            placed_at_ms: a.created_at_ms,
            submitted_at_ms: a.submitted_at_ms,
        })
    }

    #[test]
    fn a_placed_job_says_where_and_when() {
        let running = job("running", Some(1_700_000_005_000));
        assert_eq!(
            placed_text(&running, placed(&running).as_ref()),
            "job 01JDQ3ZK8V6X9T2M4N5P7R8S9A: running; attempt 2 placed on gke-burst \
             at 2023-11-14T22:13:20Z, submitted at 2023-11-14T22:13:25Z"
        );
        let unconfirmed = job("dispatching", None);
        let text = placed_text(&unconfirmed, placed(&unconfirmed).as_ref());
        assert!(text.ends_with("not confirmed submitted yet"), "{text}");
        assert!(text.contains(": dispatching;"), "{text}");
    }

    #[test]
    fn a_job_never_placed_gives_its_reason() {
        let failed = job("failed", None);
        assert_eq!(
            placed_text(&failed, None),
            "job 01JDQ3ZK8V6X9T2M4N5P7R8S9A: failed without being placed: because"
        );
    }
}
