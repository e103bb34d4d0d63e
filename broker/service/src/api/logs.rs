//! `GET /v1/jobs/{id}/logs`: the job's log as the broker kept it, so it is
//! there after the cluster forgot the job.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::jobs::visible_job;
use super::{ApiError, AppState};
use crate::auth::Caller;

/// Where to start reading.
#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsQuery {
    /// Byte offset to read from: 0 (the default) for the start, or the
    /// `next_offset` of the previous answer to follow the log.
    #[serde(default)]
    offset: u64,
}

/// A stretch of a job's log.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub(crate) struct LogsResponse {
    /// Log text from the offset asked for.
    pub(crate) text: String,
    /// Pass back as `offset` to get what comes after.
    pub(crate) next_offset: u64,
    /// True once the job has finished: no more text will come.
    pub(crate) complete: bool,
}

/// Read a job's log (kept by the broker, newest 1 MiB by default).
#[utoipa::path(
    get, path = "/v1/jobs/{id}/logs", tag = "jobs",
    params(("id" = String, Path, description = "The job id"), LogsQuery),
    responses(
        (status = 200, description = "Log text from the offset", body = LogsResponse),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such job for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn job_logs(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Json<LogsResponse>, ApiError> {
    let id = id.map_err(|_| ApiError::job_not_found())?;
    let Query(query) = query.map_err(|e| ApiError::bad_parameter("offset", e.body_text()))?;
    let job = visible_job(&state, &caller, &id).await?;
    let (text, next_offset) = state.queue.logs(&job.id, query.offset).await?;
    Ok(Json(LogsResponse {
        text,
        next_offset,
        complete: job.state.is_terminal(),
    }))
}
