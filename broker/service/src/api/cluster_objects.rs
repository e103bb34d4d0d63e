//! Admin endpoints over everything the broker created on a cluster
//! (`raybroker clusters cleanup`): list it, then delete it. The broker holds
//! the clusters' credentials, so the CLI asks it rather than the cluster.
//! Only backends with the [`CreatedObjects`] capability (KubeRay) answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raybroker_adapter::{AdapterError, CreatedObject, CreatedObjects};
use raybroker_core::FieldError;
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::auth::Caller;

/// What the broker created on one cluster.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedList {
    /// The cluster.
    cluster: String,
    /// The objects (listed, or deleted by a DELETE), sorted by kind and name.
    #[schema(value_type = Vec<Object>)]
    objects: Vec<CreatedObject>,
}

fn adapter_failure(cluster: &str, error: &AdapterError) -> Response {
    let body = serde_json::json!({"error": {
        "code": "unavailable",
        "message": format!("cluster {cluster}: {error}"),
    }});
    (StatusCode::BAD_GATEWAY, Json(body)).into_response()
}

/// The cluster's capability, or the API error that says why there is none.
fn capability(
    state: &AppState,
    caller: &Caller,
    cluster: &str,
) -> Result<std::sync::Arc<dyn raybroker_adapter::ClusterAdapter>, ApiError> {
    if !caller.admin {
        return Err(ApiError::forbidden(
            "only admins may list or delete what the broker created on a cluster",
        ));
    }
    let adapter = state
        .clusters
        .adapter(cluster)
        .ok_or_else(|| ApiError::group_not_found("cluster"))?;
    if adapter.created_objects().is_none() {
        return Err(ApiError::invalid(vec![FieldError::new(
            "cluster",
            format!(
                "{cluster} is a {} cluster, whose jobs are its only footprint \
                 (the broker removes them itself); cleanup applies to kuberay clusters",
                adapter_kind(state, cluster)
            ),
        )]));
    }
    Ok(adapter)
}

fn adapter_kind(state: &AppState, cluster: &str) -> String {
    state
        .config
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .map(|c| format!("{:?}", c.kind).to_lowercase())
        .unwrap_or_default()
}

fn answer(cluster: String, objects: Result<Vec<CreatedObject>, AdapterError>) -> Response {
    match objects {
        Ok(objects) => Json(CreatedList { cluster, objects }).into_response(),
        Err(error) => adapter_failure(&cluster, &error),
    }
}

/// List everything this broker created on a cluster (the cleanup's dry run).
#[utoipa::path(
    get, path = "/v1/clusters/{name}/created", tag = "system",
    params(("name" = String, Path, description = "The cluster")),
    responses(
        (status = 200, description = "The objects", body = CreatedList),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 422, description = "The cluster's backend has nothing to clean up", body = ErrorBody),
        (status = 502, description = "The cluster failed the call", body = ErrorBody),
    )
)]
pub(crate) async fn list_created(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let adapter = capability(&state, &caller, &name)?;
    let objects: &dyn CreatedObjects = adapter.created_objects().ok_or_else(ApiError::internal)?;
    Ok(answer(name, objects.list_created().await))
}

/// Delete everything this broker created on a cluster; answers what it deleted.
#[utoipa::path(
    delete, path = "/v1/clusters/{name}/created", tag = "system",
    params(("name" = String, Path, description = "The cluster")),
    responses(
        (status = 200, description = "The deleted objects", body = CreatedList),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 422, description = "The cluster's backend has nothing to clean up", body = ErrorBody),
        (status = 502, description = "The cluster failed the call", body = ErrorBody),
    )
)]
pub(crate) async fn delete_created(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let adapter = capability(&state, &caller, &name)?;
    let objects: &dyn CreatedObjects = adapter.created_objects().ok_or_else(ApiError::internal)?;
    tracing::warn!(cluster = %name, tenant = %caller.tenant.as_str(), "deleting everything the broker created on the cluster");
    Ok(answer(name, objects.delete_created().await))
}
