use std::collections::BTreeMap;

use raybroker_core::Job;
use raybroker_queue::RemoteTimes;
use serde_json::json;

use super::job_spans;
use crate::telemetry::span::{SpanOrigin, SpanRecord};

const ID: &str = "01JDQ3ZK8V6X9T2M4N5P7R8S9A";

/// A job that was queued, failed on cluster a, retried and succeeded on b.
fn retried_job() -> Job {
    let t = |from: Option<&str>, to: &str, at: u64, attempt: u32| json!({"from": from, "to": to, "at_ms": at, "attempt": attempt, "reason": to});
    serde_json::from_value(json!({
        "id": ID, "tenant": "robotics", "name": "train", "state": "succeeded",
        "reason": "done", "attempt": 2, "cancel_requested": false, "exit_code": 0,
        "created_at_ms": 1000, "updated_at_ms": 9000, "spec": {"entrypoint": "python t.py"},
        "attempts": [
            {"number": 1, "cluster": "a", "submission_id": "s1", "created_at_ms": 1100},
            {"number": 2, "cluster": "b", "submission_id": "s2", "created_at_ms": 5100}
        ],
        "history": [
            {"to": "queued", "at_ms": 1000, "attempt": 0, "reason": "submitted"},
            t(Some("queued"), "dispatching", 1050, 0),
            t(Some("dispatching"), "dispatching", 1100, 1),
            t(Some("dispatching"), "submitted", 1200, 1),
            t(Some("submitted"), "running", 2000, 1),
            t(Some("running"), "queued", 5000, 1),
            t(Some("queued"), "dispatching", 5050, 1),
            t(Some("dispatching"), "submitted", 5200, 2),
            t(Some("submitted"), "running", 6000, 2),
            t(Some("running"), "succeeded", 9000, 2)
        ]
    }))
    .expect("a job")
}

fn find<'a>(spans: &'a [SpanRecord], name: &str, attempt: u32) -> &'a SpanRecord {
    spans
        .iter()
        .find(|s| s.name == name && s.attributes["attempt"] == json!(attempt))
        .unwrap_or_else(|| panic!("no span {name} of attempt {attempt}: {spans:#?}"))
}

#[test]
fn every_stretch_of_the_history_is_a_span_in_one_trace() {
    let job = retried_job();
    let mut remote = BTreeMap::new();
    remote.insert(
        2,
        RemoteTimes {
            started_at_ms: Some(6100),
            ended_at_ms: Some(8900),
        },
    );
    let spans = job_spans(&job, &remote, 20_000);
    let trace = &spans[0].trace_id;
    assert!(spans.iter().all(|s| &s.trace_id == trace));
    assert!(spans.iter().all(|s| !s.open), "finished job: nothing open");
    let root = &spans[0];
    assert_eq!(root.name, "job train");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.end_unix_nano, 9000 * 1_000_000);

    let attempt1 = find(&spans, "attempt 1", 1);
    let attempt2 = find(&spans, "attempt 2", 2);
    assert_eq!(attempt2.attributes["cluster"], json!("b"));
    let running2 = find(&spans, "running", 2);
    assert_eq!(running2.parent_span_id.as_ref(), Some(&attempt2.span_id));
    assert_eq!(running2.duration_ms(), 3000.0);
    let pending1 = find(&spans, "pending", 1);
    assert_eq!(pending1.parent_span_id.as_ref(), Some(&attempt1.span_id));
    assert_eq!(pending1.duration_ms(), 800.0);
    let dispatch2 = find(&spans, "dispatch", 2);
    assert_eq!(dispatch2.parent_span_id.as_ref(), Some(&attempt2.span_id));
    assert_eq!(attempt2.start_unix_nano, 5050 * 1_000_000);
    assert_eq!(attempt2.end_unix_nano, 9000 * 1_000_000);
    let queued: Vec<_> = spans.iter().filter(|s| s.name == "queued").collect();
    assert_eq!(queued.len(), 2, "first wait and the retry's wait");
    let cluster = spans
        .iter()
        .find(|s| s.origin == SpanOrigin::Cluster)
        .expect("a span from the cluster's own times");
    assert_eq!(cluster.parent_span_id.as_ref(), Some(&attempt2.span_id));
    assert_eq!(cluster.duration_ms(), 2800.0);
    let completion = find(&spans, "completion", 2);
    assert_eq!(completion.attributes["state"], json!("succeeded"));
    assert!(spans.iter().any(|s| s.name == "submit"));
    assert!(spans.iter().any(|s| s.name == "placement"));
    // every parent exists
    for span in &spans {
        if let Some(parent) = &span.parent_span_id {
            assert!(spans.iter().any(|s| &s.span_id == parent), "{span:#?}");
        }
    }
    // the same history gives the same ids
    assert_eq!(spans, job_spans(&job, &remote, 20_000));
}

#[test]
fn a_running_job_has_open_spans_up_to_now() {
    let mut job = retried_job();
    job.history.truncate(5);
    job.attempts.truncate(1);
    let spans = job_spans(&job, &BTreeMap::new(), 4000);
    let running = find(&spans, "running", 1);
    assert!(running.open);
    assert_eq!(running.end_unix_nano, 4000 * 1_000_000);
    assert!(spans[0].open);
}
