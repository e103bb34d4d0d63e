//! Per-job telemetry (metrics, artifacts, spans, cluster times) against a
//! real Redis, bounds included.

use raybroker_core::{JobId, JobSpec, MetricPoint, TenantId};
use raybroker_queue::testing::{self, now_ms};
use raybroker_queue::{
    JobQueue, QueueConfig, QueueError, RemoteTimes, SpanSource, TelemetryLimits,
};

fn small_limits() -> TelemetryLimits {
    TelemetryLimits {
        series_points: 3,
        metric_names: 2,
        job_spans: 4,
        job_span_bytes: 100,
        broker_spans: 2,
        broker_span_bytes: 1000,
        artifacts: 2,
    }
}

fn queue_with(limits: TelemetryLimits) -> JobQueue {
    JobQueue::new(
        testing::pool(&testing::redis_url()),
        QueueConfig {
            key_prefix: testing::unique_prefix("telemetry"),
            telemetry: limits,
            ..QueueConfig::default()
        },
    )
}

async fn job(queue: &JobQueue) -> JobId {
    let spec = JobSpec {
        entrypoint: "python train.py".into(),
        ..JobSpec::default()
    };
    let tenant = TenantId::new("robotics").unwrap();
    queue
        .submit(&tenant, spec, now_ms())
        .await
        .unwrap()
        .job()
        .id
        .clone()
}

fn point(name: &str, value: f64, step: u64, at_ms: u64) -> MetricPoint {
    MetricPoint {
        name: name.into(),
        value,
        step: Some(step),
        at_ms,
        attempt: 1,
    }
}

#[tokio::test]
async fn metrics_keep_last_min_max_and_a_bounded_series() {
    let q = queue_with(small_limits());
    let id = job(&q).await;
    let points: Vec<MetricPoint> = [0.5, 0.1, 0.9, 0.3, 0.4]
        .iter()
        .enumerate()
        .map(|(i, v)| point("reward", *v, i as u64, 1000 + i as u64))
        .collect();
    q.record_metrics(&id, &points[..2]).await.unwrap();
    q.record_metrics(&id, &points[2..]).await.unwrap();
    let m = q.job_metrics(&id).await.unwrap();
    let series = &m.series["reward"];
    assert_eq!(series.len(), 3, "bounded to the newest 3: {series:?}");
    assert_eq!(series[0].value, 0.9);
    assert_eq!(series[2].value, 0.4);
    assert_eq!(m.last["reward"].value, 0.4);
    assert_eq!(m.last["reward"].step, Some(4));
    // min and max cover points already pushed out of the series
    assert_eq!(m.min["reward"].value, 0.1);
    assert_eq!(m.min["reward"].step, Some(1));
    assert_eq!(m.max["reward"].value, 0.9);
}

#[tokio::test]
async fn a_late_point_does_not_become_last_and_values_stay_exact() {
    let q = queue_with(TelemetryLimits::default());
    let id = job(&q).await;
    q.record_metrics(&id, &[point("loss", 0.1 + 0.2, 5, 2000)])
        .await
        .unwrap();
    q.record_metrics(&id, &[point("loss", 7.0, 4, 1500)])
        .await
        .unwrap();
    let m = q.job_metrics(&id).await.unwrap();
    assert_eq!(m.last["loss"].step, Some(5));
    assert_eq!(m.last["loss"].value, 0.1 + 0.2, "exact round trip");
    assert_eq!(m.max["loss"].value, 7.0);
    let json = serde_json::to_value(&m).unwrap();
    assert!(json["series"]["loss"].is_array(), "{json}");
}

#[tokio::test]
async fn metric_names_past_the_limit_are_dropped_and_counted() {
    let q = queue_with(small_limits());
    let id = job(&q).await;
    let points = vec![
        point("a", 1.0, 0, 1),
        point("b", 1.0, 0, 1),
        point("c", 1.0, 0, 1),
        point("a", 2.0, 1, 2),
        point("nan", f64::NAN, 0, 1),
    ];
    q.record_metrics(&id, &points).await.unwrap();
    let m = q.job_metrics(&id).await.unwrap();
    assert_eq!(m.last.keys().cloned().collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(m.series["a"].len(), 2);
    assert_eq!(q.telemetry_drops(&id).await.unwrap().metric_points, 1);
}

#[tokio::test]
async fn unknown_jobs_keep_nothing() {
    let q = queue_with(TelemetryLimits::default());
    let ghost = JobId::generate(now_ms());
    let err = q
        .record_metrics(&ghost, &[point("x", 1.0, 0, 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::NotFound(_)), "{err}");
    let err = q
        .record_spans(&ghost, SpanSource::Job, &["{}".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::NotFound(_)), "{err}");
    assert!(q.job_metrics(&ghost).await.unwrap().last.is_empty());
}

#[tokio::test]
async fn spans_are_bounded_by_count_and_bytes() {
    let q = queue_with(small_limits());
    let id = job(&q).await;
    let spans: Vec<String> = (0..6).map(|i| format!("{{\"n\":{i}}}")).collect();
    q.record_spans(&id, SpanSource::Job, &spans).await.unwrap();
    let kept = q.spans(&id, SpanSource::Job).await.unwrap();
    assert_eq!(kept, spans[2..].to_vec(), "newest 4 by count");
    // 40-byte spans: the 100-byte bound keeps two
    let big: Vec<String> = (0..3)
        .map(|i| format!("{{\"pad\":\"{}{i}\"}}", "x".repeat(30)))
        .collect();
    q.record_spans(&id, SpanSource::Job, &big).await.unwrap();
    let kept = q.spans(&id, SpanSource::Job).await.unwrap();
    assert_eq!(kept, big[1..].to_vec());
    let too_big = vec!["y".repeat(101)];
    q.record_spans(&id, SpanSource::Job, &too_big)
        .await
        .unwrap();
    assert_eq!(
        q.spans(&id, SpanSource::Job).await.unwrap(),
        big[1..].to_vec()
    );
    let drops = q.telemetry_drops(&id).await.unwrap();
    // 2 by count; then 4 small and the first big one; then the oversized one
    assert_eq!(drops.job_spans, 2 + 5 + 1);
    // broker spans have their own list and bound
    let broker: Vec<String> = (0..3).map(|i| format!("b{i}")).collect();
    q.record_spans(&id, SpanSource::Broker, &broker)
        .await
        .unwrap();
    assert_eq!(
        q.spans(&id, SpanSource::Broker).await.unwrap(),
        broker[1..].to_vec()
    );
    assert_eq!(q.spans(&id, SpanSource::Job).await.unwrap().len(), 2);
}

#[tokio::test]
async fn artifacts_are_kept_once_and_bounded() {
    let q = queue_with(small_limits());
    let id = job(&q).await;
    let uris: Vec<String> = ["s3://b/1", "s3://b/2", "s3://b/1", "s3://b/3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    q.record_artifacts(&id, &uris).await.unwrap();
    assert_eq!(
        q.artifacts(&id).await.unwrap(),
        vec!["s3://b/1", "s3://b/2"]
    );
    assert_eq!(q.telemetry_drops(&id).await.unwrap().artifacts, 1);
}

#[tokio::test]
async fn remote_times_keep_the_first_report() {
    let q = queue_with(TelemetryLimits::default());
    let id = job(&q).await;
    let started = RemoteTimes {
        started_at_ms: Some(100),
        ended_at_ms: None,
    };
    q.record_remote_times(&id, 1, started).await.unwrap();
    let later = RemoteTimes {
        started_at_ms: Some(150),
        ended_at_ms: Some(300),
    };
    q.record_remote_times(&id, 1, later).await.unwrap();
    let times = q.remote_times(&id).await.unwrap();
    assert_eq!(
        times[&1],
        RemoteTimes {
            started_at_ms: Some(100),
            ended_at_ms: Some(300)
        }
    );
}
