//! `/api/jobs/...`: submit, get, list, logs, stop and delete, in Ray's shapes.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rand::distr::{Alphanumeric, SampleString};
use raybroker_core::{validate, FieldError, JobSpec};
use raybroker_placement::static_fit;
use raybroker_queue::{CancelEffect, ListFilter, SubmitOutcome};
use serde_json::{json, Value};

use super::convert::{ray_field, to_spec, SubmitRequest};
use super::details::{job_details, ray_status, JobDetails};
use super::{find_job, RayCaller, RayError};
use crate::api::error::is_unavailable;
use crate::api::{now_ms, AppState};
use crate::metrics::RejectReason;

/// Most jobs `GET /api/jobs/` answers with, newest first (Ray lists every
/// job it remembers; the broker remembers more).
const MAX_LISTED: usize = 1_000;
/// Page size when collecting a listing from the queue.
const LIST_PAGE: usize = 500;

/// `POST /api/jobs/`: queues a job for the caller's tenant. Answers Ray's
/// `{"job_id", "submission_id"}` (both the submission id, as Ray does).
pub(crate) async fn submit(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RayError> {
    let tenant = &caller.tenant;
    let reject = |reason: RejectReason, err: RayError| {
        state.metrics.submission_rejected(reason);
        tracing::info!(%tenant, reason = reason.as_str(), "ray api submission refused");
        err
    };
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let limit = state.config.api.max_body_bytes.0;
            reject(RejectReason::TooLarge, RayError::too_large(limit))
        } else {
            let err = RayError::bad_request(format!("cannot read the body: {rejection}"));
            reject(RejectReason::Malformed, err)
        }
    })?;
    let request: SubmitRequest = serde_json::from_slice(&body).map_err(|e| {
        let text = format!("invalid job submission: {e}");
        reject(RejectReason::Malformed, RayError::bad_request(text))
    })?;
    let submission_id = request
        .submission_id
        .clone()
        .or_else(|| request.job_id.clone())
        .unwrap_or_else(|| {
            format!(
                "raysubmit_{}",
                Alphanumeric.sample_string(&mut rand::rng(), 16)
            )
        });

    let mut digests = HashMap::new();
    for (protocol, name) in request.uploaded_packages() {
        if let Some(digest) = state.ray_store.package(tenant, &protocol, &name).await? {
            digests.insert(format!("{protocol}://{name}"), digest);
        }
    }
    let spec = to_spec(&request, &submission_id, &digests)
        .map_err(|text| reject(RejectReason::Invalid, RayError::bad_request(text)))?;
    validate(&spec, &state.validation).map_err(|fields| {
        reject(
            RejectReason::Invalid,
            RayError::bad_request(invalid(&fields)),
        )
    })?;
    if let Some(why) = unschedulable(&state, &spec) {
        return Err(reject(RejectReason::Invalid, RayError::bad_request(why)));
    }

    let outcome = state
        .queue
        .submit(tenant, spec, now_ms())
        .await
        .map_err(|err| {
            if is_unavailable(&err) {
                state.metrics.submission_rejected(RejectReason::Unavailable);
            }
            RayError::from(err)
        })?;
    match outcome {
        SubmitOutcome::Created(job) => {
            state.metrics.job_submitted(tenant);
            tracing::info!(%tenant, job_id = %job.id, submission_id, "job submitted through the ray api");
            Ok(Json(
                json!({"job_id": submission_id, "submission_id": submission_id}),
            ))
        }
        SubmitOutcome::Existing(_) => Err(RayError::duplicate(&submission_id)),
    }
}

/// Why no configured cluster could ever run `spec`, when none could (like
/// the `/v1` API; clusters not seen yet get the benefit of the doubt).
fn unschedulable(state: &AppState, spec: &JobSpec) -> Option<String> {
    let views = state.clusters.views(now_ms());
    let never: Vec<String> = views
        .iter()
        .filter_map(|view| {
            static_fit(&spec.resources, &spec.placement, view)
                .err()
                .map(|why| format!("{}: {why}", view.name))
        })
        .collect();
    (!views.is_empty() && never.len() == views.len())
        .then(|| format!("no cluster can run this job: {}", never.join("; ")))
}

/// Every problem of a refused spec, in the Ray request's terms.
fn invalid(fields: &[FieldError]) -> String {
    let problems: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", ray_field(&f.field), f.message))
        .collect();
    format!("invalid job: {}", problems.join("; "))
}

/// `GET /api/jobs/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    Path(id): Path<String>,
) -> Result<Json<JobDetails>, RayError> {
    let job = find_job(&state, &caller, &id).await?;
    Ok(Json(job_details(&job)))
}

/// `GET /api/jobs/`: the caller's jobs, newest first, at most [`MAX_LISTED`].
pub(crate) async fn list(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
) -> Result<Json<Vec<JobDetails>>, RayError> {
    let deleted = state.ray_store.deleted_jobs(&caller.tenant).await?;
    let filter = ListFilter {
        tenant: Some(caller.tenant.clone()),
        ..ListFilter::default()
    };
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = state
            .queue
            .list(&filter, cursor.as_deref(), LIST_PAGE)
            .await?;
        listed.extend(
            page.jobs
                .iter()
                .filter(|job| !deleted.contains(job.id.as_str()))
                .map(job_details),
        );
        cursor = page.next_cursor;
        if cursor.is_none() || listed.len() >= MAX_LISTED {
            break;
        }
    }
    listed.truncate(MAX_LISTED);
    Ok(Json(listed))
}

/// `GET /api/jobs/{id}/logs`: `{"logs": "<the whole log the broker kept>"}`.
pub(crate) async fn logs(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, RayError> {
    let job = find_job(&state, &caller, &id).await?;
    let (text, _) = state.queue.logs(&job.id, 0).await?;
    Ok(Json(json!({ "logs": text })))
}

/// `POST /api/jobs/{id}/stop`: `{"stopped": true}` when the job had not
/// finished (a queued job stops at once, a dispatched one through its cluster).
pub(crate) async fn stop(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, RayError> {
    let job = find_job(&state, &caller, &id).await?;
    let reason = format!("stopped by tenant {} through the ray api", caller.tenant);
    let outcome = state.queue.cancel(&job.id, &reason, now_ms()).await?;
    tracing::info!(tenant = %caller.tenant, job_id = %job.id, effect = ?outcome.effect, "ray api stop");
    let stopped = outcome.effect != CancelEffect::AlreadyFinished;
    Ok(Json(json!({ "stopped": stopped })))
}

/// `DELETE /api/jobs/{id}`: removes a finished job from the tenant's Ray
/// view (the broker keeps its record). Like Ray, only finished jobs.
pub(crate) async fn delete(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, RayError> {
    let job = find_job(&state, &caller, &id).await?;
    if !job.state.is_terminal() {
        return Err(RayError::bad_request(format!(
            "Attempted to delete job '{id}', but it is in a non-terminal state {}; stop it first",
            ray_status(job.state)
        )));
    }
    state.ray_store.delete_job(&caller.tenant, &job.id).await?;
    tracing::info!(tenant = %caller.tenant, job_id = %job.id, "deleted from the ray view");
    Ok(Json(json!({ "deleted": true })))
}
