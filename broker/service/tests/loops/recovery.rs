//! What the loops do when something breaks: a broker crash before or after a
//! submit, a job the cluster lost, a cluster that stops answering, and
//! garbage collection of attempts that were superseded meanwhile.

use std::time::Duration;

use raybroker_adapter::{ClusterAdapter, RemoteState, SubmitAck, SubmitRequest};
use raybroker_core::{Attempt, JobId, JobSpec, JobState};
use raybroker_queue::Lease;

use crate::support::{
    cpu_nodes, spec, Harness, SimCluster, FIRST_INFRA_RETRY_WAIT, LEASE_TTL, LOST_GRACE,
};

/// A job on a one-node cluster `cpu-site` that a dispatcher has leased and
/// recorded attempt 1 of, as a dispatcher does right before its submit.
async fn leased_and_recorded(name: &str) -> (Harness, JobId, Lease, Attempt) {
    let h = Harness::new(name, vec![SimCluster::new("cpu-site", vec![cpu_nodes(1)])]);
    let id = h.submit(spec("sleep 60")).await;
    h.refresh().await;
    let mut leases = h
        .queue
        .lease_ids(&h.tenant, std::slice::from_ref(&id), h.now())
        .await
        .unwrap();
    let lease = leases.remove(0);
    let attempt = h
        .queue
        .record_attempt(&lease, "cpu-site", h.now())
        .await
        .unwrap();
    (h, id, lease, attempt)
}

#[tokio::test]
async fn a_crash_between_record_and_submit_replays_the_same_attempt() {
    // The dispatcher dies after recording attempt 1, before submitting.
    let (h, id, _lease, attempt) = leased_and_recorded("crash-before").await;
    // Until the lease runs out nobody else touches the job.
    h.tick().await;
    assert_eq!(h.job(&id).await.state, JobState::Dispatching);
    let sim = h.sim("cpu-site");
    assert_eq!(sim.submissions_of(&attempt.submission_id), 0);
    h.advance(LEASE_TTL + Duration::from_secs(1));
    let report = h.tick().await;
    assert_eq!(report.submitted, 1);
    let job = h.job(&id).await;
    assert_eq!(
        (job.state, job.attempt, job.attempts.len()),
        (JobState::Running, 1, 1)
    );
    assert_eq!(job.attempts[0].submission_id, attempt.submission_id);
    assert!(job.attempts[0].submitted_at_ms.is_some());
    assert_eq!(sim.submissions_of(&attempt.submission_id), 1);
    assert_eq!(
        sim.running_jobs(),
        std::slice::from_ref(&attempt.submission_id)
    );
    let reasons: Vec<&str> = job.history.iter().map(|t| t.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("lease expired")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"attempt 1 submitted to cpu-site"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_crash_after_submit_is_adopted_and_runs_once() {
    let (h, id, lease, attempt) = leased_and_recorded("crash-after").await;
    // The submit reaches the cluster; the dispatcher dies before marking it.
    let sim = h.sim("cpu-site");
    let job = &lease.job;
    let request = SubmitRequest {
        submission_id: attempt.submission_id.clone(),
        job_id: job.id.clone(),
        tenant: job.tenant.clone(),
        attempt: attempt.number,
        spec: job.spec.clone(),
        extra_env: Default::default(),
    };
    assert_eq!(sim.submit(&request).await.unwrap(), SubmitAck::Created);
    h.advance(LEASE_TTL + Duration::from_secs(1));
    // Garbage collection sees the remote job as the job's current attempt
    // even while the job waits in the queue for its replay.
    h.reconciler.collect_garbage().await.unwrap();
    assert_eq!(
        sim.running_jobs(),
        std::slice::from_ref(&attempt.submission_id)
    );
    let report = h.tick().await;
    assert_eq!(report.submitted, 1);
    let job = h.job(&id).await;
    assert_eq!(
        (job.state, job.attempt, job.attempts.len()),
        (JobState::Running, 1, 1)
    );
    assert!(
        job.history
            .iter()
            .any(|t| t.reason == "attempt 1 was already on cpu-site: adopted"),
        "{:?}",
        job.history
    );
    assert_eq!(sim.submissions_of(&attempt.submission_id), 1);
}

/// A job of `spec` started on a one-node cluster `cpu-site`, whose head then
/// lost it (crashed); the broker has not seen that yet. Returns the
/// harness, the job and the lost attempt's submission id.
async fn started_then_lost(name: &str, spec: JobSpec) -> (Harness, JobId, String) {
    let h = Harness::new(name, vec![SimCluster::new("cpu-site", vec![cpu_nodes(1)])]);
    let id = h.submit(spec).await;
    h.tick().await;
    let first = h.submission_id(&id).await;
    assert!(h.sim("cpu-site").forget(&first));
    (h, id, first)
}

#[tokio::test]
async fn a_lost_job_gets_a_second_attempt_after_the_grace() {
    let mut retried = spec("sleep 600");
    retried.max_retries = 1;
    let (h, id, first) = started_then_lost("lost-retry", retried).await;
    let sim = h.sim("cpu-site");
    h.tick().await;
    h.advance(LOST_GRACE - Duration::from_millis(1));
    h.tick().await;
    assert_eq!(
        h.job(&id).await.state,
        JobState::Running,
        "still within the grace"
    );
    h.advance(Duration::from_millis(1));
    h.tick().await; // lost: back to the queue
    assert_eq!(h.job(&id).await.state, JobState::Queued);
    h.tick().await;
    assert_eq!(
        h.job(&id).await.state,
        JobState::Queued,
        "waits out the first retry's backoff"
    );
    h.advance(FIRST_INFRA_RETRY_WAIT);
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!((job.state, job.attempt), (JobState::Running, 2));
    let second = h.submission_id(&id).await;
    assert_ne!(second, first);
    assert_eq!(sim.running_jobs(), std::slice::from_ref(&second));
    assert_eq!(
        (sim.submissions_of(&first), sim.submissions_of(&second)),
        (1, 1)
    );
    assert!(
        job.history
            .iter()
            .any(|t| t.reason.contains("attempt 1 failed (cluster_unreachable)")),
        "{:?}",
        job.history
    );
}

#[tokio::test]
async fn a_lost_job_without_retries_fails() {
    let mut no_retries = spec("sleep 600");
    no_retries
        .retry
        .insert(raybroker_core::FailureClass::ClusterUnreachable, 0);
    let (h, id, _) = started_then_lost("lost-fail", no_retries).await;
    h.tick().await;
    h.advance(LOST_GRACE);
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!((job.state, job.attempt), (JobState::Failed, 1));
    assert_eq!(
        job.failure,
        Some(raybroker_core::FailureClass::ClusterUnreachable)
    );
    assert!(
        job.reason.contains("cluster_unreachable is not retried"),
        "{}",
        job.reason
    );
    assert_eq!(h.tick().await.submitted, 0);
    assert!(h.sim("cpu-site").running_jobs().is_empty());
}

#[tokio::test]
async fn an_unreachable_cluster_leaves_placement_and_comes_back() {
    let mut burst = SimCluster::new("burst", vec![cpu_nodes(1)]);
    burst.tier = 1;
    let h = Harness::new(
        "unreachable",
        vec![SimCluster::new("onprem", vec![cpu_nodes(1)]), burst],
    );
    h.sim("onprem").set_unreachable(true);
    let first = h.submit(spec("sleep 600")).await;
    h.tick().await;
    let job = h.job(&first).await;
    assert_eq!(
        (job.state, job.cluster.as_deref()),
        (JobState::Running, Some("burst"))
    );
    // With both away, a new job waits in the queue, and the running one is
    // not given up while within the grace.
    h.sim("burst").set_unreachable(true);
    let second = h.submit(spec("sleep 600")).await;
    let report = h.tick().await;
    assert_eq!((report.submitted, report.waiting), (0, 1), "{report:?}");
    assert_eq!(h.job(&second).await.state, JobState::Queued);
    assert_eq!(h.job(&first).await.state, JobState::Running);
    h.sim("onprem").set_unreachable(false);
    assert_eq!(h.tick().await.submitted, 1);
    let job = h.job(&second).await;
    assert_eq!(
        (job.state, job.cluster.as_deref()),
        (JobState::Running, Some("onprem"))
    );
    h.sim("burst").set_unreachable(false);
    h.advance(LOST_GRACE * 2);
    h.tick().await;
    let job = h.job(&first).await;
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Running, 1),
        "{:?}",
        job.history
    );
}

#[tokio::test]
async fn garbage_collection_stops_a_superseded_attempt() {
    let mut second_site = SimCluster::new("second", vec![cpu_nodes(1)]);
    second_site.tier = 1;
    let h = Harness::new(
        "gc",
        vec![SimCluster::new("first", vec![cpu_nodes(1)]), second_site],
    );
    let mut retried = spec("sleep 600");
    retried.max_retries = 1;
    let id = h.submit(retried).await;
    h.tick().await;
    let old = h.submission_id(&id).await;
    assert_eq!(h.job(&id).await.cluster.as_deref(), Some("first"));
    // `first` drops off the network for longer than the grace: the broker
    // gives attempt 1 up and runs attempt 2 on `second`.
    let first = h.sim("first");
    first.set_unreachable(true);
    h.tick().await;
    h.advance(LOST_GRACE);
    h.tick().await;
    h.advance(FIRST_INFRA_RETRY_WAIT);
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!(
        (job.state, job.attempt, job.cluster.as_deref()),
        (JobState::Running, 2, Some("second"))
    );
    let new = h.submission_id(&id).await;
    // `first` comes back still running attempt 1, which nobody owns now.
    first.set_unreachable(false);
    assert_eq!(first.running_jobs(), std::slice::from_ref(&old));
    h.reconciler.collect_garbage().await.unwrap();
    assert_eq!(
        first.status(&old).await.unwrap().state,
        RemoteState::Stopped
    );
    assert_eq!(h.sim("second").running_jobs(), std::slice::from_ref(&new));
    // The next pass removes the stopped leftover; the current attempt stays.
    h.reconciler.collect_garbage().await.unwrap();
    assert_eq!(
        first.status(&old).await.unwrap().state,
        RemoteState::NotFound
    );
    assert_eq!(
        h.sim("second").status(&new).await.unwrap().state,
        RemoteState::Running
    );
    assert_eq!(h.job(&id).await.state, JobState::Running);
}
