//! Traces, metrics and results of jobs (docs/observability.md).
//!
//! - [`ids`]: the job's trace id and the broker's span ids, derived from the
//!   job id, and the `TRACEPARENT` handed to each attempt;
//! - [`lifecycle`]: the broker's and the cluster's spans of a job, rebuilt
//!   from its durable history;
//! - [`otlp`]: OTLP messages to and from the broker's types;
//! - [`calls`]: the broker's adapter calls as spans of the jobs they concern;
//! - [`export`]: sends finished jobs' spans to the OTLP endpoint the
//!   standard `OTEL_EXPORTER_OTLP_*` variables name;
//! - [`results`]: per-job results and aggregated views;
//! - [`Telemetry`]: per-job ingest tokens, the environment every attempt
//!   gets, the whole trace of a job, forwarding to the collector.
//!
//! The loops call [`keep_log_reports`] and [`keep_remote_times`].

pub mod calls;
pub mod export;
pub mod ids;
pub mod lifecycle;
pub mod otlp;
pub mod results;
pub mod span;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use raybroker_adapter::RemoteStatus;
use raybroker_core::{Job, JobId};
use raybroker_queue::{JobQueue, QueueError, RemoteTimes, SpanSource};
use sha2::Sha256;
use tokio::sync::OnceCell;

use crate::config::TelemetrySettings;
use span::SpanRecord;

/// Header carrying the job id on OTLP requests from a job.
pub const JOB_HEADER: &str = "x-raybroker-job";
/// Header carrying the job's ingest token.
pub const TOKEN_HEADER: &str = "x-raybroker-token";

/// Per-job tokens, the attempt environment, whole traces.
pub struct Telemetry {
    settings: TelemetrySettings,
    queue: JobQueue,
    /// The token secret, from the config or (once read) from Redis.
    secret: OnceCell<String>,
    /// Sends to the collector.
    http: reqwest::Client,
}

impl Telemetry {
    /// Telemetry as configured, over `queue`. Touches nothing yet.
    pub fn new(settings: TelemetrySettings, queue: JobQueue) -> Telemetry {
        Telemetry {
            settings,
            queue,
            secret: OnceCell::new(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn secret(&self) -> Result<&str, QueueError> {
        let secret = self
            .secret
            .get_or_try_init(|| async {
                match &self.settings.secret {
                    Some(secret) => Ok(secret.clone()),
                    None => {
                        let candidate = hex::encode(rand::random::<[u8; 32]>());
                        self.queue.shared_telemetry_secret(&candidate).await
                    }
                }
            })
            .await?;
        Ok(secret.as_str())
    }

    /// The token that lets a job send telemetry for itself (and nothing else).
    pub async fn job_token(&self, job: &JobId) -> Result<String, QueueError> {
        let secret = self.secret().await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(job.as_str().as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// True when `token` is the job's token (compared in constant time).
    pub async fn verify(&self, job: &JobId, token: &str) -> Result<bool, QueueError> {
        let secret = self.secret().await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(job.as_str().as_bytes());
        let Ok(given) = hex::decode(token) else {
            return Ok(false);
        };
        Ok(mac.verify_slice(&given).is_ok())
    }

    /// What attempt `attempt` of `job` gets in its environment: the trace
    /// context and where and how to send OTLP data. Without a token (Redis
    /// unreachable) the job still gets its trace context.
    pub async fn attempt_env(&self, job: &Job, attempt: u32) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("TRACEPARENT".into(), ids::traceparent(&job.id, attempt));
        env.insert(
            "OTEL_RESOURCE_ATTRIBUTES".into(),
            format!(
                "raybroker.job_id={},{}={attempt},raybroker.tenant={}",
                job.id,
                otlp::ATTEMPT_ATTRIBUTE,
                job.tenant
            ),
        );
        env.insert("RAYBROKER_JOB_ID".into(), job.id.to_string());
        env.insert("RAYBROKER_ATTEMPT".into(), attempt.to_string());
        match self.job_token(&job.id).await {
            Ok(token) => {
                env.insert(
                    "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    self.settings.public_url.clone(),
                );
                env.insert("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into());
                env.insert(
                    "OTEL_EXPORTER_OTLP_HEADERS".into(),
                    format!("{JOB_HEADER}={},{TOKEN_HEADER}={token}", job.id),
                );
            }
            Err(err) => {
                tracing::warn!(job = %job.id, error = %err, "no telemetry token for the attempt: it can join its trace but not send data");
            }
        }
        env
    }

    /// Every span of the job's trace: the broker's lifecycle and the
    /// cluster's times, the broker's adapter calls, and what the job sent.
    pub async fn trace(&self, job: &Job, now_ms: u64) -> Result<Vec<SpanRecord>, QueueError> {
        let remote = self.queue.remote_times(&job.id).await?;
        let mut spans = lifecycle::job_spans(job, &remote, now_ms);
        for source in [SpanSource::Broker, SpanSource::Job] {
            for text in self.queue.spans(&job.id, source).await? {
                match serde_json::from_str::<SpanRecord>(&text) {
                    Ok(mut span) => {
                        if source == SpanSource::Broker {
                            span.attributes
                                .entry("tenant".into())
                                .or_insert_with(|| job.tenant.as_str().into());
                        }
                        spans.push(span)
                    }
                    Err(e) => {
                        tracing::warn!(job = %job.id, error = %e, "skipping a stored span that does not decode")
                    }
                }
            }
        }
        Ok(spans)
    }

    /// Sends a body received at `path` (`/v1/traces`, `/v1/metrics`) on to
    /// the organisation's collector, if one is configured; in the
    /// background, best effort (a collector outage never fails ingest).
    pub fn forward(&self, path: &'static str, content_type: String, body: axum::body::Bytes) {
        let Some(base) = &self.settings.forward_to else {
            return;
        };
        let url = format!("{base}{path}");
        let http = self.http.clone();
        tokio::spawn(async move {
            let sent = http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .and_then(|r| r.error_for_status());
            if let Err(e) = sent {
                tracing::warn!(url, error = %e, "forwarding telemetry to the collector failed");
            }
        });
    }

    /// The queue it keeps telemetry in.
    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }
}

/// Keeps what new log text of attempt `attempt` reports: metric lines and
/// artifact lines (see [`raybroker_core::metrics`]). Called by the reconcile
/// loop with every chunk it keeps, so it works for every adapter.
pub async fn keep_log_reports(
    queue: &JobQueue,
    job: &JobId,
    attempt: u32,
    text: &str,
    now_ms: u64,
) -> Result<(), QueueError> {
    let before = queue.swap_log_tail(job, attempt, "").await?;
    let joined = before + text;
    let (complete, rest) = match joined.rfind('\n') {
        Some(end) => joined.split_at(end + 1),
        None => ("", joined.as_str()),
    };
    if !rest.is_empty() {
        queue.swap_log_tail(job, attempt, rest).await?;
    }
    let (points, artifacts) = raybroker_core::metrics::parse_log_text(complete, attempt, now_ms);
    queue.record_metrics(job, &points).await?;
    queue.record_artifacts(job, &artifacts).await
}

/// Keeps the cluster's own start and end times of an attempt from a status.
pub async fn keep_remote_times(
    queue: &JobQueue,
    job: &JobId,
    attempt: u32,
    status: &RemoteStatus,
) -> Result<(), QueueError> {
    let times = RemoteTimes {
        started_at_ms: status.started_at_ms,
        ended_at_ms: status.ended_at_ms,
    };
    if times == RemoteTimes::default() {
        return Ok(());
    }
    queue.record_remote_times(job, attempt, times).await
}

#[cfg(test)]
mod tests {
    use raybroker_core::{JobSpec, TenantId};
    use raybroker_queue::testing;

    use super::*;

    #[tokio::test]
    async fn log_reports_split_across_chunks_are_read_whole() {
        let queue = testing::queue("log-reports");
        let spec = JobSpec {
            entrypoint: "python train.py".into(),
            ..JobSpec::default()
        };
        let tenant = TenantId::new("robotics").unwrap();
        let job = queue
            .submit(&tenant, spec, 1)
            .await
            .unwrap()
            .job()
            .id
            .clone();
        let chunks = [
            "epoch 1\nRAYBROKER_METRICS {\"step\": 1, \"rew",
            "ard\": 0.5}\nRAYBROKER_ARTIFACT s3://b/m",
            "odel.pt\nRAYBROKER_METRICS {\"step\": 2, \"reward\": 0.25}\n",
        ];
        for chunk in chunks {
            keep_log_reports(&queue, &job, 1, chunk, 10).await.unwrap();
        }
        let metrics = queue.job_metrics(&job).await.unwrap();
        let steps: Vec<Option<u64>> = metrics.series["reward"].iter().map(|p| p.step).collect();
        assert_eq!(steps, [Some(1), Some(2)]);
        assert_eq!(metrics.max["reward"].value, 0.5);
        assert_eq!(queue.artifacts(&job).await.unwrap(), ["s3://b/model.pt"]);
        // A new attempt does not continue the last attempt's partial line.
        keep_log_reports(&queue, &job, 1, "RAYBROKER_METRICS {\"reward\": 7,", 15)
            .await
            .unwrap();
        keep_log_reports(&queue, &job, 2, "\"step\": 9}\n", 20)
            .await
            .unwrap();
        assert_eq!(
            queue.job_metrics(&job).await.unwrap().series["reward"].len(),
            2
        );
    }

    #[tokio::test]
    async fn tokens_are_per_job_and_survive_a_new_broker() {
        let queue = testing::queue("tokens");
        let settings = TelemetrySettings {
            public_url: "http://broker:8080".into(),
            secret: None,
            forward_to: None,
        };
        let a: JobId = "01JDQ3ZK8V6X9T2M4N5P7R8S9A".parse().unwrap();
        let b: JobId = "01JDQ3ZK8V6X9T2M4N5P7R8S9B".parse().unwrap();
        let first = Telemetry::new(settings.clone(), queue.clone());
        let token = first.job_token(&a).await.unwrap();
        assert!(first.verify(&a, &token).await.unwrap());
        assert!(!first.verify(&b, &token).await.unwrap());
        assert!(!first.verify(&a, "zz").await.unwrap());
        // Another broker on the same Redis (or this one restarted) agrees.
        let second = Telemetry::new(settings, queue);
        assert!(second.verify(&a, &token).await.unwrap());
    }
}
