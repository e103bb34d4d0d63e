//! Sends every finished job's spans (the broker's lifecycle and adapter
//! calls, the cluster's times) to the OTLP/HTTP endpoint named by the
//! standard variables, once per job: it follows the event stream from a
//! cursor kept in Redis, so a restart neither skips nor (beyond the last
//! batch) repeats a job. Spans have deterministic ids, so a repeat is
//! harmless to a collector that deduplicates, and visible as one trace
//! anyway.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use raybroker_core::JobEvent;
use tokio::sync::watch;

use super::{otlp, Telemetry};

/// Where and how to send spans, from `OTEL_EXPORTER_OTLP_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpTarget {
    /// The full URL spans are POSTed to.
    pub traces_url: String,
    /// Extra headers (e.g. the collector's auth).
    pub headers: Vec<(String, String)>,
    /// OTLP/JSON instead of protobuf.
    pub json: bool,
    /// gzip the bodies (`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`).
    pub gzip: bool,
}

impl OtlpTarget {
    /// The target the standard variables describe, `None` when no endpoint
    /// is set (or only gRPC is asked for, which the broker does not speak).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<OtlpTarget> {
        let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        if protocol == "grpc" {
            tracing::warn!("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the broker exports over http/protobuf or http/json only; not exporting");
            return None;
        }
        let traces_url = match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => format!(
                "{}/v1/traces",
                env("OTEL_EXPORTER_OTLP_ENDPOINT")?.trim_end_matches('/')
            ),
        };
        let headers = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| parse_headers(&h))
            .unwrap_or_default();
        let compression = env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
            .or_else(|| env("OTEL_EXPORTER_OTLP_COMPRESSION"))
            .unwrap_or_default();
        let gzip = match compression.trim() {
            "gzip" => true,
            "" | "none" => false,
            other => {
                tracing::warn!(compression = other, "OTEL_EXPORTER_OTLP_COMPRESSION: the broker speaks gzip or none; exporting uncompressed");
                false
            }
        };
        Some(OtlpTarget {
            traces_url,
            headers,
            json: protocol == "http/json",
            gzip,
        })
    }

    /// The body of an export and its Content-Type and Content-Encoding
    /// headers, as this target wants them.
    pub fn encode(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> (&'static str, Option<&'static str>, Vec<u8>) {
        let (content_type, body) = if self.json {
            let body = serde_json::to_vec(request).unwrap_or_default();
            ("application/json", body)
        } else {
            ("application/x-protobuf", request.encode_to_vec())
        };
        if !self.gzip {
            return (content_type, None, body);
        }
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        // Writing to memory cannot fail.
        match encoder.write_all(&body).and_then(|()| encoder.finish()) {
            Ok(zipped) => (content_type, Some("gzip"), zipped),
            Err(_) => (content_type, None, body),
        }
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (the OTel spec's form).
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_string(), percent_decode(v.trim())))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts the exporter when the standard variables name an endpoint.
pub fn spawn(
    telemetry: Arc<Telemetry>,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let target = OtlpTarget::from_env(&|name| std::env::var(name).ok())?;
    tracing::info!(url = %target.traces_url, "exporting finished jobs' spans over OTLP");
    Some(tokio::spawn(tracing::Instrument::instrument(
        run(telemetry, target, shutdown),
        tracing::info_span!("loop", name = "span-export"),
    )))
}

/// Follows the event stream until `shutdown`, exporting each job that
/// reaches a final state.
pub async fn run(
    telemetry: Arc<Telemetry>,
    target: OtlpTarget,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let queue = telemetry.queue().clone();
    let mut cursor: Option<String> = None;
    loop {
        let step = async {
            let from = match &cursor {
                Some(c) => c.clone(),
                None => match queue.telemetry_export_cursor().await? {
                    Some(c) => c,
                    None => queue.last_event_cursor().await?,
                },
            };
            let events = queue
                .events_after(&from, Duration::from_secs(2), 200)
                .await?;
            for event in events.iter().filter(|e| e.transition.to.is_terminal()) {
                export_job(&telemetry, &http, &target, event).await;
            }
            let next = events.last().map_or(from, |e| e.cursor.clone());
            queue.set_telemetry_export_cursor(&next).await?;
            Ok::<_, raybroker_queue::QueueError>(next)
        };
        let result = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            result = step => result,
        };
        match result {
            Ok(next) => cursor = Some(next),
            Err(err) => {
                tracing::warn!(error = %err, "span export: cannot read events; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn export_job(
    telemetry: &Telemetry,
    http: &reqwest::Client,
    target: &OtlpTarget,
    event: &JobEvent,
) {
    let queue = telemetry.queue();
    let job = match queue.get(&event.job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(job = %event.job_id, error = %err, "span export: cannot read the job");
            return;
        }
    };
    let spans = match telemetry.trace(&job, event.transition.at_ms).await {
        Ok(spans) => spans,
        Err(err) => {
            tracing::warn!(job = %job.id, error = %err, "span export: cannot read the job's spans");
            return;
        }
    };
    // The job's own spans went to the collector when they arrived (if one
    // is configured); export the broker's and the cluster's.
    let ours: Vec<_> = spans
        .into_iter()
        .filter(|s| s.origin != super::span::SpanOrigin::Job)
        .collect();
    let request = otlp::export_request(&ours);
    let (content_type, encoding, body) = target.encode(&request);
    let mut post = http
        .post(&target.traces_url)
        .header(reqwest::header::CONTENT_TYPE, content_type);
    if let Some(encoding) = encoding {
        post = post.header(reqwest::header::CONTENT_ENCODING, encoding);
    }
    for (k, v) in &target.headers {
        post = post.header(k, v);
    }
    let post = post.body(body);
    match post.send().await.and_then(|r| r.error_for_status()) {
        Ok(_) => tracing::debug!(job = %job.id, spans = ours.len(), "exported the job's spans"),
        Err(err) => tracing::warn!(job = %job.id, error = %err, "span export failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_standard_variables() {
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318/".to_string()),
            "OTEL_EXPORTER_OTLP_HEADERS" => {
                Some("authorization=Bearer%20abc, x-team=rl".to_string())
            }
            _ => None,
        };
        let target = OtlpTarget::from_env(&env).unwrap();
        assert_eq!(target.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(
            target.headers,
            vec![
                ("authorization".to_string(), "Bearer abc".to_string()),
                ("x-team".to_string(), "rl".to_string())
            ]
        );
        assert!(!target.json);
        assert_eq!(OtlpTarget::from_env(&|_| None), None);
        let grpc = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4317".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            _ => None,
        };
        assert_eq!(OtlpTarget::from_env(&grpc), None);
    }

    #[test]
    fn gzip_is_asked_for_with_the_standard_variable_and_round_trips() {
        use std::io::Read;

        let env = |traces: Option<&'static str>, all: Option<&'static str>| {
            move |k: &str| match k {
                "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4318".to_string()),
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION" => traces.map(String::from),
                "OTEL_EXPORTER_OTLP_COMPRESSION" => all.map(String::from),
                _ => None,
            }
        };
        let gzip = |t, a| OtlpTarget::from_env(&env(t, a)).unwrap().gzip;
        assert!(gzip(None, Some("gzip")));
        assert!(gzip(Some("gzip"), Some("none")), "the traces variable wins");
        assert!(!gzip(Some("none"), Some("gzip")));
        assert!(!gzip(None, None));
        assert!(!gzip(None, Some("zstd")), "unknown: uncompressed");

        let span = crate::telemetry::span::SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            parent_span_id: None,
            name: "submit".into(),
            origin: crate::telemetry::span::SpanOrigin::Broker,
            service: None,
            start_unix_nano: 1,
            end_unix_nano: 2,
            open: false,
            attributes: Default::default(),
            status: None,
        };
        let request = otlp::export_request(&[span]);
        let mut target = OtlpTarget::from_env(&env(None, Some("gzip"))).unwrap();
        let (content_type, encoding, body) = target.encode(&request);
        assert_eq!(
            (content_type, encoding),
            ("application/x-protobuf", Some("gzip"))
        );
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(
            ExportTraceServiceRequest::decode(&plain[..]).unwrap(),
            request
        );
        target.gzip = false;
        target.json = true;
        let (content_type, encoding, body) = target.encode(&request);
        assert_eq!((content_type, encoding), ("application/json", None));
        let back: ExportTraceServiceRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, request);
    }
}
