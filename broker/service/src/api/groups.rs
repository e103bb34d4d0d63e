//! `/v1/groups`: submit many jobs as one group, run in parallel (up to a
//! concurrency across all clusters) or in series; status, list, cancel and
//! results, each scoped to the caller's tenant. The group controller loop
//! (`loops/groups.rs`) releases the members.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use raybroker_core::group::{GroupId, GroupMode, GroupSpec, GroupState, OnFailure};
use raybroker_core::{Job, JobId, JobSpec, JobState};
use raybroker_queue::{GroupKind, GroupRecord};
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::grouping::{
    check_members, create_record, created, document_error, list_page, read_document, record_at,
    request_cancel,
};
use super::AppState;
use crate::auth::Caller;

/// One member of a group.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MemberView {
    /// Its place in the group (0-based).
    index: usize,
    /// Its job, once released.
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<JobId>,
    /// Its name.
    name: String,
    /// Its job's state; absent while not released.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<JobState>,
    /// Why its job is in that state.
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    /// Where it runs or ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    /// The entrypoint's exit code, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// The last value of each metric the job reported (results only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metrics: BTreeMap<String, f64>,
}

/// A group with its members.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GroupView {
    /// Its id.
    id: GroupId,
    /// Its name.
    name: String,
    /// `parallel` or `series`.
    mode: GroupMode,
    /// Parallel: most members unfinished at once (absent: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<u32>,
    /// Series: what a failed member does to the rest.
    on_failure: OnFailure,
    /// Running or how it ended.
    state: GroupState,
    /// Why.
    reason: String,
    /// A cancel is being carried to the members.
    cancel_requested: bool,
    /// Members by job state; `not_started` for those not released.
    counts: BTreeMap<String, usize>,
    /// Creation time, ms since the Unix epoch.
    created_at_ms: u64,
    /// Last change, ms since the Unix epoch.
    updated_at_ms: u64,
    /// Every member, in order (absent in listings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<MemberView>,
}

/// A page of groups, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GroupList {
    /// The groups (without their members).
    groups: Vec<GroupView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Submit a group of jobs.
#[utoipa::path(
    post, path = "/v1/groups", tag = "groups",
    request_body(description = "The group, as JSON or YAML", content(
        (GroupSpec = "application/json"), (GroupSpec = "application/yaml"))),
    responses(
        (status = 201, description = "Group created; its members are released by the group controller", body = GroupView),
        (status = 400, description = "Unreadable document", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 415, description = "Not JSON or YAML", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named (e.g. `jobs[2].resources.gpus`)", body = ErrorBody),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn submit_group(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, yaml) = read_document(&state, &headers, body)?;
    let spec = GroupSpec::parse(&body, yaml).map_err(|e| document_error("group", e))?;
    let members = spec
        .members()
        .map_err(|e| ApiError::invalid_document("group", e))?;
    check_members(&state, &members, "group", "jobs")?;
    let record = create_record(
        &state,
        &caller,
        GroupKind::Group,
        &spec.name,
        &spec,
        members.len(),
    )
    .await?;
    tracing::info!(tenant = %caller.tenant, group = %record.id, members = members.len(), "group submitted");
    let view = group_view(&state, &record, true, false).await?;
    Ok(created(view, &format!("/v1/groups/{}", record.id)))
}

/// Get a group: state, counts by state, every member.
#[utoipa::path(
    get, path = "/v1/groups/{id}", tag = "groups",
    params(("id" = String, Path, description = "The group id")),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such group for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<GroupView>, ApiError> {
    let record = record_at(&state, &caller, id, GroupKind::Group).await?;
    group_view(&state, &record, true, false).await.map(Json)
}

/// A group's results: every member's state, exit code and last metric values.
#[utoipa::path(
    get, path = "/v1/groups/{id}/results", tag = "groups",
    params(("id" = String, Path, description = "The group id")),
    responses(
        (status = 200, description = "The group with each member's last metric values", body = GroupView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such group for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn group_results(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<GroupView>, ApiError> {
    let record = record_at(&state, &caller, id, GroupKind::Group).await?;
    group_view(&state, &record, true, true).await.map(Json)
}

/// List the caller's groups, newest first, a page at a time.
#[utoipa::path(
    get, path = "/v1/groups", tag = "groups",
    params(
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of groups, without members", body = GroupList),
        (status = 400, description = "Bad query parameter, named", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    )
)]
pub(crate) async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<GroupList>, ApiError> {
    let page = list_page(&state, &caller, GroupKind::Group, query).await?;
    let mut groups = Vec::with_capacity(page.groups.len());
    for record in &page.groups {
        groups.push(group_view(&state, record, false, false).await?);
    }
    Ok(Json(GroupList {
        groups,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Cancel a group: members not started never start; running ones are
/// cancelled on their clusters.
#[utoipa::path(
    post, path = "/v1/groups/{id}/cancel", tag = "groups",
    params(("id" = String, Path, description = "The group id")),
    responses(
        (status = 200, description = "The group after the cancel was recorded", body = GroupView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such group for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn cancel_group(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<GroupView>, ApiError> {
    let record = record_at(&state, &caller, id, GroupKind::Group).await?;
    let record = request_cancel(&state, &caller, &record).await?;
    group_view(&state, &record, true, false).await.map(Json)
}

/// The group as shown: counts always, members when asked, their last
/// metric values for results.
async fn group_view(
    state: &AppState,
    record: &GroupRecord,
    with_members: bool,
    with_metrics: bool,
) -> Result<GroupView, ApiError> {
    let spec: GroupSpec = serde_json::from_str(&record.spec).map_err(|e| {
        tracing::error!(group = %record.id, error = %e, "stored group spec is unreadable");
        ApiError::internal()
    })?;
    let names: Vec<String> = spec
        .members()
        .map(|m| m.iter().map(JobSpec::display_name).collect())
        .unwrap_or_default();
    // Every released member's job in one pipelined round trip.
    let released: Vec<(usize, JobId)> = (0..record.count)
        .filter_map(|index| Some((index, record.members.get(&index)?.clone())))
        .collect();
    let ids: Vec<JobId> = released.iter().map(|(_, id)| id.clone()).collect();
    let mut jobs: BTreeMap<usize, Job> = BTreeMap::new();
    for ((index, _), job) in released.iter().zip(state.queue.get_many(&ids).await?) {
        if let Some(job) = job {
            jobs.insert(*index, job);
        }
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut members = Vec::new();
    for index in 0..record.count {
        let job: Option<Job> = jobs.remove(&index);
        let key = job
            .as_ref()
            .map_or("not_started", |j| j.state.as_str())
            .to_string();
        *counts.entry(key).or_default() += 1;
        if !with_members {
            continue;
        }
        let metrics = match (&job, with_metrics) {
            (Some(job), true) => state
                .queue
                .job_metrics(&job.id)
                .await?
                .last
                .into_iter()
                .map(|(name, point)| (name, point.value))
                .collect(),
            _ => BTreeMap::new(),
        };
        members.push(MemberView {
            index,
            job_id: job.as_ref().map(|j| j.id.clone()),
            name: names.get(index).cloned().unwrap_or_default(),
            state: job.as_ref().map(|j| j.state),
            reason: job.as_ref().map(|j| j.reason.clone()).unwrap_or_default(),
            cluster: job.as_ref().and_then(|j| j.cluster.clone()),
            exit_code: job.as_ref().and_then(|j| j.exit_code),
            metrics,
        });
    }
    Ok(GroupView {
        id: record.id.clone(),
        name: record.name.clone(),
        mode: spec.mode,
        max_concurrency: spec.max_concurrency,
        on_failure: spec.on_failure,
        state: record.state,
        reason: record.reason.clone(),
        cancel_requested: record.cancel_requested,
        counts,
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
        members,
    })
}
