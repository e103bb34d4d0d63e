//! `/v1/sweeps`: hyperparameter sweeps across clusters. Submit, list,
//! status with leaderboard and best trial, cancel, CSV export and an SVG
//! plot, each scoped to the caller's tenant. The group controller loop
//! creates and follows the trials.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raybroker_core::group::{GroupId, GroupState};
use raybroker_core::JobId;
use raybroker_queue::{GroupKind, GroupRecord};
use raybroker_tuning::{best, leaderboard, plot_svg, to_csv, Mode, TrialRow};
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::grouping::{
    check_members, create_record, created, document_error, list_page, read_document, record_at,
    request_cancel,
};
use super::AppState;
use crate::auth::Caller;
use crate::loops::groups::sweep_spec::{Objective, SweepSpec, Trial};

/// One trial as shown.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct TrialView {
    /// Its job, once submitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<JobId>,
    /// The trial as recorded.
    #[serde(flatten)]
    trial: Trial,
}

/// A sweep with its leaderboard.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SweepView {
    /// Its id.
    id: GroupId,
    /// Its name.
    name: String,
    /// Running or how it ended.
    state: GroupState,
    /// Why (when ended: trials by outcome and the best one).
    reason: String,
    /// A cancel is being carried to the trials.
    cancel_requested: bool,
    /// `grid`, `random` or `tpe`.
    algorithm: String,
    /// The metric optimised and its direction.
    objective: Objective,
    /// Trials the sweep runs in all (parameter sets times repeats).
    total_trials: usize,
    /// Most trials unfinished at once.
    max_concurrent_trials: u32,
    /// Trials by state (`not_started` for those not created yet).
    counts: BTreeMap<String, usize>,
    /// The best trial with an objective so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    best: Option<TrialView>,
    /// Every trial, best first (absent in listings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leaderboard: Vec<TrialView>,
    /// Creation time, ms since the Unix epoch.
    created_at_ms: u64,
    /// Last change, ms since the Unix epoch.
    updated_at_ms: u64,
}

/// A list of sweeps, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SweepList {
    /// The sweeps (without leaderboards).
    sweeps: Vec<SweepView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Submit a sweep.
#[utoipa::path(
    post, path = "/v1/sweeps", tag = "sweeps",
    request_body(description = "The sweep, as JSON or YAML", content(
        (SweepSpec = "application/json"), (SweepSpec = "application/yaml"))),
    responses(
        (status = 201, description = "Sweep created; the group controller creates its trials", body = SweepView),
        (status = 400, description = "Unreadable document", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 415, description = "Not JSON or YAML", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named (e.g. `search_space.lr`)", body = ErrorBody),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn submit_sweep(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, yaml) = read_document(&state, &headers, body)?;
    let spec: SweepSpec = raybroker_core::group::parse_document(&body, yaml)
        .map_err(|e| document_error("sweep", e))?;
    let sample = spec
        .check()
        .map_err(|e| ApiError::invalid_document("sweep", e))?;
    check_members(&state, &[sample], "sweep", "template")?;
    let record = create_record(&state, &caller, GroupKind::Sweep, &spec.name, &spec, 0).await?;
    tracing::info!(tenant = %caller.tenant, sweep = %record.id, trials = spec.total_trials(), "sweep submitted");
    let view = sweep_view(&record, true)?;
    Ok(created(view, &format!("/v1/sweeps/{}", record.id)))
}

/// Get a sweep: state, counts, the best trial and the leaderboard.
#[utoipa::path(
    get, path = "/v1/sweeps/{id}", tag = "sweeps",
    params(("id" = String, Path, description = "The sweep id")),
    responses(
        (status = 200, description = "The sweep", body = SweepView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such sweep for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn get_sweep(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SweepView>, ApiError> {
    let record = record_at(&state, &caller, id, GroupKind::Sweep).await?;
    sweep_view(&record, true).map(Json)
}

/// List the caller's sweeps, newest first, a page at a time.
#[utoipa::path(
    get, path = "/v1/sweeps", tag = "sweeps",
    params(
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of sweeps, without leaderboards", body = SweepList),
        (status = 400, description = "Bad query parameter, named", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    )
)]
pub(crate) async fn list_sweeps(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<SweepList>, ApiError> {
    let page = list_page(&state, &caller, GroupKind::Sweep, query).await?;
    let sweeps = page
        .groups
        .iter()
        .map(|r| sweep_view(r, false))
        .collect::<Result<_, _>>()?;
    Ok(Json(SweepList {
        sweeps,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Cancel a sweep: no new trials; running ones are cancelled on their clusters.
#[utoipa::path(
    post, path = "/v1/sweeps/{id}/cancel", tag = "sweeps",
    params(("id" = String, Path, description = "The sweep id")),
    responses(
        (status = 200, description = "The sweep after the cancel was recorded", body = SweepView),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such sweep for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn cancel_sweep(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SweepView>, ApiError> {
    let record = record_at(&state, &caller, id, GroupKind::Sweep).await?;
    let record = request_cancel(&state, &caller, &record).await?;
    sweep_view(&record, true).map(Json)
}

/// The leaderboard as CSV: `trial,state,cluster,objective` and one column
/// per parameter, best first.
#[utoipa::path(
    get, path = "/v1/sweeps/{id}/leaderboard.csv", tag = "sweeps",
    params(("id" = String, Path, description = "The sweep id")),
    responses(
        (status = 200, description = "RFC 4180 CSV", content_type = "text/csv", body = String),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such sweep for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn sweep_csv(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let csv = sweep_results(&state, &caller, id, |rows, mode| {
        to_csv(&leaderboard(rows, mode))
    })
    .await?;
    Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

/// The objective of every trial and the best so far, in trial order, as SVG.
#[utoipa::path(
    get, path = "/v1/sweeps/{id}/plot.svg", tag = "sweeps",
    params(("id" = String, Path, description = "The sweep id")),
    responses(
        (status = 200, description = "An SVG image", content_type = "image/svg+xml", body = String),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such sweep for this tenant", body = ErrorBody),
    )
)]
pub(crate) async fn sweep_plot(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let svg = sweep_results(&state, &caller, id, plot_svg).await?;
    Ok(([(CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// The sweep at the request's `{id}`, its trials rendered by `render`.
async fn sweep_results(
    state: &AppState,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
    render: impl FnOnce(&[TrialRow], Mode) -> String,
) -> Result<String, ApiError> {
    let record = record_at(state, caller, id, GroupKind::Sweep).await?;
    let (spec, trials) = decode(&record)?;
    Ok(render(&rows(&trials), spec.objective.mode))
}

/// The stored spec and trials (with their jobs), in trial order.
fn decode(record: &GroupRecord) -> Result<(SweepSpec, Vec<TrialView>), ApiError> {
    let corrupt = |what: String| {
        tracing::error!(sweep = %record.id, error = %what, "stored sweep is unreadable");
        ApiError::internal()
    };
    let spec: SweepSpec =
        serde_json::from_str(&record.spec).map_err(|e| corrupt(format!("spec: {e}")))?;
    let mut trials = Vec::with_capacity(record.trials.len());
    for (index, text) in &record.trials {
        let trial: Trial =
            serde_json::from_str(text).map_err(|e| corrupt(format!("trial {index}: {e}")))?;
        trials.push(TrialView {
            job_id: record.members.get(index).cloned(),
            trial,
        });
    }
    Ok((spec, trials))
}

/// The trials as the results functions take them.
fn rows(trials: &[TrialView]) -> Vec<TrialRow> {
    trials
        .iter()
        .map(|t| TrialRow {
            trial: u32::try_from(t.trial.index).unwrap_or(u32::MAX),
            params: t.trial.params.clone(),
            objective: t.trial.objective,
            state: t.trial.state.as_str().to_string(),
            cluster: t.trial.cluster.clone(),
        })
        .collect()
}

fn sweep_view(record: &GroupRecord, with_trials: bool) -> Result<SweepView, ApiError> {
    let (spec, trials) = decode(record)?;
    let mode: Mode = spec.objective.mode;
    let total = spec.total_trials();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &trials {
        *counts
            .entry(t.trial.state.as_str().to_string())
            .or_default() += 1;
    }
    let not_started = total.saturating_sub(trials.len());
    if not_started > 0 && record.state == GroupState::Running {
        counts.insert("not_started".into(), not_started);
    }
    let by_index = |row: &TrialRow| trials.iter().find(|t| t.trial.index == row.trial as usize);
    let rows = rows(&trials);
    let best = best(&rows, mode).and_then(|row| by_index(&row).cloned());
    let leaderboard = if with_trials {
        leaderboard(&rows, mode)
            .iter()
            .filter_map(|row| by_index(row).cloned())
            .collect()
    } else {
        Vec::new()
    };
    let algorithm = serde_json::to_value(spec.algorithm)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(SweepView {
        id: record.id.clone(),
        name: record.name.clone(),
        state: record.state,
        reason: record.reason.clone(),
        cancel_requested: record.cancel_requested,
        algorithm,
        objective: spec.objective,
        total_trials: total,
        max_concurrent_trials: spec.max_concurrent_trials,
        counts,
        best,
        leaderboard,
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
    })
}
