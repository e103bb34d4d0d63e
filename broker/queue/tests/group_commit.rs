//! Group commit: concurrent submits share script calls, and each still gets
//! its own answer. Against a real Redis.

mod common;

use common::{leased_ids, tenant};
use raybroker_core::{JobSpec, JobState, TenantId};
use raybroker_queue::testing::{self, now_ms};
use raybroker_queue::{JobQueue, QueueConfig, QueueError, SubmitOutcome};

fn spec(entrypoint: &str, key: Option<&str>) -> JobSpec {
    JobSpec {
        entrypoint: entrypoint.to_string(),
        idempotency_key: key.map(str::to_string),
        ..JobSpec::default()
    }
}

/// A queue on the Redis at `url` with this group-commit batch size.
fn queue_on(url: &str, label: &str, submit_batch_max: usize) -> JobQueue {
    JobQueue::new(
        testing::pool(url),
        QueueConfig {
            key_prefix: testing::unique_prefix(label),
            submit_batch_max,
            ..QueueConfig::default()
        },
    )
}

/// Submits `specs` for their tenants all at once (one future each, polled
/// together, as concurrent API requests are).
async fn submit_all(
    q: &JobQueue,
    specs: Vec<(TenantId, JobSpec, u64)>,
) -> Vec<Result<SubmitOutcome, QueueError>> {
    futures::future::join_all(
        specs
            .into_iter()
            .map(|(t, s, at)| async move { q.submit(&t, s, at).await }),
    )
    .await
}

#[tokio::test]
async fn concurrent_submits_share_calls_and_each_gets_its_job() {
    let q = testing::queue("group-share");
    let t = tenant("robotics");
    let base = now_ms();
    let specs = (0..64)
        .map(|i| {
            (
                t.clone(),
                spec(&format!("python train.py --seed {i}"), None),
                base + i,
            )
        })
        .collect();
    let results = submit_all(&q, specs).await;
    let stats = q.group_commit_stats();
    assert_eq!(stats.jobs, 64);
    assert!(
        stats.batches <= 2,
        "64 submits polled together fill at most one batch per committer: {stats:?}"
    );
    let mut seen = std::collections::HashSet::new();
    for (i, result) in results.into_iter().enumerate() {
        let outcome = result.unwrap();
        assert!(outcome.created());
        let job = outcome.job();
        assert!(seen.insert(job.id.clone()), "a job id answered twice");
        assert_eq!(job.spec.entrypoint, format!("python train.py --seed {i}"));
        // Each job keeps its own request's time, not its batch's.
        assert_eq!(job.created_at_ms, base + i as u64);
        let stored = q.get(&job.id).await.unwrap().expect("stored");
        assert_eq!(&stored, job);
        assert_eq!(stored.history[0].at_ms, base + i as u64);
    }
    assert_eq!(q.queued_count(&t).await.unwrap(), 64);
}

#[tokio::test]
async fn a_batch_keeps_arrival_order_in_the_queue() {
    let q = testing::queue("group-order");
    let t = tenant("robotics");
    let at = now_ms();
    let specs = (0..20)
        .map(|i| (t.clone(), spec(&format!("job {i}"), None), at))
        .collect();
    let results = submit_all(&q, specs).await;
    let ids: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap().job().id.clone())
        .collect();
    // Same priority: the queue is in submission order, so the batch's jobs
    // were queued in the order their requests came.
    assert_eq!(leased_ids(&q, &t, 20).await, ids);
}

#[tokio::test]
async fn one_idempotency_key_twice_in_a_batch_makes_one_job() {
    let q = testing::queue("group-idem");
    let (a, b) = (tenant("a"), tenant("b"));
    let at = now_ms();
    let specs = vec![
        (a.clone(), spec("x", Some("k1")), at),
        (a.clone(), spec("x", Some("k1")), at),
        (b.clone(), spec("x", Some("k1")), at),
        (a.clone(), spec("y", Some("k2")), at),
        (a.clone(), spec("x", Some("k1")), at),
    ];
    let results: Vec<_> = submit_all(&q, specs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created: Vec<bool> = results.iter().map(SubmitOutcome::created).collect();
    assert_eq!(created, [true, false, true, true, false]);
    assert_eq!(results[1].job().id, results[0].job().id);
    assert_eq!(results[4].job().id, results[0].job().id);
    assert_ne!(
        results[2].job().id,
        results[0].job().id,
        "keys are per tenant"
    );
    assert_eq!(results[1].job().state, JobState::Queued);
    assert_eq!(q.queued_count(&a).await.unwrap(), 2);
    assert_eq!(q.queued_count(&b).await.unwrap(), 1);
    // Two tenants: one call each.
    assert_eq!(q.group_commit_stats().batches, 2);
}

#[tokio::test]
async fn every_request_of_a_failed_batch_gets_the_error() {
    // Nothing listens on port 1: the batch's call fails to connect.
    let q = queue_on("redis://127.0.0.1:1", "group-down", 256);
    let t = tenant("robotics");
    let specs = (0..5)
        .map(|i| (t.clone(), spec(&format!("job {i}"), None), now_ms()))
        .collect();
    for result in submit_all(&q, specs).await {
        match result {
            Err(QueueError::Pool(_) | QueueError::Redis(_)) => {}
            other => panic!("expected the connection error, got {other:?}"),
        }
    }
    // The committers are free again: a later submit is tried (and fails) too.
    let later = q.submit(&t, spec("later", None), now_ms()).await;
    assert!(matches!(
        later,
        Err(QueueError::Pool(_) | QueueError::Redis(_))
    ));
}

#[tokio::test]
async fn batch_size_one_submits_each_job_alone() {
    let q = queue_on(&testing::redis_url(), "group-off", 1);
    let t = tenant("robotics");
    let specs = (0..3)
        .map(|i| (t.clone(), spec(&format!("job {i}"), None), now_ms()))
        .collect();
    for result in submit_all(&q, specs).await {
        assert!(result.unwrap().created());
    }
    assert_eq!(q.group_commit_stats().batches, 0, "group commit is off");
    assert_eq!(q.queued_count(&t).await.unwrap(), 3);
}
