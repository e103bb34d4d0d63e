//! Spans of the broker's calls to clusters, per job: every adapter is wrapped
//! so each call about an attempt (submit, status, logs, cancel, cleanup)
//! becomes a span in that job's trace, under the attempt's span, with the
//! cluster, attempt and outcome as attributes.
//!
//! Status and log reads repeat every reconcile round; a read is kept only
//! when its outcome differs from the previous read of the same attempt (a
//! new state, an error, more log text), so a long job's trace shows each
//! change rather than thousands of identical polls, and the per-job bound on
//! broker spans keeps the submit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use raybroker_adapter::{
    AdapterError, Capabilities, CapacitySnapshot, ClusterAdapter, CreatedObjects, LogChunk,
    OwnedJob, RemoteStatus, SubmitAck, SubmitRequest,
};
use raybroker_core::JobId;
use raybroker_queue::{JobQueue, QueueError, SpanSource};
use serde_json::json;

use super::ids;
use super::span::{SpanOrigin, SpanRecord};

/// Outcomes remembered to drop repeated polls; cleared when it grows past this.
const MAX_REMEMBERED: usize = 10_000;

/// `adapter` with its calls recorded as spans of the jobs they concern.
pub fn traced(adapter: Arc<dyn ClusterAdapter>, queue: JobQueue) -> Arc<dyn ClusterAdapter> {
    Arc::new(TracedAdapter {
        inner: adapter,
        queue,
        last_outcome: Mutex::new(HashMap::new()),
    })
}

struct TracedAdapter {
    inner: Arc<dyn ClusterAdapter>,
    queue: JobQueue,
    /// (submission id, operation) -> outcome of the last read kept.
    last_outcome: Mutex<HashMap<(String, &'static str), String>>,
}

/// The job and attempt a submission id names (`rb-<job id>-<attempt>`,
/// see `Attempt::submission_id`); `None` for ids of another form.
pub fn parse_submission_id(submission_id: &str) -> Option<(JobId, u32)> {
    let rest = submission_id.strip_prefix("rb-")?;
    let (job, attempt) = rest.rsplit_once('-')?;
    Some((job.parse().ok()?, attempt.parse().ok()?))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One finished call, to record.
struct Call<'a> {
    job: JobId,
    attempt: u32,
    operation: &'static str,
    started_ns: u64,
    outcome: Result<String, &'a AdapterError>,
    tenant: Option<String>,
}

impl TracedAdapter {
    /// True when this read's outcome is new for the attempt.
    fn changed(&self, submission_id: &str, operation: &'static str, outcome: &str) -> bool {
        let mut last = self.last_outcome.lock().unwrap_or_else(|e| e.into_inner());
        if last.len() > MAX_REMEMBERED {
            last.clear();
        }
        let key = (submission_id.to_string(), operation);
        if last.get(&key).map(String::as_str) == Some(outcome) {
            return false;
        }
        last.insert(key, outcome.to_string());
        true
    }

    async fn record(&self, call: Call<'_>) {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("job_id".to_string(), json!(call.job.as_str()));
        attributes.insert("attempt".to_string(), json!(call.attempt));
        attributes.insert("cluster".to_string(), json!(self.inner.name()));
        if let Some(tenant) = call.tenant {
            attributes.insert("tenant".to_string(), json!(tenant));
        }
        let status = match &call.outcome {
            Ok(outcome) => {
                attributes.insert("outcome".to_string(), json!(outcome));
                None
            }
            Err(err) => {
                attributes.insert("error_kind".to_string(), json!(format!("{:?}", err.kind)));
                Some(format!("error: {}", err.message))
            }
        };
        let span = SpanRecord {
            trace_id: hex::encode(ids::trace_id(&call.job)),
            span_id: hex::encode(rand::random::<[u8; 8]>()),
            parent_span_id: Some(hex::encode(ids::attempt_span_id(&call.job, call.attempt))),
            name: format!("adapter.{}", call.operation),
            origin: SpanOrigin::Broker,
            service: Some("raybroker".into()),
            start_unix_nano: call.started_ns,
            end_unix_nano: now_ns().max(call.started_ns),
            open: false,
            attributes,
            status,
        };
        let Ok(text) = serde_json::to_string(&span) else {
            return;
        };
        match self
            .queue
            .record_spans(&call.job, SpanSource::Broker, &[text])
            .await
        {
            Ok(()) | Err(QueueError::NotFound(_)) => {}
            Err(err) => {
                tracing::debug!(job = %call.job, error = %err, "adapter call span not kept")
            }
        }
    }

    /// Records a read of `submission_id` if its outcome changed.
    async fn record_read<T>(
        &self,
        submission_id: &str,
        operation: &'static str,
        started_ns: u64,
        result: &Result<T, AdapterError>,
        describe: impl Fn(&T) -> String,
    ) {
        let Some((job, attempt)) = parse_submission_id(submission_id) else {
            return;
        };
        let outcome = result.as_ref().map(&describe);
        let key = match &outcome {
            Ok(text) => text.clone(),
            Err(err) => format!("error {:?}: {}", err.kind, err.message),
        };
        if !self.changed(submission_id, operation, &key) {
            return;
        }
        self.record(Call {
            job,
            attempt,
            operation,
            started_ns,
            outcome,
            tenant: None,
        })
        .await;
    }

    /// Records a call that changes something (always kept).
    async fn record_action<T>(
        &self,
        submission_id: &str,
        operation: &'static str,
        started_ns: u64,
        result: &Result<T, AdapterError>,
    ) {
        if let Some((job, attempt)) = parse_submission_id(submission_id) {
            self.record(Call {
                job,
                attempt,
                operation,
                started_ns,
                outcome: result.as_ref().map(|_| "ok".to_string()),
                tenant: None,
            })
            .await;
        }
    }
}

#[async_trait]
impl ClusterAdapter for TracedAdapter {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn snapshot(&self) -> Result<CapacitySnapshot, AdapterError> {
        self.inner.snapshot().await
    }

    async fn submit(&self, request: &SubmitRequest) -> Result<SubmitAck, AdapterError> {
        let started_ns = now_ns();
        let result = self.inner.submit(request).await;
        self.record(Call {
            job: request.job_id.clone(),
            attempt: request.attempt,
            operation: "submit",
            started_ns,
            outcome: result.as_ref().map(|ack| format!("{ack:?}").to_lowercase()),
            tenant: Some(request.tenant.to_string()),
        })
        .await;
        result
    }

    async fn status(&self, submission_id: &str) -> Result<RemoteStatus, AdapterError> {
        let started_ns = now_ns();
        let result = self.inner.status(submission_id).await;
        self.record_read(submission_id, "status", started_ns, &result, |s| {
            format!("{:?}", s.state).to_lowercase()
        })
        .await;
        result
    }

    async fn logs(&self, submission_id: &str, cursor: u64) -> Result<LogChunk, AdapterError> {
        let started_ns = now_ns();
        let result = self.inner.logs(submission_id, cursor).await;
        self.record_read(submission_id, "logs", started_ns, &result, |chunk| {
            format!("read to byte {}", chunk.next_cursor)
        })
        .await;
        result
    }

    async fn cancel(&self, submission_id: &str) -> Result<(), AdapterError> {
        let started_ns = now_ns();
        let result = self.inner.cancel(submission_id).await;
        // A cancel is retried every round until the job stops: keep changes only.
        self.record_read(submission_id, "cancel", started_ns, &result, |()| {
            "ok".into()
        })
        .await;
        result
    }

    async fn cleanup(&self, submission_id: &str) -> Result<(), AdapterError> {
        let started_ns = now_ns();
        let result = self.inner.cleanup(submission_id).await;
        self.record_action(submission_id, "cleanup", started_ns, &result)
            .await;
        result
    }

    async fn list_owned(&self) -> Result<Vec<OwnedJob>, AdapterError> {
        self.inner.list_owned().await
    }

    fn created_objects(&self) -> Option<&dyn CreatedObjects> {
        self.inner.created_objects()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_broker_submission_ids() {
        let job: JobId = "01JDQ3ZK8V6X9T2M4N5P7R8S9A".parse().unwrap();
        let sid = raybroker_core::Attempt::submission_id(&job, 3);
        assert_eq!(parse_submission_id(&sid), Some((job, 3)));
        assert_eq!(parse_submission_id("raysubmit_abc"), None);
        assert_eq!(parse_submission_id("rb-notaulid-1"), None);
        assert_eq!(parse_submission_id("rb-01jdq3zk8v6x9t2m4n5p7r8s9a-x"), None);
    }
}
