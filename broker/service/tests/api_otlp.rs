//! OTLP/HTTP ingest (`POST /v1/traces`, `/v1/metrics`) as exporters send it:
//! plain or gzip-compressed, against a real Redis. The end-to-end telemetry
//! test covers jobs sending from real clusters; this covers the encodings.

mod support;

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use raybroker::config::TelemetrySettings;
use raybroker::telemetry::{ids, Telemetry};
use raybroker_core::JobId;
use raybroker_queue::testing::pool;
use raybroker_queue::{JobQueue, QueueConfig};
use reqwest::Method;
use serde_json::{json, Value};
use support::{Broker, ROBOTICS};

/// A job on `broker` and the token it would be handed for its telemetry
/// (the broker keeps the token secret in Redis; a second `Telemetry` on the
/// same prefix reads the same one).
async fn job_and_token(broker: &Broker) -> (String, String) {
    let id = broker
        .submit(
            ROBOTICS,
            json!({"name": "otlp", "entrypoint": "python train.py", "resources": {"cpus": 1}}),
        )
        .await;
    let queue = JobQueue::new(
        pool(&support::redis_url()),
        QueueConfig {
            key_prefix: broker.prefix.clone(),
            ..QueueConfig::default()
        },
    );
    let settings = TelemetrySettings {
        public_url: broker.base.clone(),
        secret: None,
        forward_to: None,
    };
    let job: JobId = id.parse().expect("a job id");
    let token = Telemetry::new(settings, queue)
        .job_token(&job)
        .await
        .expect("the job's token");
    (id, token)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// POSTs `body` to an OTLP path as the job; the status and the body's text.
async fn post(
    broker: &Broker,
    path: &str,
    (id, token): (&str, &str),
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = broker
        .request(Method::POST, path, None)
        .header("x-raybroker-job", id)
        .header("x-raybroker-token", token)
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// One span named `name` in the job's trace (span ids are kept per job:
/// each name gets its own).
fn spans_request(job: &str, name: &str) -> ExportTraceServiceRequest {
    let span_id = (name.len() as u64 + 1).to_be_bytes().to_vec();
    let job: JobId = job.parse().expect("a job id");
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: ids::trace_id(&job).to_vec(),
                    span_id,
                    name: name.into(),
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_001_000_000_000,
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn gauge_request(name: &str, value: f64, step: i64) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            value: Some(number_data_point::Value::AsDouble(value)),
                            time_unix_nano: 1_700_000_000_000_000_000,
                            attributes: vec![KeyValue {
                                key: "step".into(),
                                value: Some(AnyValue {
                                    value: Some(any_value::Value::IntValue(step)),
                                }),
                                ..KeyValue::default()
                            }],
                            ..NumberDataPoint::default()
                        }],
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn span_names(trace: &Value) -> Vec<String> {
    trace["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .filter(|s| s["origin"] == "job")
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn gzip_and_plain_otlp_bodies_are_both_kept() {
    let broker = Broker::start().await;
    let (id, token) = job_and_token(&broker).await;
    let job = (id.as_str(), token.as_str());
    let protobuf = "application/x-protobuf";

    let plain = spans_request(&id, "plain-span").encode_to_vec();
    let (status, body) = post(&broker, "/v1/traces", job, protobuf, None, plain).await;
    assert_eq!(status, 200, "{body}");
    let zipped = gzip(&spans_request(&id, "gzip-span").encode_to_vec());
    let (status, body) = post(&broker, "/v1/traces", job, protobuf, Some("gzip"), zipped).await;
    assert_eq!(status, 200, "{body}");
    let (status, trace) = broker.get(&format!("/v1/jobs/{id}/trace"), ROBOTICS).await;
    assert_eq!(status, 200, "{trace}");
    let names = span_names(&trace);
    assert!(names.contains(&"plain-span".to_string()), "{trace:#}");
    assert!(names.contains(&"gzip-span".to_string()), "{trace:#}");

    let zipped = gzip(&gauge_request("gz_accuracy", 0.75, 4).encode_to_vec());
    let (status, body) = post(&broker, "/v1/metrics", job, protobuf, Some("gzip"), zipped).await;
    assert_eq!(status, 200, "{body}");
    // OTLP JSON, gzip-compressed, as well.
    let json_body = serde_json::to_vec(&gauge_request("gz_loss", 0.25, 5)).expect("OTLP JSON");
    let (status, body) = post(
        &broker,
        "/v1/metrics",
        job,
        "application/json",
        Some("gzip"),
        gzip(&json_body),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{}");
    let (status, results) = broker
        .get(&format!("/v1/jobs/{id}/results"), ROBOTICS)
        .await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results["last"]["gz_accuracy"]["value"], 0.75, "{results:#}");
    assert_eq!(results["last"]["gz_accuracy"]["step"], 4, "{results:#}");
    assert_eq!(results["last"]["gz_loss"]["value"], 0.25, "{results:#}");
    broker.stop().await;
}

#[tokio::test]
async fn bad_compressed_bodies_get_clear_errors_and_keep_nothing() {
    // The test broker's api.max_body_bytes is 4KiB.
    let broker = Broker::start().await;
    let (id, token) = job_and_token(&broker).await;
    let job = (id.as_str(), token.as_str());
    let protobuf = "application/x-protobuf";

    // Not gzip at all, though it says so.
    let (status, body) = post(
        &broker,
        "/v1/traces",
        job,
        protobuf,
        Some("gzip"),
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("cannot read the body"), "{body}");

    // A small body that inflates past the limit: 413, the limit named.
    let mut big = spans_request(&id, "too-big");
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(64 * 1024);
    let zipped = gzip(&big.encode_to_vec());
    assert!(
        zipped.len() < 4096,
        "the compressed body is under the limit"
    );
    let (status, body) = post(&broker, "/v1/traces", job, protobuf, Some("gzip"), zipped).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("4096"), "{body}");

    // Another compression: 415, saying what to send instead.
    let (status, body) = post(
        &broker,
        "/v1/metrics",
        job,
        protobuf,
        Some("br"),
        vec![1, 2, 3],
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("send gzip or uncompressed"), "{body}");

    // Without the job's token a gzip body is refused before it is read.
    let zipped = gzip(&spans_request(&id, "forged").encode_to_vec());
    let (status, body) = post(
        &broker,
        "/v1/traces",
        (id.as_str(), &"0".repeat(64)),
        protobuf,
        Some("gzip"),
        zipped,
    )
    .await;
    assert_eq!(status, 401, "{body}");

    let (status, trace) = broker.get(&format!("/v1/jobs/{id}/trace"), ROBOTICS).await;
    assert_eq!(status, 200, "{trace}");
    assert!(span_names(&trace).is_empty(), "{trace:#}");
    broker.stop().await;
}
