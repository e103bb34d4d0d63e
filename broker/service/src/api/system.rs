//! Health, readiness, metrics, the cluster list and the OpenAPI document.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ApiError, ErrorBody};
use super::{events, groups, jobs, logs, placement, sweeps, AppState};
use crate::auth::Caller;
use crate::config::ClusterKind;

/// The API description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "raybroker", description = "Multi-cluster federation broker for Ray jobs."),
    paths(
        jobs::submit_job,
        jobs::list_jobs,
        jobs::get_job,
        jobs::cancel_job,
        events::job_events,
        logs::job_logs,
        super::trace::job_trace,
        super::results::job_results,
        super::results::list_results,
        super::otlp::receive_traces,
        super::otlp::receive_metrics,
        placement::job_placement,
        placement::dry_run,
        groups::submit_group,
        groups::list_groups,
        groups::get_group,
        groups::cancel_group,
        groups::group_results,
        sweeps::submit_sweep,
        sweeps::list_sweeps,
        sweeps::get_sweep,
        sweeps::cancel_sweep,
        sweeps::sweep_csv,
        sweeps::sweep_plot,
        list_clusters,
        super::cluster_objects::list_created,
        super::cluster_objects::delete_created,
        healthz,
        readyz,
        metrics,
        openapi_json,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Submit, follow and cancel jobs"),
        (name = "groups", description = "Many jobs as one group, in parallel or in series"),
        (name = "sweeps", description = "Hyperparameter sweeps: grid, random, TPE, ASHA early stopping"),
        (name = "system", description = "Clusters, health and metrics"),
        (name = "telemetry", description = "OTLP ingest from jobs and each job's trace"),
        (name = "results", description = "What jobs came to: per job, or grouped, as JSON or CSV"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant token; the config stores its SHA-256 (`raybroker hash-token`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The generated OpenAPI document.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// A configured cluster.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ClusterView {
    /// Its unique name.
    name: String,
    /// What runs it.
    kind: ClusterKind,
    /// Placement preference: lower tiers fill first.
    tier: u32,
    /// Cost of one GPU hour.
    cost_per_gpu_hour: f64,
    /// Its labels.
    labels: BTreeMap<String, String>,
    /// True while it takes new jobs (its capacity snapshot is fresh and
    /// it is not down).
    healthy: bool,
    /// Its circuit breaker: `healthy`, `degraded` (recent calls failed) or
    /// `down` (written off: out of placement until a probe succeeds).
    health: crate::clusters::HealthState,
    /// Failed calls in a row.
    consecutive_failures: u32,
    /// While down: when the next probe goes, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_probe_ms: Option<u64>,
    /// Why it is unhealthy, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// The backend's version, once seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    /// GPUs by model: total and free now, from the last snapshot.
    gpus: BTreeMap<String, GpuCount>,
}

/// GPUs of one model on a cluster.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GpuCount {
    /// How many the cluster has.
    total: f64,
    /// How many are free now.
    free: f64,
}

/// The configured clusters.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ClusterList {
    /// Every configured cluster, in config order.
    clusters: Vec<ClusterView>,
}

/// Health and readiness answers.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Status {
    /// `ok` or `ready`.
    status: &'static str,
}

/// List the configured clusters.
#[utoipa::path(
    get, path = "/v1/clusters", tag = "system",
    responses(
        (status = 200, description = "The clusters", body = ClusterList),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    )
)]
pub(crate) async fn list_clusters(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<ClusterList> {
    let statuses = state.clusters.statuses(super::now_ms());
    let clusters = state
        .config
        .clusters
        .iter()
        .map(|c| {
            let status = statuses.iter().find(|s| s.name == c.name);
            ClusterView {
                name: c.name.clone(),
                kind: c.kind,
                tier: c.tier,
                cost_per_gpu_hour: c.cost_per_gpu_hour,
                labels: c.labels.clone(),
                healthy: status.is_some_and(|s| s.healthy),
                health: status.map_or_else(Default::default, |s| s.health.breaker.state),
                consecutive_failures: status.map_or(0, |s| s.health.breaker.consecutive_failures),
                next_probe_ms: status.and_then(|s| s.health.breaker.next_probe_ms),
                last_error: status.and_then(|s| s.health.last_error.clone()),
                version: status.and_then(|s| s.version.clone()),
                gpus: status
                    .map(|s| {
                        s.gpus
                            .iter()
                            .map(|(model, (total, free))| {
                                (
                                    model.clone(),
                                    GpuCount {
                                        total: *total,
                                        free: *free,
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    Json(ClusterList { clusters })
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, description = "Alive", body = Status))
)]
pub(crate) async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: Redis answers.
#[utoipa::path(
    get, path = "/readyz", tag = "system", security(()),
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    match state.queue.ping().await {
        Ok(()) => Ok(Json(Status { status: "ready" })),
        Err(err) => {
            tracing::warn!(error = %err, "not ready: redis does not answer");
            Err(ApiError::unavailable())
        }
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI document.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> Response {
    match openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot render the OpenAPI document");
            ApiError::internal().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_with_bearer_auth() {
        let json: serde_json::Value = serde_json::from_str(&openapi().to_json().unwrap()).unwrap();
        for path in [
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/cancel",
            "/v1/jobs/{id}/events",
            "/v1/clusters",
            "/healthz",
            "/readyz",
        ] {
            assert!(json["paths"][path].is_object(), "{path} missing");
        }
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(json["components"]["schemas"]["JobSpec"].is_object());
        assert!(json["components"]["schemas"]["Job"].is_object());
        // Health checks need no token.
        assert_eq!(
            json["paths"]["/healthz"]["get"]["security"],
            serde_json::json!([{}])
        );
    }
}
