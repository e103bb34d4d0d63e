//! What the group and sweep routes share: the stored record (creating it,
//! finding it for a caller, cancelling it), listing pages, reading and
//! checking the submitted document, and the 201 answer.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raybroker_core::group::GroupId;
use raybroker_core::{validate, FieldError, JobSpec};
use raybroker_queue::{GroupCancelEffect, GroupCursor, GroupKind, GroupPage, GroupRecord};
use serde::Serialize;

use super::error::ApiError;
use super::jobs::{body_format, page_limit, BodyFormat};
use super::{now_ms, AppState};
use crate::auth::Caller;
use crate::loops::groups::member_job;

/// Groups (or sweeps) on a listing page unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 50;
/// Most groups (or sweeps) on one listing page.
const MAX_PAGE: usize = 200;

/// One page of the caller's groups or sweeps, as `limit` and `cursor` ask
/// (any other parameter is a 400 naming it).
pub(super) async fn list_page(
    state: &AppState,
    caller: &Caller,
    kind: GroupKind,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<GroupPage, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::malformed(format!("bad query string: {e}"), None))?;
    let (mut cursor, mut limit) = (None::<GroupCursor>, DEFAULT_PAGE);
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        if seen.contains(&name.as_str()) {
            return Err(ApiError::bad_parameter(name, "given more than once"));
        }
        seen.push(name);
        match name.as_str() {
            "limit" => limit = page_limit(value, MAX_PAGE)?,
            "cursor" => {
                let parsed = value
                    .parse()
                    .map_err(|why: String| ApiError::bad_parameter("cursor", why))?;
                cursor = Some(parsed);
            }
            other => {
                return Err(ApiError::bad_parameter(
                    other,
                    "unknown parameter; use limit or cursor",
                ))
            }
        }
    }
    let page = state
        .queue
        .list_groups(&caller.tenant, kind, cursor.as_ref(), limit)
        .await?;
    Ok(page)
}

/// Stores a new group or sweep of the caller's (its spec as JSON, `members`
/// known up front or 0) and returns the record as stored.
pub(super) async fn create_record(
    state: &AppState,
    caller: &Caller,
    kind: GroupKind,
    name: &str,
    spec: &impl Serialize,
    members: usize,
) -> Result<GroupRecord, ApiError> {
    let spec_json = serde_json::to_string(spec).map_err(|e| {
        tracing::error!(kind = kind.as_str(), error = %e, "spec does not serialise");
        ApiError::internal()
    })?;
    let id = state
        .queue
        .create_group(&caller.tenant, kind, name, &spec_json, members, now_ms())
        .await?;
    visible_group(state, caller, id.as_str(), kind).await
}

/// Records a group's (or sweep's) cancel and cancels its released,
/// unfinished members now (the controller repeats this until none is left);
/// returns the record as it is afterwards.
pub(super) async fn request_cancel(
    state: &AppState,
    caller: &Caller,
    record: &GroupRecord,
) -> Result<GroupRecord, ApiError> {
    let reason = format!("cancelled by tenant {} through the API", caller.tenant);
    let effect = state
        .queue
        .cancel_group(&record.id, &reason, now_ms())
        .await?;
    tracing::info!(tenant = %caller.tenant, group = %record.id, effect = ?effect, "group cancel");
    if effect == GroupCancelEffect::Requested {
        let member_reason = format!("group {} cancelled: {reason}", record.id);
        for job in record.members.values() {
            match state.queue.cancel(job, &member_reason, now_ms()).await {
                Ok(_) | Err(raybroker_queue::QueueError::NotFound(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    visible_group(state, caller, record.id.as_str(), record.kind).await
}

/// The group or sweep at the request's `{id}` (see [`visible_group`]).
pub(super) async fn record_at(
    state: &AppState,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
    kind: GroupKind,
) -> Result<GroupRecord, ApiError> {
    let id = id.map_err(|_| ApiError::group_not_found(kind.as_str()))?;
    visible_group(state, caller, &id, kind).await
}

/// The group or sweep named by `raw_id`, if the caller may see it; a
/// malformed id, a missing one, one of the other kind and another tenant's
/// all answer the same 404.
pub(super) async fn visible_group(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    kind: GroupKind,
) -> Result<GroupRecord, ApiError> {
    let missing = || ApiError::group_not_found(kind.as_str());
    let id: GroupId = raw_id.parse().map_err(|_| missing())?;
    match state.queue.group(&id).await? {
        Some(record) if record.kind == kind && caller.can_see(&record.tenant) => Ok(record),
        _ => Err(missing()),
    }
}

/// Reads the body and says whether it is YAML: 413 over the limit, 415 for
/// a media type other than JSON or YAML.
pub(super) fn read_document(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Bytes, bool), ApiError> {
    let body = body.map_err(|r| ApiError::unreadable_body(r, state.config.api.max_body_bytes.0))?;
    let content_type = headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
    match body_format(content_type) {
        Some(BodyFormat::Json) => Ok((body, false)),
        Some(BodyFormat::Yaml) => Ok((body, true)),
        None => Err(ApiError::unsupported_media_type(content_type)),
    }
}

/// A document error: 400 when it cannot be read at all, 422 naming the field.
pub(super) fn document_error(what: &str, err: FieldError) -> ApiError {
    let syntax = err.message.starts_with("malformed")
        || err.message.contains("while scanning")
        || err.message.contains("while parsing")
        || err.field == "?";
    if syntax {
        return ApiError::malformed(err.message, None);
    }
    let mut err = err;
    for marker in ["unknown field `", "missing field `"] {
        let Some(start) = err.message.find(marker).map(|at| at + marker.len()) else {
            continue;
        };
        if let Some(len) = err.message[start..].find('`') {
            let name = err.message[start..start + len].to_string();
            if !err.field.ends_with(&name) {
                err.field = if err.field.is_empty() {
                    name
                } else {
                    format!("{}.{name}", err.field)
                };
            }
        }
        break;
    }
    if err.field.is_empty() {
        ApiError::malformed(err.message, None)
    } else {
        ApiError::invalid_document(what, vec![err])
    }
}

/// Validates member jobs as they will be submitted (group labels added),
/// naming fields as `<at>[i].<field>`.
pub(super) fn check_members(
    state: &AppState,
    members: &[JobSpec],
    what: &str,
    at: &str,
) -> Result<(), ApiError> {
    let probe = GroupId::generate(now_ms());
    let mut errors = Vec::new();
    for (index, spec) in members.iter().enumerate() {
        let job = member_job(&probe, index, spec.clone());
        if let Err(fields) = validate(&job, &state.validation) {
            errors.extend(fields.into_iter().map(|f| {
                let prefix = if members.len() == 1 && at == "template" {
                    at.to_string()
                } else {
                    format!("{at}[{index}]")
                };
                FieldError::new(format!("{prefix}.{}", f.field), f.message)
            }));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_document(what, errors))
    }
}

/// 201 with a `Location`.
pub(super) fn created(body: impl Serialize, location: &str) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}
