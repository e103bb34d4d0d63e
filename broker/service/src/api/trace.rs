//! `GET /v1/jobs/{id}/trace`: the job's whole trace, broker, cluster and job
//! spans under one trace id, as a tree.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::jobs::visible_job;
use super::{now_ms, ApiError, AppState};
use crate::auth::Caller;
use crate::telemetry::{ids, span};

/// A span in the tree.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub(crate) struct TraceSpan {
    /// 0 for a root, 1 for its children, ...
    pub(crate) depth: usize,
    /// The span.
    #[serde(flatten)]
    pub(crate) span: span::SpanRecord,
}

/// A job's trace.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub(crate) struct TraceResponse {
    /// The job.
    pub(crate) job_id: String,
    /// Its trace id (derived from the job id).
    pub(crate) trace_id: String,
    /// Every span, depth first, children by start time.
    pub(crate) spans: Vec<TraceSpan>,
}

/// The job's trace: its lifecycle, its adapter calls, the cluster's times
/// and every span the job sent.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/trace", tag = "telemetry",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The span tree", body = TraceResponse),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such job for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn job_trace(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TraceResponse>, ApiError> {
    let id = id.map_err(|_| ApiError::job_not_found())?;
    let job = visible_job(&state, &caller, &id).await?;
    let spans = state.telemetry.trace(&job, now_ms()).await?;
    Ok(Json(TraceResponse {
        job_id: job.id.to_string(),
        trace_id: hex::encode(ids::trace_id(&job.id)),
        spans: span::tree_order(spans)
            .into_iter()
            .map(|(depth, span)| TraceSpan { depth, span })
            .collect(),
    }))
}
