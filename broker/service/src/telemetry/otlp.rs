//! OTLP messages to and from the broker's own types: spans and metric points
//! a job sent, and the broker's spans of a job for export.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, NumberDataPoint};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use raybroker_core::MetricPoint;
use serde_json::{json, Value};

use super::span::{SpanOrigin, SpanRecord};

/// The resource attribute a job may set to say which attempt it is (the
/// broker sets it through `OTEL_RESOURCE_ATTRIBUTES`).
pub const ATTEMPT_ATTRIBUTE: &str = "raybroker.attempt";

/// The spans of an export request, as the broker keeps them.
pub fn spans_from_request(request: &ExportTraceServiceRequest) -> Vec<SpanRecord> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let service = resource_attr(resource_spans.resource.as_ref(), "service.name")
            .and_then(|v| v.as_str().map(str::to_string));
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                spans.push(SpanRecord {
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex::encode(&span.parent_span_id)),
                    name: span.name.clone(),
                    origin: SpanOrigin::Job,
                    service: service.clone(),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano.max(span.start_time_unix_nano),
                    open: false,
                    attributes: attributes(&span.attributes),
                    status: span
                        .status
                        .as_ref()
                        .filter(|s| s.code == status::StatusCode::Error as i32)
                        .map(|s| format!("error: {}", s.message)),
                });
            }
        }
    }
    spans
}

/// Why a span of a request cannot be kept.
pub fn check_spans(spans: &[SpanRecord]) -> Result<(), String> {
    for (i, span) in spans.iter().enumerate() {
        if span.trace_id.len() != 32 {
            return Err(format!(
                "resourceSpans: span {i} ('{}'): traceId must be 16 bytes",
                span.name
            ));
        }
        if span.span_id.len() != 16 {
            return Err(format!(
                "resourceSpans: span {i} ('{}'): spanId must be 8 bytes",
                span.name
            ));
        }
    }
    Ok(())
}

/// The gauge and sum points of an export request as metric points (other
/// kinds, such as histograms, are not kept). A point's `step` attribute (an
/// integer) becomes its step; its attempt is the resource's
/// [`ATTEMPT_ATTRIBUTE`], else `current_attempt`.
pub fn points_from_request(
    request: &ExportMetricsServiceRequest,
    current_attempt: u32,
) -> Vec<MetricPoint> {
    let mut points = Vec::new();
    for resource_metrics in &request.resource_metrics {
        let attempt = resource_attr(resource_metrics.resource.as_ref(), ATTEMPT_ATTRIBUTE)
            .and_then(|v| match v {
                Value::String(s) => s.parse().ok(),
                other => other.as_u64().and_then(|n| u32::try_from(n).ok()),
            })
            .unwrap_or(current_attempt);
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                let data_points: &[NumberDataPoint] = match &metric.data {
                    Some(metric::Data::Gauge(g)) => &g.data_points,
                    Some(metric::Data::Sum(s)) => &s.data_points,
                    _ => &[],
                };
                for dp in data_points {
                    let value = match dp.value {
                        Some(number_data_point::Value::AsDouble(v)) => v,
                        Some(number_data_point::Value::AsInt(v)) => v as f64,
                        None => continue,
                    };
                    let step = attributes(&dp.attributes)
                        .get("step")
                        .and_then(|v| match v {
                            Value::String(s) => s.parse().ok(),
                            other => other.as_u64(),
                        });
                    points.push(MetricPoint {
                        name: metric.name.clone(),
                        value,
                        step,
                        at_ms: dp.time_unix_nano / 1_000_000,
                        attempt,
                    });
                }
            }
        }
    }
    points
}

/// An export request carrying `spans` (the broker's), as service `raybroker`.
pub fn export_request(spans: &[SpanRecord]) -> ExportTraceServiceRequest {
    let spans = spans
        .iter()
        .map(|s| Span {
            trace_id: hex::decode(&s.trace_id).unwrap_or_default(),
            span_id: hex::decode(&s.span_id).unwrap_or_default(),
            parent_span_id: s
                .parent_span_id
                .as_ref()
                .and_then(|p| hex::decode(p).ok())
                .unwrap_or_default(),
            name: s.name.clone(),
            kind: 1, // internal
            start_time_unix_nano: s.start_unix_nano,
            end_time_unix_nano: s.end_unix_nano,
            attributes: s.attributes.iter().map(|(k, v)| key_value(k, v)).collect(),
            status: s.status.as_ref().map(|message| Status {
                message: message.clone(),
                code: status::StatusCode::Error as i32,
            }),
            ..Span::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![key_value("service.name", &json!("raybroker"))],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn key_value(key: &str, value: &Value) -> KeyValue {
    let value = match value {
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) if n.is_i64() => any_value::Value::IntValue(n.as_i64().unwrap_or(0)),
        Value::Number(n) => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        other => any_value::Value::StringValue(other.to_string()),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn resource_attr(resource: Option<&Resource>, key: &str) -> Option<Value> {
    attributes(&resource?.attributes).remove(key)
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| {
            let value = kv
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .map_or(Value::Null, any_to_json);
            (kv.key.clone(), value)
        })
        .collect()
}

fn any_to_json(value: &any_value::Value) -> Value {
    match value {
        any_value::Value::StringValue(s) => json!(s),
        any_value::Value::BoolValue(b) => json!(b),
        any_value::Value::IntValue(i) => json!(i),
        any_value::Value::DoubleValue(d) => json!(d),
        any_value::Value::BytesValue(b) => json!(hex::encode(b)),
        any_value::Value::ArrayValue(a) => Value::Array(
            a.values
                .iter()
                .filter_map(|v| v.value.as_ref().map(any_to_json))
                .collect(),
        ),
        any_value::Value::KvlistValue(kvs) => {
            Value::Object(attributes(&kvs.values).into_iter().collect())
        }
        // An index into a profile's string table: meaningless outside it.
        any_value::Value::StringValueStrindex(i) => json!(format!("strindex:{i}")),
    }
}
