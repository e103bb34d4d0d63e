//! The REST API: routes, shared state, authentication and request metrics.
//!
//! Every `/v1` route except the OpenAPI document needs a bearer token and is
//! scoped to the token's tenant; a job of another tenant answers exactly like
//! a missing one. Handlers live in [`jobs`], [`events`] and [`system`];
//! [`rayjobs`] serves the Ray Jobs API compatible routes under `/api/`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use raybroker_core::ValidationContext;
use raybroker_queue::JobQueue;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::auth::{Authenticator, Caller};
use crate::clusters::ClusterRegistry;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::raystore::RayStore;

mod cluster_objects;
mod error;
mod events;
mod grouping;
mod groups;
mod hub;
mod jobs;
mod logs;
mod otlp;
mod placement;
mod rayjobs;
mod results;
mod sweeps;
mod system;
mod trace;

pub(crate) use error::ApiError;
pub(crate) use hub::EventHub;
pub(crate) use system::openapi;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Shared>,
}

/// The state behind [`AppState`].
pub(crate) struct Shared {
    /// The loaded configuration (clusters, limits).
    pub(crate) config: Config,
    /// The job queue on Redis.
    pub(crate) queue: JobQueue,
    /// Uploaded packages and the Ray view's state, for the Ray Jobs API.
    pub(crate) ray_store: RayStore,
    /// Token to tenant.
    pub(crate) auth: Authenticator,
    /// GPU catalog and cluster names that submissions are checked against.
    pub(crate) validation: ValidationContext,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The clusters and their latest snapshots (submit-time fit checks, the
    /// cluster list).
    pub(crate) clusters: Arc<ClusterRegistry>,
    /// Live job events for event streams.
    pub(crate) events: EventHub,
    /// Per-job telemetry tokens, traces, forwarding to the collector.
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
    /// Becomes `true` when the server starts shutting down; long-lived
    /// responses (event streams) end then, so the graceful shutdown completes.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// State for `config` over `queue`; `shutdown` turns `true` on shutdown.
    pub(crate) fn new(
        config: Config,
        queue: JobQueue,
        ray_store: RayStore,
        metrics: Arc<Metrics>,
        clusters: Arc<ClusterRegistry>,
        events: EventHub,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let auth = Authenticator::new(&config.tenants);
        let validation = config.validation_context();
        let telemetry = Arc::new(crate::telemetry::Telemetry::new(
            config.telemetry.clone(),
            queue.clone(),
        ));
        AppState {
            inner: Arc::new(Shared {
                config,
                queue,
                ray_store,
                auth,
                validation,
                metrics,
                clusters,
                events,
                telemetry,
                shutdown,
            }),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.inner
    }
}

/// The whole API.
pub(crate) fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.config.api.max_body_bytes.0).unwrap_or(usize::MAX);
    let ray_jobs = if state.config.ray_jobs_api.enabled {
        rayjobs::routes(&state.config.ray_jobs_api)
    } else {
        Router::new()
    };
    Router::new()
        .route("/v1/jobs", post(jobs::submit_job).get(jobs::list_jobs))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/jobs/{id}/events", get(events::job_events))
        .route("/v1/jobs/{id}/logs", get(logs::job_logs))
        .route("/v1/jobs/{id}/trace", get(trace::job_trace))
        .route("/v1/jobs/{id}/results", get(results::job_results))
        .route("/v1/results", get(results::list_results))
        .route("/v1/jobs/{id}/placement", get(placement::job_placement))
        .route("/v1/placement/dry-run", post(placement::dry_run))
        .route(
            "/v1/groups",
            post(groups::submit_group).get(groups::list_groups),
        )
        .route("/v1/groups/{id}", get(groups::get_group))
        .route("/v1/groups/{id}/cancel", post(groups::cancel_group))
        .route("/v1/groups/{id}/results", get(groups::group_results))
        .route(
            "/v1/sweeps",
            post(sweeps::submit_sweep).get(sweeps::list_sweeps),
        )
        .route("/v1/sweeps/{id}", get(sweeps::get_sweep))
        .route("/v1/sweeps/{id}/cancel", post(sweeps::cancel_sweep))
        .route("/v1/sweeps/{id}/leaderboard.csv", get(sweeps::sweep_csv))
        .route("/v1/sweeps/{id}/plot.svg", get(sweeps::sweep_plot))
        .route("/v1/clusters", get(system::list_clusters))
        .route(
            "/v1/clusters/{name}/created",
            get(cluster_objects::list_created).delete(cluster_objects::delete_created),
        )
        .route("/v1/openapi.json", get(system::openapi_json))
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .merge(otlp::routes())
        .merge(ray_jobs)
        .route_layer(middleware::from_fn_with_state(state.clone(), track_request))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            // Spans carry the method and path only: never headers (tokens)
            // nor the query string.
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        )
        .with_state(state)
}

/// Counts every routed request by its route template.
async fn track_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    state.metrics.observe_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn no_route(State(state): State<AppState>, request: Request) -> Response {
    state
        .metrics
        .observe_request("unmatched", request.method().as_str(), 404, Duration::ZERO);
    ApiError::no_route().into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Handlers that take a [`Caller`] need a valid bearer token; without one the
/// request is answered 401 before the handler runs (and before its body is read).
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        state.auth.authenticate(header).map_err(|err| {
            tracing::info!(reason = %err, "request refused: not authenticated");
            ApiError::unauthorized(err)
        })
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
