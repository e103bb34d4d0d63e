//! The broker's spans of a job, rebuilt from its durable history: submit,
//! time queued, placement, dispatch, pending on the cluster, running and
//! completion, grouped under one span per attempt, plus the cluster's own
//! start and end of each attempt. Because they come from the recorded
//! transitions with deterministic ids, any broker, after any restart, builds
//! the same spans.

use std::collections::BTreeMap;

use raybroker_core::{Job, JobState, Transition};
use raybroker_queue::RemoteTimes;
use serde_json::{json, Value};

use super::ids;
use super::span::{ms_to_ns, SpanOrigin, SpanRecord};

/// Every broker and cluster span of `job` as of `now_ms`.
pub fn job_spans(job: &Job, remote: &BTreeMap<u32, RemoteTimes>, now_ms: u64) -> Vec<SpanRecord> {
    let b = Builder { job, now_ms };
    let changes: Vec<&Transition> = job
        .history
        .iter()
        .filter(|t| t.from != Some(t.to))
        .collect();
    let end_ms = changes.iter().find(|t| t.to.is_terminal()).map(|t| t.at_ms);
    let root = ids::root_span_id(&b.job.id);
    let mut spans = vec![b.span(
        &format!("job {}", job.name),
        root,
        None,
        (job.created_at_ms, end_ms),
        b.attributes(0, None),
    )];
    spans.push(b.span(
        "submit",
        ids::span_id(&job.id, "submit", 0, 0),
        Some(root),
        (job.created_at_ms, Some(job.created_at_ms)),
        b.attributes(0, None),
    ));
    // Each attempt's span covers its stretches from dispatch to its end.
    let mut attempt_bounds: BTreeMap<u32, (u64, Option<u64>)> = BTreeMap::new();
    for (i, change) in changes.iter().enumerate() {
        let next = changes.get(i + 1);
        let until = next.map(|n| n.at_ms);
        let attempt = segment_attempt(change, next.copied());
        let cluster = cluster_of(job, attempt);
        // A dispatch released before it recorded an attempt hangs off the root.
        let attempt_span = if cluster.is_some() {
            ids::attempt_span_id(&job.id, attempt)
        } else {
            root
        };
        let (name, parent) = match change.to {
            JobState::Queued => ("queued", root),
            JobState::Dispatching => ("dispatch", attempt_span),
            JobState::Submitted => ("pending", attempt_span),
            JobState::Running => ("running", attempt_span),
            JobState::Succeeded | JobState::Failed | JobState::Cancelled => {
                let mut attrs = b.attributes(change.attempt, cluster_of(job, change.attempt));
                attrs.insert("state".into(), json!(change.to.as_str()));
                attrs.insert("reason".into(), json!(change.reason));
                if let Some(code) = job.exit_code {
                    attrs.insert("exit_code".into(), json!(code));
                }
                let mut span = b.span(
                    "completion",
                    ids::span_id(&job.id, "completion", change.attempt, i),
                    Some(root),
                    (change.at_ms, Some(change.at_ms)),
                    attrs,
                );
                if change.to == JobState::Failed {
                    span.status = Some(format!("error: {}", change.reason));
                }
                spans.push(span);
                continue;
            }
        };
        if cluster.is_some() && change.to != JobState::Queued {
            let bounds = attempt_bounds
                .entry(attempt)
                .or_insert((change.at_ms, until));
            bounds.1 = until;
        }
        let mut attrs = b.attributes(attempt, cluster);
        attrs.insert("reason".into(), json!(change.reason));
        spans.push(b.span(
            name,
            ids::span_id(&job.id, name, attempt, i),
            Some(parent),
            (change.at_ms, until),
            attrs,
        ));
    }
    for attempt in &job.attempts {
        let n = attempt.number;
        let attempt_id = ids::attempt_span_id(&job.id, n);
        let (start, end) = attempt_bounds
            .get(&n)
            .copied()
            .unwrap_or((attempt.created_at_ms, None));
        let mut attrs = b.attributes(n, Some(&attempt.cluster));
        attrs.insert("submission_id".into(), json!(attempt.submission_id));
        spans.push(b.span(
            &format!("attempt {n}"),
            attempt_id,
            Some(root),
            (start.min(attempt.created_at_ms), end),
            attrs,
        ));
        spans.push(b.span(
            "placement",
            ids::span_id(&job.id, "placement", n, 0),
            Some(attempt_id),
            (attempt.created_at_ms, Some(attempt.created_at_ms)),
            b.attributes(n, Some(&attempt.cluster)),
        ));
        if let Some(times) = remote.get(&n) {
            if let Some(started) = times.started_at_ms {
                let mut span = b.span(
                    "cluster: run",
                    ids::span_id(&job.id, "cluster-run", n, 0),
                    Some(attempt_id),
                    (started, times.ended_at_ms.or(end)),
                    b.attributes(n, Some(&attempt.cluster)),
                );
                span.origin = SpanOrigin::Cluster;
                spans.push(span);
            }
        }
    }
    spans
}

/// The attempt a stretch belongs to: a dispatch belongs to the attempt it
/// submits (recorded on the change that ends it).
fn segment_attempt(change: &Transition, next: Option<&Transition>) -> u32 {
    match (change.to, next) {
        (JobState::Dispatching, Some(next)) if next.to == JobState::Submitted => next.attempt,
        _ => change.attempt,
    }
}

fn cluster_of(job: &Job, attempt: u32) -> Option<&str> {
    job.attempts
        .iter()
        .find(|a| a.number == attempt)
        .map(|a| a.cluster.as_str())
}

struct Builder<'a> {
    job: &'a Job,
    now_ms: u64,
}

impl Builder<'_> {
    fn attributes(&self, attempt: u32, cluster: Option<&str>) -> BTreeMap<String, Value> {
        let mut attrs = BTreeMap::new();
        attrs.insert("job_id".into(), json!(self.job.id.as_str()));
        attrs.insert("tenant".into(), json!(self.job.tenant.as_str()));
        attrs.insert("attempt".into(), json!(attempt));
        if let Some(cluster) = cluster {
            attrs.insert("cluster".into(), json!(cluster));
        }
        attrs
    }

    fn span(
        &self,
        name: &str,
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        (start_ms, end_ms): (u64, Option<u64>),
        attributes: BTreeMap<String, Value>,
    ) -> SpanRecord {
        let end = end_ms.unwrap_or(self.now_ms.max(start_ms));
        SpanRecord {
            trace_id: hex::encode(ids::trace_id(&self.job.id)),
            span_id: hex::encode(id),
            parent_span_id: parent.map(hex::encode),
            name: name.to_string(),
            origin: SpanOrigin::Broker,
            service: Some("raybroker".into()),
            start_unix_nano: ms_to_ns(start_ms),
            end_unix_nano: ms_to_ns(end),
            open: end_ms.is_none(),
            attributes,
            status: None,
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
