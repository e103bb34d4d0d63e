//! The one error shape every API failure answers with:
//! `{"error": {"code": "...", "message": "...", "fields": [...]}}`.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raybroker_core::FieldError;
use raybroker_queue::QueueError;
use serde::Serialize;

use crate::auth::AuthError;

/// An API failure: the status, a stable machine-readable code, a message for
/// people and, for bad input, the offending fields.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// The HTTP status.
    status: StatusCode,
    /// Stable code clients may match on.
    code: &'static str,
    /// What went wrong, in words.
    message: String,
    /// The fields at fault (bad input only).
    fields: Vec<FieldError>,
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable code: `malformed`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `too_large`, `unsupported_media_type`, `invalid`,
    /// `unschedulable`,
    /// `conflict`, `unavailable` or `internal`.
    #[schema(example = "invalid")]
    code: String,
    /// What went wrong, in words.
    message: String,
    /// The offending fields, when the request body was at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// 400: the request could not be read; `field` names the culprit if known.
    pub(crate) fn malformed(message: impl Into<String>, field: Option<FieldError>) -> ApiError {
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, "malformed", message);
        err.fields.extend(field);
        err
    }

    /// 400 about one query parameter.
    pub(crate) fn bad_parameter(name: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::malformed(
            format!("bad query parameter '{name}': {message}"),
            Some(FieldError::new(name, message)),
        )
    }

    /// 401.
    pub(crate) fn unauthorized(err: AuthError) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
    }

    /// 401 saying which credential is missing or wrong (per-job telemetry tokens).
    pub(crate) fn unauthorized_because(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 415 saying what is accepted instead.
    pub(crate) fn unsupported_because(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 403.
    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404, for missing jobs and other tenants' jobs alike.
    pub(crate) fn job_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such job")
    }

    /// 422 for a group or sweep document: [`ApiError::invalid`] worded for
    /// `what` (`group`, `sweep`).
    pub(crate) fn invalid_document(what: &str, fields: Vec<FieldError>) -> ApiError {
        let mut err = ApiError::invalid(fields);
        err.message = err
            .message
            .replacen("invalid job", &format!("invalid {what}"), 1);
        err
    }

    /// 404 for a missing group or sweep and another tenant's alike;
    /// `what` is `group` or `sweep`.
    pub(crate) fn group_not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 404 for a path no route serves.
    pub(crate) fn no_route() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// 405.
    pub(crate) fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept that method",
        )
    }

    /// 413.
    pub(crate) fn too_large(limit: u64) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body is over the limit of {limit} bytes"),
        )
    }

    /// A body that could not be read whole: 413 over `limit` bytes (the
    /// decompressed size, for a compressed body), else 400 saying why.
    pub(crate) fn unreadable_body(rejection: BytesRejection, limit: u64) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed(format!("cannot read the body: {rejection}"), None)
        }
    }

    /// 415.
    pub(crate) fn unsupported_media_type(got: Option<&str>) -> ApiError {
        let got = got.map_or("no Content-Type".to_string(), |t| {
            format!("Content-Type '{t}'")
        });
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{got} is not supported: send application/json or application/yaml"),
        )
    }

    /// 422: the document was read but fields are wrong.
    pub(crate) fn invalid(fields: Vec<FieldError>) -> ApiError {
        let summary: Vec<String> = fields.iter().map(ToString::to_string).collect();
        let mut err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("invalid job: {}", summary.join("; ")),
        );
        err.fields = fields;
        err
    }

    /// 422: the job is valid but no configured cluster could ever run it;
    /// one entry per cluster says why.
    pub(crate) fn unschedulable(reasons: &[(String, String)]) -> ApiError {
        let fields: Vec<FieldError> = reasons
            .iter()
            .map(|(cluster, why)| FieldError::new("resources", format!("cluster {cluster}: {why}")))
            .collect();
        let summary: Vec<String> = reasons
            .iter()
            .map(|(c, why)| format!("{c}: {why}"))
            .collect();
        let mut err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unschedulable",
            format!("no cluster can run this job: {}", summary.join("; ")),
        );
        err.fields = fields;
        err
    }

    /// 503: the queue cannot be reached.
    pub(crate) fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the job queue is unavailable; retry later",
        )
    }

    /// 500; the detail goes to the log, not to the caller.
    pub(crate) fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the broker's log",
        )
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The fields at fault.
    #[cfg(test)]
    pub(crate) fn fields(&self) -> &[FieldError] {
        &self.fields
    }
}

/// True when the error means Redis cannot be reached (as opposed to Redis
/// refusing a command, which is a bug).
pub(crate) fn is_unavailable(err: &QueueError) -> bool {
    match err {
        QueueError::Pool(_) => true,
        QueueError::Redis(e) => {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_unrecoverable_error()
        }
        _ => false,
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> ApiError {
        match &err {
            QueueError::NotFound(_) => ApiError::job_not_found(),
            QueueError::Conflict { detail, .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", detail.clone())
            }
            _ if is_unavailable(&err) => {
                tracing::warn!(error = %err, "queue unavailable");
                ApiError::unavailable()
            }
            _ => {
                tracing::error!(error = %err, "queue error");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                fields: self.fields,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"raybroker\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_render_as_json_with_fields() {
        let err = ApiError::invalid(vec![FieldError::new("resources.gpus", "too many")]);
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let response = err.into_response();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "invalid");
        assert_eq!(body["error"]["fields"][0]["field"], "resources.gpus");
    }

    #[test]
    fn unauthorized_carries_a_challenge() {
        let response = ApiError::unauthorized(AuthError::Missing).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
