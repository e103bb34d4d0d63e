//! Failure classes, retries, failover, the circuit breaker, fencing and time
//! limits, through the real dispatch and reconcile loops over simulated
//! clusters and the real Redis queue, on a manual clock (see
//! `loops/support.rs`).

#[path = "loops/support.rs"]
#[allow(dead_code)]
mod support;

use std::time::Duration;

use prometheus_client::registry::Registry;
use raybroker::clusters::HealthState;
use raybroker_adapter::{ClusterAdapter, RemoteState};
use raybroker_core::{FailureClass, JobState};
use support::{cpu_nodes, spec, Harness, SimCluster, FIRST_INFRA_RETRY_WAIT, LOST_GRACE};

/// The default wait before the first retry of a job's own error.
const FIRST_JOB_ERROR_WAIT: Duration = Duration::from_secs(10);

/// A cluster on tier 0 and one on tier 1: jobs go to `near` first.
fn near_and_far(label: &str) -> Harness {
    let mut far = SimCluster::new("far", vec![cpu_nodes(1)]);
    far.tier = 1;
    Harness::new(
        label,
        vec![SimCluster::new("near", vec![cpu_nodes(1)]), far],
    )
}

fn render(h: &Harness) -> String {
    let mut registry = Registry::with_prefix("raybroker");
    h.registry.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    text
}

#[tokio::test]
async fn exit_1_is_not_retried_unless_the_job_asks() {
    let h = Harness::new("exit1", vec![SimCluster::new("site", vec![cpu_nodes(1)])]);
    let plain = h.submit(spec("exit 1")).await;
    let mut asked = spec("exit 1");
    asked.retry.insert(FailureClass::JobError, 2);
    let retried = h.submit(asked).await;
    h.tick().await;
    h.tick().await;

    let job = h.job(&plain).await;
    assert_eq!(
        (job.state, job.exit_code, job.failure, job.attempts.len()),
        (JobState::Failed, Some(1), Some(FailureClass::JobError), 1)
    );
    assert!(
        job.reason.contains("job_error is not retried"),
        "{}",
        job.reason
    );

    let job = h.job(&retried).await;
    assert_eq!((job.state, job.attempt), (JobState::Queued, 1), "{job:#?}");
    assert_eq!(job.failure, Some(FailureClass::JobError));
    assert!(
        job.failover.excluded_clusters.is_empty(),
        "a job's own error does not avoid the cluster"
    );
    assert_eq!(
        job.failover.not_before_ms,
        Some(h.now() + FIRST_JOB_ERROR_WAIT.as_millis() as u64),
        "{job:#?}"
    );
    // Backoff: nothing before the wait is over, then attempt 2 (10 s), then
    // attempt 3 after twice that.
    h.advance(FIRST_JOB_ERROR_WAIT - Duration::from_millis(1));
    h.tick().await;
    assert_eq!(h.job(&retried).await.attempt, 1, "still waiting");
    h.advance(Duration::from_millis(1));
    h.tick().await;
    h.tick().await;
    assert_eq!(h.job(&retried).await.attempt, 2);
    h.advance(FIRST_JOB_ERROR_WAIT * 2);
    h.tick().await;
    h.tick().await;
    let job = h.job(&retried).await;
    assert_eq!(
        (job.state, job.attempt, job.failure),
        (JobState::Failed, 3, Some(FailureClass::JobError))
    );
    assert!(job.reason.contains("no retries left"), "{}", job.reason);
    let sim = h.sim("site");
    for attempt in &job.attempts {
        assert_eq!(sim.submissions_of(&attempt.submission_id), 1);
    }
    h.advance(Duration::from_secs(600));
    assert_eq!(h.tick().await.submitted, 0, "no fourth attempt");
}

#[tokio::test]
async fn an_unreachable_cluster_is_written_off_its_jobs_fail_over_and_it_returns() {
    let h = near_and_far("failover");
    // Timeline (s): attempt 1 starts at 0 on `near`, which goes down at 0;
    // lost at 5, attempt 2 on `far` at 10 (backoff), the probe at 10 fails
    // and the next is at 30. Attempt 1 would end at 25, attempt 2 at 35.
    let id = h.submit(spec("sleep 25")).await;
    h.tick().await;
    assert_eq!(h.job(&id).await.cluster.as_deref(), Some("near"));
    let first = h.submission_id(&id).await;
    let near = h.sim("near");

    near.set_unreachable(true);
    h.tick().await;
    assert_eq!(h.registry.health_state("near"), Some(HealthState::Degraded));
    h.tick().await;
    assert_eq!(h.registry.health_state("near"), Some(HealthState::Down));
    let views = h.registry.views(h.now());
    assert!(!views.iter().any(|v| v.name == "near" && v.fresh));
    let listed = h.registry.statuses(h.now());
    let near_status = listed.iter().find(|s| s.name == "near").expect("listed");
    assert!(!near_status.healthy);
    assert!(near_status.health.breaker.next_probe_ms.is_some());

    h.advance(LOST_GRACE);
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!(job.state, JobState::Queued, "{job:#?}");
    assert_eq!(job.failure, Some(FailureClass::ClusterUnreachable));
    assert_eq!(job.failover.excluded_clusters, ["near"]);
    assert!(
        job.reason
            .contains("attempt 1 failed (cluster_unreachable)")
            && job.reason.contains("avoiding near"),
        "{}",
        job.reason
    );
    h.advance(FIRST_INFRA_RETRY_WAIT);
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!(
        (job.state, job.attempt, job.cluster.as_deref()),
        (JobState::Running, 2, Some("far"))
    );
    let second = h.submission_id(&id).await;

    // `near` answers again, but stays written off until its probe is due.
    near.set_unreachable(false);
    h.refresh().await;
    assert_eq!(h.registry.health_state("near"), Some(HealthState::Down));
    let mut waited = Duration::ZERO;
    while h.registry.health_state("near") != Some(HealthState::Healthy) {
        assert!(waited < Duration::from_secs(60), "never probed again");
        h.advance(Duration::from_secs(1));
        waited += Duration::from_secs(1);
        h.refresh().await;
    }
    assert_eq!(
        waited,
        Duration::from_secs(20),
        "the failed probe doubled the wait"
    );

    // Attempt 1 ran to its end on `near` meanwhile: its success is fenced
    // off (the job follows attempt 2 only) and garbage collection removes it.
    assert_eq!(
        near.status(&first).await.unwrap().state,
        RemoteState::Succeeded
    );
    h.tick().await;
    assert_eq!(h.job(&id).await.state, JobState::Running);
    h.reconciler.collect_garbage().await.unwrap();
    assert_eq!(
        near.status(&first).await.unwrap().state,
        RemoteState::NotFound
    );
    h.advance(Duration::from_secs(60));
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!((job.state, job.failure), (JobState::Succeeded, None));
    let successes = job
        .history
        .iter()
        .filter(|t| t.to == JobState::Succeeded)
        .count();
    assert_eq!(successes, 1);
    assert_eq!(h.sim("far").submissions_of(&second), 1);

    let text = render(&h);
    for line in [
        "raybroker_job_failures_total{class=\"cluster_unreachable\",cluster=\"near\"} 1",
        "raybroker_job_retries_total{class=\"cluster_unreachable\"} 1",
        "raybroker_cluster_health{cluster=\"near\"} 0",
        "raybroker_cluster_free_cpus{cluster=\"far\"} 8.0",
        "raybroker_dispatch_latency_seconds_count{cluster=\"far\"} 1",
        "raybroker_job_wait_seconds_count{tenant=\"robotics\"} 2",
        "raybroker_adapter_call_duration_seconds_count{cluster=\"near\",operation=\"snapshot\",outcome=\"error\"} 3",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    assert!(
        text.contains("raybroker_queue_depth{tenant=\"robotics\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_job_past_its_time_limit_is_stopped_and_failed() {
    let h = Harness::new(
        "time-limit",
        vec![SimCluster::new("site", vec![cpu_nodes(1)])],
    );
    let mut limited = spec("sleep 600");
    limited.time_limit = Some(Duration::from_secs(10));
    let id = h.submit(limited.clone()).await;
    let mut again = limited;
    again.retry.insert(FailureClass::TimeLimit, 1);
    let retried = h.submit(again).await;
    h.tick().await;
    h.tick().await;
    assert_eq!(h.job(&id).await.state, JobState::Running);
    h.advance(Duration::from_secs(10));
    h.tick().await;
    assert_eq!(h.job(&id).await.state, JobState::Running, "at the limit");
    h.advance(Duration::from_millis(1));
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!(
        (job.state, job.failure, job.attempts.len()),
        (JobState::Failed, Some(FailureClass::TimeLimit), 1)
    );
    assert!(job.reason.contains("timed out"), "{}", job.reason);
    let sid = &job.attempts[0].submission_id;
    assert_eq!(
        h.sim("site").status(sid).await.unwrap().state,
        RemoteState::Stopped,
        "stopped on its cluster"
    );
    let job = h.job(&retried).await;
    assert_eq!(
        (job.state, job.failure),
        (JobState::Queued, Some(FailureClass::TimeLimit)),
        "its policy retries a time limit once"
    );
}
