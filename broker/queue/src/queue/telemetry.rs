//! What jobs report about themselves, kept per job with bounds: metric points
//! (last, min, max and a bounded series per metric), artifact URIs, spans the
//! job sent over OTLP, the broker's adapter-call spans, and the cluster's own
//! start and end times of each attempt.

use std::collections::{BTreeMap, HashMap};

use raybroker_core::{JobId, JobMetrics, MetricPoint};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{JobQueue, QueueError};

/// How much telemetry each job keeps (stated in `docs/observability.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryLimits {
    /// Newest points kept per metric series (min, max and last cover every
    /// point ever recorded).
    pub series_points: u64,
    /// Distinct metric names per job; points of further names are dropped.
    pub metric_names: u64,
    /// Spans the job sent (OTLP) kept per job, newest first to survive.
    pub job_spans: u64,
    /// Bytes of those spans (JSON) kept per job.
    pub job_span_bytes: u64,
    /// Adapter-call spans the broker keeps per job.
    pub broker_spans: u64,
    /// Bytes of those spans kept per job.
    pub broker_span_bytes: u64,
    /// Artifact URIs kept per job.
    pub artifacts: u64,
}

impl Default for TelemetryLimits {
    fn default() -> Self {
        TelemetryLimits {
            series_points: 1000,
            metric_names: 64,
            job_spans: 2000,
            job_span_bytes: 2 << 20,
            broker_spans: 500,
            broker_span_bytes: 256 << 10,
            artifacts: 100,
        }
    }
}

/// Whose spans a list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanSource {
    /// Sent by the job (or anything in its cluster) over OTLP.
    Job,
    /// The broker's own adapter calls for the job.
    Broker,
}

impl SpanSource {
    fn as_str(self) -> &'static str {
        match self {
            SpanSource::Job => "job",
            SpanSource::Broker => "broker",
        }
    }
}

/// The cluster's own account of when an attempt ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteTimes {
    /// When the cluster started it, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it ended there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
}

/// How much a job's telemetry lost to the bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryDrops {
    /// Metric points of names past the per-job name limit.
    pub metric_points: u64,
    /// Job spans pushed out by the count or byte bound.
    pub job_spans: u64,
    /// Broker spans pushed out.
    pub broker_spans: u64,
    /// Artifact URIs past the limit.
    pub artifacts: u64,
}

impl JobQueue {
    /// Keeps `points` for the job (non-finite values and invalid names are
    /// skipped); returns how many were kept. Unknown job: `NotFound`.
    pub async fn record_metrics(
        &self,
        job: &JobId,
        points: &[MetricPoint],
    ) -> Result<(), QueueError> {
        let limits = &self.config.telemetry;
        let mut invocation = self.scripts.record_metrics.prepare_invoke();
        invocation
            .key(self.keys.telemetry(job))
            .key(self.keys.job(job))
            .arg(self.keys.metric_series_base(job))
            .arg(limits.series_points)
            .arg(limits.metric_names);
        let mut any = false;
        for point in points {
            if !point.value.is_finite() || !raybroker_core::metrics::valid_metric_name(&point.name)
            {
                continue;
            }
            let json = serde_json::to_string(point).map_err(|e| corrupt(job, e))?;
            invocation
                .arg(&point.name)
                .arg(point.value.to_string())
                .arg(json)
                .arg(point.at_ms);
            any = true;
        }
        if !any {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let kept: i64 = invocation.invoke_async(&mut conn).await?;
        if kept < 0 {
            return Err(QueueError::NotFound(job.clone()));
        }
        Ok(())
    }

    /// Everything kept about the job's metrics (empty when it reported none).
    pub async fn job_metrics(&self, job: &JobId) -> Result<JobMetrics, QueueError> {
        let summary = self.telemetry_summary(job).await?;
        let mut metrics = JobMetrics::default();
        for (field, value) in &summary {
            let (map, name) = if let Some(name) = field.strip_prefix("last:") {
                (&mut metrics.last, name)
            } else if let Some(name) = field.strip_prefix("min:") {
                (&mut metrics.min, name)
            } else if let Some(name) = field.strip_prefix("max:") {
                (&mut metrics.max, name)
            } else {
                continue;
            };
            map.insert(name.to_string(), decode_point(job, value)?);
        }
        if metrics.last.is_empty() {
            return Ok(metrics);
        }
        let base = self.keys.metric_series_base(job);
        let mut pipe = redis::pipe();
        for name in metrics.last.keys() {
            pipe.cmd("LRANGE")
                .arg(format!("{base}{name}"))
                .arg(0)
                .arg(-1);
        }
        let mut conn = self.conn().await?;
        let lists: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        for (name, list) in metrics.last.keys().zip(lists) {
            let points = list
                .iter()
                .map(|json| decode_point(job, json))
                .collect::<Result<Vec<_>, _>>()?;
            metrics.series.insert(name.clone(), points);
        }
        Ok(metrics)
    }

    /// One metric's kept points (oldest first) for each of `jobs`, in one
    /// round trip; empty for a job without that metric.
    pub async fn metric_series_of(
        &self,
        jobs: &[JobId],
        name: &str,
    ) -> Result<Vec<Vec<MetricPoint>>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new()); // an empty pipeline is an error in Redis
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.cmd("LRANGE")
                .arg(format!("{}{name}", self.keys.metric_series_base(job)))
                .arg(0)
                .arg(-1);
        }
        let mut conn = self.conn().await?;
        let lists: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        jobs.iter()
            .zip(lists)
            .map(|(job, list)| list.iter().map(|json| decode_point(job, json)).collect())
            .collect()
    }

    /// Keeps artifact URIs the job reported (each once, bounded).
    pub async fn record_artifacts(&self, job: &JobId, uris: &[String]) -> Result<(), QueueError> {
        if uris.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.record_artifacts.prepare_invoke();
        invocation
            .key(self.keys.artifacts(job))
            .key(self.keys.telemetry(job))
            .key(self.keys.job(job))
            .arg(self.config.telemetry.artifacts);
        for uri in uris {
            invocation.arg(uri);
        }
        let mut conn = self.conn().await?;
        let kept: i64 = invocation.invoke_async(&mut conn).await?;
        if kept < 0 {
            return Err(QueueError::NotFound(job.clone()));
        }
        Ok(())
    }

    /// The artifact URIs the job reported, in report order.
    pub async fn artifacts(&self, job: &JobId) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn().await?;
        Ok(conn.lrange(self.keys.artifacts(job), 0, -1).await?)
    }

    /// Keeps encoded spans (opaque text, JSON by convention) of the job from
    /// `source`, bounded by count and bytes; the oldest go first.
    pub async fn record_spans(
        &self,
        job: &JobId,
        source: SpanSource,
        spans: &[String],
    ) -> Result<(), QueueError> {
        if spans.is_empty() {
            return Ok(());
        }
        let limits = &self.config.telemetry;
        let (list, count, bytes) = match source {
            SpanSource::Job => (
                self.keys.job_spans(job),
                limits.job_spans,
                limits.job_span_bytes,
            ),
            SpanSource::Broker => (
                self.keys.broker_spans(job),
                limits.broker_spans,
                limits.broker_span_bytes,
            ),
        };
        let mut invocation = self.scripts.record_spans.prepare_invoke();
        invocation
            .key(list)
            .key(self.keys.telemetry(job))
            .key(self.keys.job(job))
            .arg(count)
            .arg(bytes)
            .arg(source.as_str());
        for span in spans {
            invocation.arg(span);
        }
        let mut conn = self.conn().await?;
        let appended: i64 = invocation.invoke_async(&mut conn).await?;
        if appended < 0 {
            return Err(QueueError::NotFound(job.clone()));
        }
        Ok(())
    }

    /// The kept spans of the job from `source`, oldest first.
    pub async fn spans(&self, job: &JobId, source: SpanSource) -> Result<Vec<String>, QueueError> {
        let key = match source {
            SpanSource::Job => self.keys.job_spans(job),
            SpanSource::Broker => self.keys.broker_spans(job),
        };
        let mut conn = self.conn().await?;
        Ok(conn.lrange(key, 0, -1).await?)
    }

    /// Records the cluster's own start and end times of an attempt. The
    /// first report of each time wins (HSETNX), so replays never move it.
    pub async fn record_remote_times(
        &self,
        job: &JobId,
        attempt: u32,
        times: RemoteTimes,
    ) -> Result<(), QueueError> {
        let key = self.keys.telemetry(job);
        let mut pipe = redis::pipe();
        if let Some(at) = times.started_at_ms {
            pipe.hset_nx(&key, format!("rstart:{attempt}"), at).ignore();
        }
        if let Some(at) = times.ended_at_ms {
            pipe.hset_nx(&key, format!("rend:{attempt}"), at).ignore();
        }
        let mut conn = self.conn().await?;
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// The cluster's own times of each attempt that has reported any.
    pub async fn remote_times(
        &self,
        job: &JobId,
    ) -> Result<BTreeMap<u32, RemoteTimes>, QueueError> {
        let summary = self.telemetry_summary(job).await?;
        let mut times: BTreeMap<u32, RemoteTimes> = BTreeMap::new();
        for (field, value) in &summary {
            let (is_start, attempt) = if let Some(a) = field.strip_prefix("rstart:") {
                (true, a)
            } else if let Some(a) = field.strip_prefix("rend:") {
                (false, a)
            } else {
                continue;
            };
            let (Ok(attempt), Ok(at)) = (attempt.parse::<u32>(), value.parse::<u64>()) else {
                continue;
            };
            let entry = times.entry(attempt).or_default();
            if is_start {
                entry.started_at_ms = Some(at);
            } else {
                entry.ended_at_ms = Some(at);
            }
        }
        Ok(times)
    }

    /// What the bounds have dropped of the job's telemetry so far.
    pub async fn telemetry_drops(&self, job: &JobId) -> Result<TelemetryDrops, QueueError> {
        let summary = self.telemetry_summary(job).await?;
        let count = |field: &str| summary.get(field).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(TelemetryDrops {
            metric_points: count("mdropped"),
            job_spans: count("jobdropped"),
            broker_spans: count("brokerdropped"),
            artifacts: count("adropped"),
        })
    }

    /// The broker's telemetry secret: `candidate` if no broker stored one
    /// before, else the stored one (so every broker on this Redis agrees).
    pub async fn shared_telemetry_secret(&self, candidate: &str) -> Result<String, QueueError> {
        let key = self.keys.telemetry_secret();
        let mut conn = self.conn().await?;
        let (stored,): (Option<String>,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(candidate)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        stored.ok_or_else(|| QueueError::Corrupt {
            id: key,
            detail: "telemetry secret vanished".into(),
        })
    }

    /// The event cursor up to which finished jobs were exported, if any.
    pub async fn telemetry_export_cursor(&self) -> Result<Option<String>, QueueError> {
        let mut conn = self.conn().await?;
        Ok(conn.get(self.keys.telemetry_export_cursor()).await?)
    }

    /// Moves the export cursor.
    pub async fn set_telemetry_export_cursor(&self, cursor: &str) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let _: () = conn
            .set(self.keys.telemetry_export_cursor(), cursor)
            .await?;
        Ok(())
    }

    /// Swaps the unfinished last line of the attempt's log (kept between
    /// log chunks, so a report split across two chunks is still read whole):
    /// returns the one kept before and keeps `tail` (its newest 64 KiB).
    pub async fn swap_log_tail(
        &self,
        job: &JobId,
        attempt: u32,
        tail: &str,
    ) -> Result<String, QueueError> {
        const MAX_TAIL: usize = 64 << 10;
        let mut cut = tail.len().saturating_sub(MAX_TAIL);
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        let field = format!("logtail:{attempt}");
        let key = self.keys.telemetry(job);
        let mut conn = self.conn().await?;
        let (before,): (Option<String>,) = redis::pipe()
            .hget(&key, &field)
            .hset(&key, &field, &tail[cut..])
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(before.unwrap_or_default())
    }

    async fn telemetry_summary(&self, job: &JobId) -> Result<HashMap<String, String>, QueueError> {
        let mut conn = self.conn().await?;
        Ok(conn.hgetall(self.keys.telemetry(job)).await?)
    }
}

fn decode_point(job: &JobId, json: &str) -> Result<MetricPoint, QueueError> {
    serde_json::from_str(json).map_err(|e| corrupt(job, e))
}

fn corrupt(job: &JobId, error: serde_json::Error) -> QueueError {
    QueueError::Corrupt {
        id: job.to_string(),
        detail: format!("telemetry: {error}"),
    }
}
