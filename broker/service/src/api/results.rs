//! Results: what each job came to (`GET /v1/jobs/{id}/results`) and the same
//! over many jobs, per job or grouped by tenant, label, cluster or group
//! (`GET /v1/results`), as JSON or CSV.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raybroker_core::{Job, JobState, TenantId};
use raybroker_queue::ListFilter;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::jobs::visible_job;
use super::{now_ms, ApiError, AppState};
use crate::auth::Caller;
use crate::telemetry::results::{self, Aggregate, GroupBy, JobResult, GROUP_LABEL};

/// Most jobs one results request reads.
const MAX_JOBS: usize = 10_000;
/// Jobs read when `limit` is not given.
const DEFAULT_JOBS: usize = 1000;

/// One job's results.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/results", tag = "results",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job's results", body = JobResult),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such job for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn job_results(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<JobResult>, ApiError> {
    let id = id.map_err(|_| ApiError::job_not_found())?;
    let job = visible_job(&state, &caller, &id).await?;
    Ok(Json(result_of(&state, &job).await?))
}

async fn result_of(state: &AppState, job: &Job) -> Result<JobResult, ApiError> {
    let metrics = state.queue.job_metrics(&job.id).await?;
    let artifacts = state.queue.artifacts(&job.id).await?;
    Ok(results::job_result(job, metrics, artifacts, now_ms()))
}

/// Many jobs' results.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub(crate) struct ResultsResponse {
    /// What they were grouped by, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) by: Option<String>,
    /// Jobs read.
    pub(crate) jobs_read: usize,
    /// True when more jobs matched than `limit` allowed reading.
    pub(crate) truncated: bool,
    /// Per job (without `by`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) jobs: Vec<JobResult>,
    /// Per group (with `by`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) aggregates: Vec<Aggregate>,
}

/// Results of many jobs, newest first, per job or grouped.
///
/// Query: `by` (`tenant`, `cluster`, `group` or `label:<key>`; absent: one
/// row per job), `format` (`json`, the default, or `csv`), and the filters
/// `state`, `cluster`, `label=key=value` (repeatable), `group`, `tenant`
/// (admins), `limit` (jobs read, 1 to 10000, default 1000).
#[utoipa::path(
    get, path = "/v1/results", tag = "results",
    params(
        ("by" = Option<String>, Query, description = "tenant, cluster, group or label:<key>"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
        ("state" = Option<String>, Query, description = "Only jobs in this state"),
        ("cluster" = Option<String>, Query, description = "Only jobs whose last attempt ran here"),
        ("label" = Option<String>, Query, description = "key=value; repeatable"),
        ("group" = Option<String>, Query, description = "Only this group's jobs"),
        ("tenant" = Option<String>, Query, description = "Admins: only this tenant's jobs"),
        ("limit" = Option<usize>, Query, description = "Jobs read, 1-10000 (default 1000)"),
    ),
    responses(
        (status = 200, description = "Results (JSON, or text/csv)", body = ResultsResponse),
        (status = 400, description = "A bad parameter, named", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "A non-admin asked for another tenant", body = ErrorBody),
    )
)]
pub(crate) async fn list_results(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::malformed(e.body_text(), None))?;
    let params = ResultsQuery::parse(&pairs, &caller)?;
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    let mut truncated = false;
    loop {
        let want = params.limit - jobs.len();
        let page = state
            .queue
            .list(&params.filter, cursor.as_deref(), want.min(500))
            .await?;
        jobs.extend(page.jobs);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
        if jobs.len() >= params.limit {
            truncated = true;
            break;
        }
    }
    let mut rows = Vec::with_capacity(jobs.len());
    for job in &jobs {
        rows.push(result_of(&state, job).await?);
    }
    let csv = params.csv;
    let (by, aggregates, per_job) = match &params.by {
        Some((text, by)) => (
            Some(text.clone()),
            results::aggregate(&rows, by),
            Vec::new(),
        ),
        None => (None, Vec::new(), rows),
    };
    if csv {
        let body = if by.is_some() {
            results::aggregates_csv(&aggregates)
        } else {
            results::jobs_csv(&per_job)
        };
        return Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(ResultsResponse {
        by,
        jobs_read: jobs.len(),
        truncated,
        jobs: per_job,
        aggregates,
    })
    .into_response())
}

struct ResultsQuery {
    filter: ListFilter,
    by: Option<(String, GroupBy)>,
    csv: bool,
    limit: usize,
}

impl ResultsQuery {
    fn parse(pairs: &[(String, String)], caller: &Caller) -> Result<ResultsQuery, ApiError> {
        let mut q = ResultsQuery {
            filter: ListFilter::default(),
            by: None,
            csv: false,
            limit: DEFAULT_JOBS,
        };
        let mut tenant = None;
        for (name, value) in pairs {
            match name.as_str() {
                "by" => {
                    let by = value
                        .parse::<GroupBy>()
                        .map_err(|e| ApiError::bad_parameter("by", e))?;
                    q.by = Some((value.clone(), by));
                }
                "format" => {
                    q.csv = match value.as_str() {
                        "csv" => true,
                        "json" => false,
                        _ => return Err(ApiError::bad_parameter("format", "use json or csv")),
                    }
                }
                "state" => {
                    let s = value
                        .parse::<JobState>()
                        .map_err(|e| ApiError::bad_parameter("state", e.to_string()))?;
                    q.filter.state = Some(s);
                }
                "cluster" => q.filter.cluster = Some(value.clone()),
                "group" => q.filter.labels.push((GROUP_LABEL.into(), value.clone())),
                "label" => {
                    let (k, v) = value
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| {
                            ApiError::bad_parameter("label", format!("'{value}' is not key=value"))
                        })?;
                    q.filter.labels.push((k.into(), v.into()));
                }
                "tenant" => {
                    tenant = Some(
                        TenantId::new(value)
                            .map_err(|e| ApiError::bad_parameter("tenant", e.to_string()))?,
                    )
                }
                "limit" => {
                    q.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_JOBS).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_parameter("limit", format!("must be 1 to {MAX_JOBS}"))
                        })?
                }
                other => {
                    return Err(ApiError::bad_parameter(
                        other,
                        "unknown; use by, format, state, cluster, label, group, tenant or limit",
                    ))
                }
            }
        }
        q.filter.tenant = match tenant {
            Some(t) if caller.admin || t == caller.tenant => Some(t),
            Some(_) => {
                return Err(ApiError::forbidden(
                    "only admins may read other tenants' results",
                ))
            }
            None if caller.admin => None,
            None => Some(caller.tenant.clone()),
        };
        Ok(q)
    }
}
