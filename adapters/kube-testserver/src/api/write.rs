//! The writing verbs: create, delete (with finalizers and propagation) and
//! JSON merge patch (with resourceVersion preconditions), and the `Invalid`
//! and `Conflict` answers they give.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{not_found, ray_resource, status, unknown_plural};
use crate::store::{Propagation, Resource, WriteError};
use crate::Shared;

pub(super) async fn create_core(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    create(&shared, Resource::Secret, &ns, &body)
}

pub(super) async fn delete_core(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    delete(
        &shared,
        Resource::Secret,
        &ns,
        &name,
        Propagation::Background,
    )
}

/// 400 for unknown fields (strict field validation), else 422 with causes.
pub fn invalid(resource: Resource, name: &str, causes: &[crate::schema::Cause]) -> Response {
    let (_, kind) = resource.type_meta();
    let list: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    if causes.iter().any(|c| c.unknown_field) {
        let unknown: Vec<String> = causes
            .iter()
            .filter(|c| c.unknown_field)
            .map(|c| format!("unknown field \"{}\"", c.field))
            .collect();
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("strict decoding error: {}", unknown.join(", ")),
            None,
        );
    }
    let details = json!({
        "name": name, "group": "ray.io", "kind": kind,
        "causes": causes.iter().map(|c| json!({
            "reason": "FieldValueInvalid", "message": c.message, "field": c.field,
        })).collect::<Vec<_>>(),
    });
    status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{kind}.ray.io \"{name}\" is invalid: {}", list.join(", ")),
        Some(details),
    )
}

fn create(shared: &Arc<Shared>, resource: Resource, ns: &str, body: &[u8]) -> Response {
    let mut object: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the body is not a JSON object".into(),
                None,
            )
        }
    };
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(body_ns) = object["metadata"]["namespace"].as_str() {
        if body_ns != ns {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request".into(),
                None,
            );
        }
    }
    // Clients may not set status on create; the API server drops it.
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    let causes = shared.validate(resource, &object);
    if !causes.is_empty() {
        return invalid(resource, &name, &causes);
    }
    match shared.store.create(resource, ns, object) {
        Ok(created) => {
            if resource == Resource::RayJob {
                crate::operator::spawn(shared.clone(), ns.to_string(), name);
            }
            (StatusCode::CREATED, Json(created)).into_response()
        }
        Err(_) => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified()),
            Some(json!({"name": name, "kind": resource.qualified()})),
        ),
    }
}

pub(super) async fn create_ray(
    State(shared): State<Arc<Shared>>,
    Path((ns, plural)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match ray_resource(&plural) {
        Some(resource) => create(&shared, resource, &ns, &body),
        None => unknown_plural(&plural),
    }
}

fn delete(
    shared: &Shared,
    resource: Resource,
    ns: &str,
    name: &str,
    propagation: Propagation,
) -> Response {
    match shared.store.delete(resource, ns, name, propagation) {
        Ok(object) => Json(object).into_response(),
        Err(WriteError::NotFound | WriteError::AlreadyExists) => not_found(resource, name),
    }
}

/// The `propagationPolicy` of a DELETE's `DeleteOptions` body (none: background).
fn propagation(body: &[u8]) -> Result<Propagation, String> {
    let options: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|_| "the DeleteOptions body is not JSON".to_string())?
    };
    match options["propagationPolicy"].as_str() {
        None | Some("Background") => Ok(Propagation::Background),
        Some("Foreground") => Ok(Propagation::Foreground),
        Some(other) => Err(format!(
            "the test server does not do propagationPolicy {other:?}"
        )),
    }
}

pub(super) async fn delete_ray(
    State(shared): State<Arc<Shared>>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(resource) = ray_resource(&plural) else {
        return unknown_plural(&plural);
    };
    match propagation(&body) {
        Ok(propagation) => delete(&shared, resource, &ns, &name, propagation),
        Err(message) => status(StatusCode::BAD_REQUEST, "BadRequest", message, None),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

pub(super) async fn patch_ray(
    State(shared): State<Arc<Shared>>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(resource) = ray_resource(&plural) else {
        return unknown_plural(&plural);
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/merge-patch+json" {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the test server takes merge patches only, not {content_type:?}"),
            None,
        );
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the patch is not JSON".into(),
            None,
        );
    };
    let Some(mut object) = shared.store.get(resource, &ns, &name) else {
        return not_found(resource, &name);
    };
    if let Some(refused) = precondition_failed(resource, &name, &object, &patch) {
        return refused;
    }
    merge(&mut object, &patch);
    let causes = shared.validate(resource, &object);
    if !causes.is_empty() {
        return invalid(resource, &name, &causes);
    }
    // Status is a subresource: a patch of the object changes its spec and
    // the metadata clients own, nothing else.
    let spec = object["spec"].clone();
    let metadata = object["metadata"].clone();
    match shared.store.update(resource, &ns, &name, |stored| {
        stored["spec"] = spec;
        for field in ["labels", "annotations", "finalizers"] {
            match metadata.get(field) {
                Some(value) => stored["metadata"][field] = value.clone(),
                None => {
                    if let Some(map) = stored["metadata"].as_object_mut() {
                        map.remove(field);
                    }
                }
            }
        }
    }) {
        Ok(updated) => Json(updated).into_response(),
        Err(_) => not_found(resource, &name),
    }
}

/// Refuses a patch as the API server does: `409 Conflict` when it names a
/// `metadata.resourceVersion` that is no longer current (optimistic
/// concurrency), `422 Invalid` when it adds a finalizer to an object being
/// deleted.
fn precondition_failed(
    resource: Resource,
    name: &str,
    current: &Value,
    patch: &Value,
) -> Option<Response> {
    let wanted = &patch["metadata"]["resourceVersion"];
    if !wanted.is_null() && *wanted != current["metadata"]["resourceVersion"] {
        return Some(status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                resource.qualified()
            ),
            Some(json!({"name": name, "kind": resource.qualified()})),
        ));
    }
    let being_deleted = !current["metadata"]["deletionTimestamp"].is_null();
    let had = current["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let adds = patch["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|wanted| wanted.iter().any(|f| !had.contains(f)));
    if being_deleted && adds {
        return Some(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers \
                 can be added if the object is being deleted",
                resource.qualified()
            ),
            None,
        ));
    }
    None
}
