//! The HTTP side: the paths, verbs, status codes and `Status` bodies of the
//! Kubernetes API that the KubeRay adapter uses; the writing verbs are in
//! [`write`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::store::{field_matches, Resource, Selector};

mod write;

use crate::Shared;
use write::{create_core, create_ray, delete_core, delete_ray, patch_ray};

/// A `Status` failure response.
pub fn status(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    (code, Json(body)).into_response()
}

fn not_found(resource: Resource, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", resource.qualified()),
        Some(json!({"name": name, "kind": resource.qualified()})),
    )
}

/// The routes, behind a bearer-token check when the server has a token.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/pods", get(list_all_pods))
        .route("/api/v1/namespaces/{ns}/pods", get(list_core))
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_core))
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route(
            "/api/v1/namespaces/{ns}/secrets",
            get(list_core).post(create_core),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets/{name}",
            get(get_core).delete(delete_core),
        )
        .route(
            "/apis/ray.io/v1/namespaces/{ns}/{plural}",
            get(list_ray).post(create_ray),
        )
        .route(
            "/apis/ray.io/v1/namespaces/{ns}/{plural}/{name}",
            get(get_ray).delete(delete_ray).patch(patch_ray),
        )
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            authenticate,
        ))
        .with_state(shared)
}

async fn authenticate(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &shared.token {
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(token.as_str()) {
            return status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized".into(),
                None,
            );
        }
    }
    shared
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    next.run(request).await
}

fn list_response(shared: &Shared, resource: Resource, items: Vec<Value>) -> Response {
    let (api_version, kind) = resource.type_meta();
    Json(json!({
        "apiVersion": api_version,
        "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": shared.store.version().to_string()},
        "items": items,
    }))
    .into_response()
}

fn filtered(
    shared: &Shared,
    resource: Resource,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Response {
    let selector = match Selector::parse(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(selector) => selector,
        Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", message, None),
    };
    let fields = query.get("fieldSelector").map_or("", String::as_str);
    let mut items = Vec::new();
    for object in shared.store.list(resource, namespace) {
        match field_matches(fields, &object) {
            Ok(true) if selector.matches(&object["metadata"]["labels"]) => items.push(object),
            Ok(_) => {}
            Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", message, None),
        }
    }
    list_response(shared, resource, items)
}

fn core_resource(uri: &str) -> Resource {
    if uri.contains("/secrets") {
        Resource::Secret
    } else {
        Resource::Pod
    }
}

async fn list_nodes(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    filtered(&shared, Resource::Node, None, &q)
}

async fn list_all_pods(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    filtered(&shared, Resource::Pod, None, &q)
}

async fn list_core(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    filtered(&shared, core_resource(uri.path()), Some(&ns), &q)
}

async fn get_core(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let resource = core_resource(uri.path());
    match shared.store.get(resource, &ns, &name) {
        Some(object) => Json(object).into_response(),
        None => not_found(resource, &name),
    }
}

async fn pod_log(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let Some(pod) = shared.store.get(Resource::Pod, &ns, &name) else {
        return not_found(Resource::Pod, &name);
    };
    match crate::operator::pod_log(&shared, &pod).await {
        Ok(text) => text.into_response(),
        Err(message) => status(StatusCode::BAD_REQUEST, "BadRequest", message, None),
    }
}

fn ray_resource(plural: &str) -> Option<Resource> {
    Resource::from_plural(plural).filter(|r| matches!(r, Resource::RayJob | Resource::RayCluster))
}

fn unknown_plural(plural: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("the server could not find the requested resource ({plural}.ray.io)"),
        None,
    )
}

async fn list_ray(
    State(shared): State<Arc<Shared>>,
    Path((ns, plural)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match ray_resource(&plural) {
        Some(resource) => filtered(&shared, resource, Some(&ns), &q),
        None => unknown_plural(&plural),
    }
}

async fn get_ray(
    State(shared): State<Arc<Shared>>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Response {
    let Some(resource) = ray_resource(&plural) else {
        return unknown_plural(&plural);
    };
    match shared.store.get(resource, &ns, &name) {
        Some(object) => Json(object).into_response(),
        None => not_found(resource, &name),
    }
}
