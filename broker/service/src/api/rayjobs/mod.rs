//! The Ray Jobs API compatible endpoint: the routes `ray job submit`, `ray
//! job logs|status|stop|list|delete` and Ray's Python `JobSubmissionClient`
//! call, served at the same root paths as a Ray head's dashboard, so
//! `--address http://BROKER` works unchanged (docs/ray-jobs-api.md).
//!
//! Each route is a view of the broker's own job: a submit queues a job for
//! the caller's tenant (the bearer token picks it, as on the `/v1` API), the
//! broker places and retries it, and reads answer from the broker's record.
//! The Ray view is scoped to the caller's own tenant, admins included; a job
//! of another tenant answers like a missing one. Failures answer the way a
//! Ray head does (status code and plain text), so Ray's clients raise the
//! same errors: see [`RayError`].
//!
//! - [`convert`]: a submit request as a job spec; [`details`]: a job as
//!   Ray's `JobDetails`;
//! - [`jobs`]: submit, get, list, logs, stop, delete; [`tail`]: the log
//!   WebSocket; [`packages`]: `working_dir` / `py_modules` uploads.

mod convert;
mod details;
mod jobs;
mod packages;
mod tail;
#[cfg(test)]
mod tests;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use raybroker_core::{Job, JobId};
use raybroker_queue::QueueError;
use serde_json::{json, Value};

use super::error::is_unavailable;
use super::AppState;
use crate::auth::{AuthError, Caller};
use crate::config::RayJobsApiSettings;
use crate::raystore::StoreError;

/// The Jobs API version this endpoint speaks (Ray's `CURRENT_VERSION`: 4
/// added `DELETE /api/jobs/{id}`).
const JOBS_API_VERSION: &str = "4";
/// The `ray_version` reported to clients: the oldest Ray release whose
/// clients this endpoint is tested with. Clients only check it is at least
/// 2.8 (for `entrypoint_memory`).
const REPORTED_RAY_VERSION: &str = "2.31.0";

/// The routes, for the API's router.
pub(crate) fn routes(settings: &RayJobsApiSettings) -> Router<AppState> {
    let package_limit = usize::try_from(settings.max_package_bytes.0).unwrap_or(usize::MAX);
    Router::new()
        .route("/api/version", get(version))
        .route("/api/jobs/", post(jobs::submit).get(jobs::list))
        .route("/api/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/api/jobs/{id}/logs", get(jobs::logs))
        .route("/api/jobs/{id}/logs/tail", get(tail::tail))
        .route("/api/jobs/{id}/stop", post(jobs::stop))
        .route(
            "/api/packages/{protocol}/{name}",
            get(packages::check)
                .put(packages::upload)
                // Packages are far larger than job documents; this limit
                // replaces `api.max_body_bytes` on this route only.
                .layer(DefaultBodyLimit::max(package_limit)),
        )
}

/// `GET /api/version`: unauthenticated, as on a Ray head (clients call it
/// first to check compatibility).
async fn version() -> Json<Value> {
    Json(json!({
        "version": JOBS_API_VERSION,
        "ray_version": REPORTED_RAY_VERSION,
        "ray_commit": concat!("raybroker-", env!("CARGO_PKG_VERSION")),
        "session_name": "raybroker",
    }))
}

/// A failure, answered like a Ray head: a status and a plain-text body
/// (Ray's clients raise `RuntimeError("Request failed with status code
/// {status}: {text}.")`, or, from 2.60 on, `AuthenticationError` for 401/403).
#[derive(Debug)]
pub(crate) struct RayError {
    status: StatusCode,
    text: String,
}

impl RayError {
    fn new(status: StatusCode, text: impl Into<String>) -> RayError {
        RayError {
            status,
            text: text.into(),
        }
    }

    /// 404 in Ray's words, for missing jobs and other tenants' jobs alike.
    pub(crate) fn no_such_job(id: &str) -> RayError {
        RayError::not_found(format!("Job {id} does not exist"))
    }

    /// 404.
    pub(crate) fn not_found(text: impl Into<String>) -> RayError {
        RayError::new(StatusCode::NOT_FOUND, text)
    }

    /// 400: the request is wrong.
    pub(crate) fn bad_request(text: impl Into<String>) -> RayError {
        RayError::new(StatusCode::BAD_REQUEST, text)
    }

    /// A reused `submission_id`: 500 with Ray's text, which Ray's own tools
    /// (and raybroker's Ray adapter) recognise by `already exists`.
    pub(crate) fn duplicate(submission_id: &str) -> RayError {
        RayError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Job with submission_id {submission_id} already exists. \
                 Please use a different submission_id."
            ),
        )
    }

    /// 413: over `limit` bytes.
    pub(crate) fn too_large(limit: u64) -> RayError {
        RayError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is over the broker's limit of {limit} bytes"),
        )
    }

    /// 503: Redis cannot be reached.
    fn unavailable() -> RayError {
        RayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker's job queue is unavailable; retry later",
        )
    }

    /// 500; the detail goes to the log.
    fn internal() -> RayError {
        RayError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the broker's log",
        )
    }

    /// The HTTP status.
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

impl From<QueueError> for RayError {
    fn from(err: QueueError) -> RayError {
        if is_unavailable(&err) {
            tracing::warn!(error = %err, "queue unavailable");
            RayError::unavailable()
        } else {
            tracing::error!(error = %err, "queue error");
            RayError::internal()
        }
    }
}

impl From<StoreError> for RayError {
    fn from(err: StoreError) -> RayError {
        tracing::warn!(error = %err, "ray store unavailable");
        RayError::unavailable()
    }
}

impl IntoResponse for RayError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.text,
        )
            .into_response()
    }
}

/// The caller of a Ray route. Refusals answer as Ray's token authentication
/// does: 401 without a token, 403 with one that is not valid.
pub(crate) struct RayCaller(pub(crate) Caller);

impl FromRequestParts<AppState> for RayCaller {
    type Rejection = RayError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, RayError> {
        let header = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        state
            .auth
            .authenticate(header)
            .map(RayCaller)
            .map_err(|err| {
                tracing::info!(reason = %err, "ray api request refused: not authenticated");
                match err {
                    AuthError::Missing => RayError::new(
                        StatusCode::UNAUTHORIZED,
                        "Unauthorized: Missing authentication token",
                    ),
                    AuthError::Malformed | AuthError::Unknown => RayError::new(
                        StatusCode::FORBIDDEN,
                        "Forbidden: Invalid authentication token",
                    ),
                }
            })
    }
}

/// The caller's job named `id`: its `submission_id`, or the broker's job id
/// (which Ray's `job_id` field carries). Other tenants' jobs and jobs
/// deleted from the Ray view are missing.
pub(crate) async fn find_job(state: &AppState, caller: &Caller, id: &str) -> Result<Job, RayError> {
    let tenant = &caller.tenant;
    let job_id = match state.ray_store.job_by_submission(tenant, id).await? {
        Some(job_id) => Some(job_id),
        None => id.parse::<JobId>().ok(),
    };
    let Some(job_id) = job_id else {
        return Err(RayError::no_such_job(id));
    };
    match state.queue.get(&job_id).await? {
        Some(job)
            if &job.tenant == tenant && !state.ray_store.is_deleted(tenant, &job.id).await? =>
        {
            Ok(job)
        }
        _ => Err(RayError::no_such_job(id)),
    }
}
