//! `/v1/jobs`: submit, read, list and cancel jobs, each scoped to the caller's tenant.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raybroker_core::{validate, FieldError, Job, JobId, JobSpec, JobState, TenantId};
use raybroker_queue::{CancelEffect, ListFilter, QueueError, SubmitOutcome};
use serde::Serialize;

use super::error::{is_unavailable, ApiError, ErrorBody};
use super::{now_ms, AppState};
use crate::auth::Caller;
use crate::metrics::RejectReason;
use raybroker_placement::static_fit;

/// Default and largest page sizes of a listing.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// One page of jobs.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct JobPage {
    /// The jobs, newest first.
    jobs: Vec<Job>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// What a cancel did.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CancelEffectName {
    /// The job was queued and is now cancelled.
    Cancelled,
    /// The job is on its way to or on a cluster; the cancel is being carried there.
    Requested,
    /// The job had already finished; nothing changed.
    AlreadyFinished,
}

/// The answer to a cancel.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CancelResponse {
    /// What the cancel did.
    effect: CancelEffectName,
    /// The job after the cancel.
    job: Job,
}

/// The body formats a submission may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyFormat {
    Json,
    Yaml,
}

/// Submit a job. The tenant is the token's; the body must not name one.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    request_body(description = "The job spec, as JSON or YAML", content(
        (JobSpec = "application/json"), (JobSpec = "application/yaml"))),
    responses(
        (status = 201, description = "Job queued", body = Job),
        (status = 200, description = "This tenant already used the idempotency key: the existing job", body = Job),
        (status = 400, description = "Unreadable document", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 413, description = "Body over the configured limit", body = ErrorBody),
        (status = 415, description = "Not JSON or YAML", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn submit_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let reject = |reason: RejectReason, err: ApiError| {
        state.metrics.submission_rejected(reason);
        tracing::info!(tenant = %caller.tenant, reason = reason.as_str(), "submission refused");
        err
    };
    let spec = read_spec(&state, &headers, body).map_err(|(reason, err)| reject(reason, err))?;
    // A job no configured cluster could ever run is refused now, with each
    // cluster's reason, rather than queued forever. Clusters not seen yet get
    // the benefit of the doubt.
    let views = state.clusters.views(now_ms());
    let never: Vec<(String, String)> = views
        .iter()
        .filter_map(|view| {
            static_fit(&spec.resources, &spec.placement, view)
                .err()
                .map(|why| (view.name.clone(), why))
        })
        .collect();
    if !views.is_empty() && never.len() == views.len() {
        return Err(reject(
            RejectReason::Invalid,
            ApiError::unschedulable(&never),
        ));
    }

    let outcome = state
        .queue
        .submit(&caller.tenant, spec, now_ms())
        .await
        .map_err(|err| {
            if is_unavailable(&err) {
                state.metrics.submission_rejected(RejectReason::Unavailable);
            }
            ApiError::from(err)
        })?;
    let status = match &outcome {
        SubmitOutcome::Created(job) => {
            state.metrics.job_submitted(&caller.tenant);
            tracing::info!(tenant = %caller.tenant, job_id = %job.id, "job submitted");
            StatusCode::CREATED
        }
        SubmitOutcome::Existing(job) => {
            tracing::info!(tenant = %caller.tenant, job_id = %job.id, "idempotent resubmission");
            StatusCode::OK
        }
    };
    let job = outcome.job();
    let mut response = (status, Json(job)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// Get one job.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such job for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Job>, ApiError> {
    let id = id.map_err(|_| ApiError::job_not_found())?;
    visible_job(&state, &caller, &id).await.map(Json)
}

/// List jobs, newest first. Admins see every tenant's jobs unless `tenant` is given.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    params(
        ("state" = Option<JobState>, Query, description = "Only jobs in this state"),
        ("cluster" = Option<String>, Query, description = "Only jobs whose current attempt is on this cluster"),
        ("label" = Option<Vec<String>>, Query, description = "`key=value`; repeat for several (all must match)"),
        ("tenant" = Option<String>, Query, description = "Admins only: one tenant's jobs"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "Bad query parameter, named", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "A non-admin asked for another tenant", body = ErrorBody),
    )
)]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::malformed(format!("bad query string: {e}"), None))?;
    let ListQuery {
        filter,
        cursor,
        limit,
    } = ListQuery::parse(&pairs, &caller)?;
    let page = state
        .queue
        .list(&filter, cursor.as_deref(), limit)
        .await
        .map_err(|err| match err {
            // The queue refuses a cursor it did not hand out as a conflict.
            QueueError::Conflict { detail, .. } => ApiError::bad_parameter("cursor", detail),
            other => ApiError::from(other),
        })?;
    Ok(Json(JobPage {
        jobs: page.jobs,
        next_cursor: page.next_cursor,
    }))
}

/// Cancel a job: a queued one at once, a dispatching or running one through its cluster.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "What the cancel did, and the job", body = CancelResponse),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such job for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CancelResponse>, ApiError> {
    let id = id.map_err(|_| ApiError::job_not_found())?;
    let job = visible_job(&state, &caller, &id).await?;
    let reason = format!("cancelled by tenant {} through the API", caller.tenant);
    let outcome = state.queue.cancel(&job.id, &reason, now_ms()).await?;
    tracing::info!(tenant = %caller.tenant, job_id = %job.id, effect = ?outcome.effect, "cancel");
    let effect = match outcome.effect {
        CancelEffect::Cancelled => CancelEffectName::Cancelled,
        CancelEffect::Requested => CancelEffectName::Requested,
        CancelEffect::AlreadyFinished => CancelEffectName::AlreadyFinished,
    };
    Ok(Json(CancelResponse {
        effect,
        job: outcome.job,
    }))
}

/// Reads and validates a job spec from a request body (JSON or YAML), as
/// submit and the placement dry run both do; an error comes with the reason
/// the rejection is counted under.
pub(super) fn read_spec(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<JobSpec, (RejectReason, ApiError)> {
    let body = body.map_err(|rejection| {
        let err = ApiError::unreadable_body(rejection, state.config.api.max_body_bytes.0);
        let reason = if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RejectReason::TooLarge
        } else {
            RejectReason::Malformed
        };
        (reason, err)
    })?;
    let content_type = headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
    let format = body_format(content_type).ok_or_else(|| {
        (
            RejectReason::UnsupportedMediaType,
            ApiError::unsupported_media_type(content_type),
        )
    })?;
    let spec = parse_spec(&body, format).map_err(|err| {
        let reason = if err.status() == StatusCode::BAD_REQUEST {
            RejectReason::Malformed
        } else {
            RejectReason::Invalid
        };
        (reason, err)
    })?;
    validate(&spec, &state.validation)
        .map_err(|fields| (RejectReason::Invalid, ApiError::invalid(fields)))?;
    Ok(spec)
}

/// The job named by `raw_id`, if the caller may see it. A malformed id, a
/// missing job and another tenant's job all answer the same 404.
pub(crate) async fn visible_job(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<Job, ApiError> {
    let id: JobId = raw_id.parse().map_err(|_| ApiError::job_not_found())?;
    match state.queue.get(&id).await? {
        Some(job) if caller.can_see(&job.tenant) => Ok(job),
        _ => Err(ApiError::job_not_found()),
    }
}

pub(super) fn body_format(content_type: Option<&str>) -> Option<BodyFormat> {
    let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Some(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Some(BodyFormat::Yaml),
        _ => None,
    }
}

/// Reads the document: 400 when it cannot be read at all, 422 naming the
/// field when a field is unknown, missing or of the wrong type.
fn parse_spec(body: &[u8], format: BodyFormat) -> Result<JobSpec, ApiError> {
    let parsed = match format {
        BodyFormat::Json => JobSpec::from_json(body),
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::malformed("the YAML body is not UTF-8", None))?;
            JobSpec::from_yaml(text)
        }
    };
    parsed.map_err(|err| {
        let err = err.0;
        if err.field.starts_with('[') {
            return ApiError::malformed(
                "the document must be a mapping of fields, not a list",
                None,
            );
        }
        let syntax = match format {
            BodyFormat::Json => err.message.starts_with("malformed"),
            BodyFormat::Yaml => {
                err.field == "?"
                    || err.message.contains("while scanning")
                    || err.message.contains("while parsing")
            }
        };
        let field = name_field(err);
        if syntax || field.field.is_empty() {
            ApiError::malformed(field.message, None)
        } else {
            ApiError::invalid(vec![field])
        }
    })
}

/// serde reports an unknown or missing field at its parent; name the field itself.
fn name_field(mut err: FieldError) -> FieldError {
    for marker in ["unknown field `", "missing field `"] {
        let Some(start) = err.message.find(marker).map(|at| at + marker.len()) else {
            continue;
        };
        let Some(len) = err.message[start..].find('`') else {
            continue;
        };
        let name = &err.message[start..start + len];
        let already = err.field == name || err.field.ends_with(&format!(".{name}"));
        if !already {
            err.field = if err.field.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", err.field)
            };
        }
        break;
    }
    err
}

/// A listing's `limit` parameter: a number from 1 to `max`, else a 400
/// naming it.
pub(super) fn page_limit(value: &str, max: usize) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_parameter("limit", format!("must be a number from 1 to {max}"))
        })
}

/// A parsed listing query.
#[derive(Debug)]
struct ListQuery {
    filter: ListFilter,
    cursor: Option<String>,
    limit: usize,
}

impl ListQuery {
    /// Reads `state`, `cluster`, `label` (repeatable), `tenant`, `limit` and
    /// `cursor`; anything else, or a single-valued one twice, is a 400.
    fn parse(pairs: &[(String, String)], caller: &Caller) -> Result<ListQuery, ApiError> {
        let mut query = ListQuery {
            filter: ListFilter::default(),
            cursor: None,
            limit: DEFAULT_PAGE,
        };
        let mut tenant: Option<TenantId> = None;
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            if name != "label" {
                if seen.contains(&name.as_str()) {
                    return Err(ApiError::bad_parameter(name, "given more than once"));
                }
                seen.push(name);
            }
            match name.as_str() {
                "state" => {
                    let state = value
                        .parse::<JobState>()
                        .map_err(|e| ApiError::bad_parameter("state", e.to_string()))?;
                    query.filter.state = Some(state);
                }
                "cluster" => query.filter.cluster = Some(value.clone()),
                "label" => {
                    let (key, val) = value
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| {
                            ApiError::bad_parameter("label", format!("'{value}' is not key=value"))
                        })?;
                    query.filter.labels.push((key.to_string(), val.to_string()));
                }
                "tenant" => {
                    let id = TenantId::new(value)
                        .map_err(|e| ApiError::bad_parameter("tenant", e.to_string()))?;
                    tenant = Some(id);
                }
                "limit" => query.limit = page_limit(value, MAX_PAGE)?,
                "cursor" => query.cursor = Some(value.clone()),
                other => {
                    return Err(ApiError::bad_parameter(
                        other,
                        "unknown parameter; use state, cluster, label, tenant, limit or cursor",
                    ))
                }
            }
        }
        query.filter.tenant = match (caller.admin, tenant) {
            (true, tenant) => tenant,
            (false, Some(other)) if other != caller.tenant => {
                return Err(ApiError::forbidden(
                    "only admins may list other tenants' jobs",
                ))
            }
            (false, _) => Some(caller.tenant.clone()),
        };
        Ok(query)
    }
}

#[cfg(test)]
mod tests;
