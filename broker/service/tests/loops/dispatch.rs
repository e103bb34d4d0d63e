//! Placing jobs and following them to their end: routing by GPU model,
//! admission control, success with its log, a failing entrypoint, fractional
//! GPUs, and cancels.

use std::time::Duration;

use raybroker_adapter::{ClusterAdapter, RemoteState};
use raybroker_core::JobState;
use raybroker_queue::CancelEffect;

use crate::support::{
    assert_times_from_the_clock, cpu_nodes, gpu_nodes, gpu_spec, spec, Harness, SimCluster,
    START_MS,
};

#[tokio::test]
async fn gpu_models_route_jobs_to_the_cluster_that_has_them() {
    let h = Harness::new(
        "route",
        vec![
            SimCluster::new("l4-site", vec![gpu_nodes(1, 4, "L4")]),
            SimCluster::new("a100-site", vec![gpu_nodes(1, 4, "A100")]),
        ],
    );
    let l4 = h.submit(gpu_spec("sleep 60", 1, Some("L4"))).await;
    let a100 = h.submit(gpu_spec("sleep 60", 1, Some("A100"))).await;
    let h100 = h.submit(gpu_spec("sleep 60", 1, Some("H100"))).await;
    let report = h.tick().await;
    assert_eq!((report.submitted, report.failed), (2, 1), "{report:?}");
    let (l4_job, a100_job) = (h.job(&l4).await, h.job(&a100).await);
    assert_eq!(l4_job.cluster.as_deref(), Some("l4-site"));
    assert_eq!(a100_job.cluster.as_deref(), Some("a100-site"));
    assert_eq!(l4_job.state, JobState::Running);
    assert_eq!(
        h.sim("l4-site").running_jobs(),
        [h.submission_id(&l4).await]
    );
    assert_eq!(
        h.sim("a100-site").running_jobs(),
        [h.submission_id(&a100).await]
    );
    let h100_job = h.job(&h100).await;
    assert_eq!(h100_job.state, JobState::Failed);
    assert!(
        h100_job.reason.contains("no GPU of model H100"),
        "{}",
        h100_job.reason
    );
}

#[tokio::test]
async fn admission_control_keeps_the_queue_in_the_broker() {
    let h = Harness::new(
        "admission",
        vec![SimCluster::new("small", vec![gpu_nodes(1, 4, "L4")])],
    );
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(h.submit(gpu_spec("sleep 600", 1, None)).await);
    }
    // The running broker dispatches several times per snapshot: every
    // round before the next snapshot must still see what earlier rounds sent.
    h.refresh().await;
    for _ in 0..5 {
        h.dispatch().await;
    }
    let sim = h.sim("small");
    let sent = sim.running_jobs().len() + sim.pending_jobs().len();
    assert!(
        sent <= 4 + 1,
        "{sent} jobs sent to a cluster with 4 free GPUs and allowance 1"
    );
    for _ in 0..3 {
        h.tick().await;
    }
    let sent = sim.running_jobs().len() + sim.pending_jobs().len();
    assert_eq!(sim.running_jobs().len(), 4);
    assert!(sent <= 5, "{sent} jobs sent");
    assert_eq!(h.in_state(JobState::Queued).await.len(), 10 - sent);
    assert!(h.in_state(JobState::Dispatching).await.is_empty());
    assert_eq!(h.in_state(JobState::Running).await.len(), 4);
    // When the first four finish, the next four start.
    h.advance(Duration::from_secs(601));
    for _ in 0..4 {
        h.tick().await;
    }
    assert_eq!(h.in_state(JobState::Succeeded).await.len(), 4);
    assert_eq!(h.in_state(JobState::Running).await.len(), 4);
    assert_eq!(h.in_state(JobState::Queued).await.len(), 2);
    assert_eq!(sim.running_jobs().len(), 4);
}

#[tokio::test]
async fn a_sleep_job_succeeds_and_its_log_is_kept() {
    let h = Harness::new(
        "complete",
        vec![SimCluster::new("cpu-site", vec![cpu_nodes(1)])],
    );
    let id = h.submit(spec("echo hello from the job; sleep 30")).await;
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.attempts[0].submitted_at_ms, Some(START_MS));
    h.advance(Duration::from_secs(29));
    h.tick().await;
    assert_eq!(h.job(&id).await.state, JobState::Running);
    h.advance(Duration::from_secs(1));
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!((job.state, job.exit_code), (JobState::Succeeded, Some(0)));
    assert_times_from_the_clock(&job, h.now());
    assert_eq!(job.history.last().map(|t| t.at_ms), Some(START_MS + 30_000));
    let log = h.logs(&id).await;
    assert_eq!(
        log,
        "[sim] started on node cpu-0 with CUDA_VISIBLE_DEVICES=\nhello from the job\n\
         [sim] exited with code 0\n"
    );
}

#[tokio::test]
async fn an_entrypoint_exiting_3_fails_the_job_without_a_retry() {
    let h = Harness::new(
        "exit3",
        vec![SimCluster::new("cpu-site", vec![cpu_nodes(1)])],
    );
    let mut failing = spec("exit 3");
    failing.max_retries = 2;
    let id = h.submit(failing).await;
    h.tick().await;
    let job = h.job(&id).await;
    assert_eq!((job.state, job.exit_code), (JobState::Failed, Some(3)));
    assert!(job.reason.contains("code 3"), "{}", job.reason);
    assert_times_from_the_clock(&job, h.now());
    h.advance(Duration::from_secs(60));
    let report = h.tick().await;
    assert_eq!(report.submitted, 0);
    let job = h.job(&id).await;
    assert_eq!(
        (job.state, job.attempt, job.attempts.len()),
        (JobState::Failed, 1, 1)
    );
    assert_eq!(
        h.sim("cpu-site")
            .submissions_of(&job.attempts[0].submission_id),
        1
    );
}

#[tokio::test]
async fn cancelling_a_queued_job_is_immediate() {
    let h = Harness::new(
        "cancel-queued",
        vec![SimCluster::new("cpu-site", vec![cpu_nodes(1)])],
    );
    let id = h.submit(spec("sleep 60")).await;
    let outcome = h
        .queue
        .cancel(&id, "changed my mind", h.now())
        .await
        .unwrap();
    assert_eq!(outcome.effect, CancelEffect::Cancelled);
    assert_eq!(outcome.job.state, JobState::Cancelled);
    assert_eq!(h.tick().await.submitted, 0);
    assert_eq!(h.job(&id).await.state, JobState::Cancelled);
    let sim = h.sim("cpu-site");
    assert!(sim.running_jobs().is_empty() && sim.pending_jobs().is_empty());
}

#[tokio::test]
async fn cancelling_a_running_job_stops_it_on_the_cluster() {
    let h = Harness::new(
        "cancel-running",
        vec![SimCluster::new("cpu-site", vec![cpu_nodes(1)])],
    );
    let id = h.submit(spec("sleep 600")).await;
    h.tick().await;
    let submission = h.submission_id(&id).await;
    let outcome = h.queue.cancel(&id, "stop it", h.now()).await.unwrap();
    assert_eq!(outcome.effect, CancelEffect::Requested);
    h.advance(Duration::from_secs(1));
    h.reconcile().await;
    let job = h.job(&id).await;
    assert_eq!(job.state, JobState::Cancelled);
    let sim = h.sim("cpu-site");
    assert!(sim.running_jobs().is_empty());
    let status = sim.status(&submission).await.unwrap();
    assert_eq!(status.state, RemoteState::Stopped);
    assert_eq!(status.ended_at_ms, Some(START_MS + 1_000));
    assert!(h.queue.pending_cancels().await.unwrap().is_empty());
}

#[tokio::test]
async fn fractional_gpu_jobs_share_one_gpu_exactly() {
    let mut one_gpu = SimCluster::new("shared", vec![gpu_nodes(1, 1, "L4")]);
    one_gpu.pending_allowance = 0;
    let h = Harness::new("fractional", vec![one_gpu]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let mut quarter = spec("sleep 600");
        quarter.resources.gpus = raybroker_core::Quantity::from_units(2_500);
        ids.push(h.submit(quarter).await);
    }
    for _ in 0..6 {
        h.tick().await;
    }
    let sim = h.sim("shared");
    let running = sim.running_jobs();
    assert_eq!(running.len(), 4, "four quarters fill the GPU");
    for submission in &running {
        let held = sim.allocation(submission).unwrap();
        assert_eq!(
            held[0].gpus,
            [(0, raybroker_core::Quantity::from_units(2_500))]
        );
    }
    assert!(
        sim.pending_jobs().is_empty(),
        "the fifth waits in the broker, not on the cluster"
    );
    assert_eq!(h.in_state(JobState::Queued).await.len(), 1);
}
