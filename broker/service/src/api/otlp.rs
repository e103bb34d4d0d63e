//! `POST /v1/traces` and `POST /v1/metrics`: OTLP over HTTP (protobuf or
//! JSON) from jobs on any cluster. Each request names its job and carries
//! that job's token (headers `x-raybroker-job`, `x-raybroker-token`, which
//! the broker hands every attempt in `OTEL_EXPORTER_OTLP_HEADERS`); what it
//! carries is kept with the job, within bounds, and forwarded to the
//! organisation's collector when one is configured. Bodies may come
//! gzip-compressed (`Content-Encoding: gzip`, what OTLP exporters send with
//! compression on); the size limit applies to the decompressed body.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use raybroker_core::{Job, JobId};
use raybroker_queue::SpanSource;
use tower_http::decompression::RequestDecompressionLayer;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::telemetry::{otlp, JOB_HEADER, TOKEN_HEADER};

/// The OTLP receivers. A gzip body is decompressed before the handler reads
/// it (so `api.max_body_bytes` bounds what it inflates to); any other
/// Content-Encoding reaches the handler as it came, which refuses it with a
/// message that says what to send.
pub(crate) fn routes() -> Router<AppState> {
    let gzip = || {
        RequestDecompressionLayer::new()
            .gzip(true)
            .pass_through_unaccepted(true)
    };
    Router::new()
        .route("/v1/traces", post(receive_traces).layer(gzip()))
        .route("/v1/metrics", post(receive_metrics).layer(gzip()))
}

/// How a body is encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// Receive spans for a job (OTLP/HTTP).
#[utoipa::path(
    post, path = "/v1/traces", tag = "telemetry",
    request_body(description = "An OTLP ExportTraceServiceRequest, plain or gzip-compressed (Content-Encoding: gzip)", content(
        (String = "application/x-protobuf"), (String = "application/json"))),
    params(
        ("x-raybroker-job" = String, Header, description = "The job the data belongs to"),
        ("x-raybroker-token" = String, Header, description = "That job's telemetry token"),
    ),
    responses(
        (status = 200, description = "Kept (an empty ExportTraceServiceResponse)"),
        (status = 400, description = "Not a readable OTLP message (or not valid gzip); the message says why", body = ErrorBody),
        (status = 401, description = "Missing or wrong job token", body = ErrorBody),
        (status = 413, description = "Over api.max_body_bytes once decompressed", body = ErrorBody),
        (status = 415, description = "Not protobuf or JSON, or compressed other than with gzip", body = ErrorBody),
    ),
    security(())
)]
pub(crate) async fn receive_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (job, encoding) = admit(&state, &headers).await?;
    let body = body.map_err(|r| ApiError::unreadable_body(r, state.config.api.max_body_bytes.0))?;
    let request: ExportTraceServiceRequest = decode(encoding, &body)?;
    let spans = otlp::spans_from_request(&request);
    otlp::check_spans(&spans).map_err(|m| ApiError::malformed(m, None))?;
    let encoded: Vec<String> = spans
        .iter()
        .filter_map(|s| serde_json::to_string(s).ok())
        .collect();
    state
        .queue
        .record_spans(&job.id, SpanSource::Job, &encoded)
        .await?;
    state
        .telemetry
        .forward("/v1/traces", content_type(&headers), body);
    Ok(answer(encoding))
}

/// Receive metrics for a job (OTLP/HTTP): gauges and sums are kept as the
/// job's metric points.
#[utoipa::path(
    post, path = "/v1/metrics", tag = "telemetry",
    request_body(description = "An OTLP ExportMetricsServiceRequest, plain or gzip-compressed (Content-Encoding: gzip)", content(
        (String = "application/x-protobuf"), (String = "application/json"))),
    params(
        ("x-raybroker-job" = String, Header, description = "The job the data belongs to"),
        ("x-raybroker-token" = String, Header, description = "That job's telemetry token"),
    ),
    responses(
        (status = 200, description = "Kept (an empty ExportMetricsServiceResponse)"),
        (status = 400, description = "Not a readable OTLP message (or not valid gzip); the message says why", body = ErrorBody),
        (status = 401, description = "Missing or wrong job token", body = ErrorBody),
        (status = 413, description = "Over api.max_body_bytes once decompressed", body = ErrorBody),
        (status = 415, description = "Not protobuf or JSON, or compressed other than with gzip", body = ErrorBody),
    ),
    security(())
)]
pub(crate) async fn receive_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (job, encoding) = admit(&state, &headers).await?;
    let body = body.map_err(|r| ApiError::unreadable_body(r, state.config.api.max_body_bytes.0))?;
    let request: ExportMetricsServiceRequest = decode(encoding, &body)?;
    let points = otlp::points_from_request(&request, job.attempt);
    state.queue.record_metrics(&job.id, &points).await?;
    state
        .telemetry
        .forward("/v1/metrics", content_type(&headers), body);
    Ok(answer(encoding))
}

/// Checks the job token and the body's encoding; the job on success.
async fn admit(state: &AppState, headers: &HeaderMap) -> Result<(Job, Encoding), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(job_id), Some(token)) = (header(JOB_HEADER), header(TOKEN_HEADER)) else {
        return Err(ApiError::unauthorized_because(format!(
            "send the job's {JOB_HEADER} and {TOKEN_HEADER} headers (the broker puts them in OTEL_EXPORTER_OTLP_HEADERS)"
        )));
    };
    let wrong = || {
        ApiError::unauthorized_because(format!("{TOKEN_HEADER} is not the token of job {job_id}"))
    };
    let id: JobId = job_id.parse().map_err(|_| wrong())?;
    if !state.telemetry.verify(&id, token).await? {
        return Err(wrong());
    }
    let job = state.queue.get(&id).await?.ok_or_else(wrong)?;
    if let Some(enc) = header(CONTENT_ENCODING.as_str()).filter(|e| *e != "identity") {
        return Err(ApiError::unsupported_because(format!(
            "Content-Encoding '{enc}' is not supported: send gzip or uncompressed OTLP (OTEL_EXPORTER_OTLP_COMPRESSION=gzip or none)"
        )));
    }
    let essence = header(CONTENT_TYPE.as_str())
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    let encoding = match essence.as_deref() {
        Some("application/x-protobuf") | Some("application/protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        other => {
            return Err(ApiError::unsupported_because(format!(
            "Content-Type '{}' is not supported: send application/x-protobuf or application/json",
            other.unwrap_or("(none)")
        )))
        }
    };
    Ok((job, encoding))
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, ApiError> {
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| {
            ApiError::malformed(
                format!("the body is not an OTLP protobuf message: {e}"),
                None,
            )
        }),
        Encoding::Json => {
            let mut de = serde_json::Deserializer::from_slice(body);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let at = e.path().to_string();
                ApiError::malformed(
                    format!(
                        "the body is not an OTLP JSON message: at '{at}': {}",
                        e.inner()
                    ),
                    None,
                )
            })
        }
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf")
        .to_string()
}

/// An empty export response (full success) in the request's encoding.
fn answer(encoding: Encoding) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response(),
        Encoding::Json => {
            (StatusCode::OK, [(CONTENT_TYPE, "application/json")], "{}").into_response()
        }
    }
}
