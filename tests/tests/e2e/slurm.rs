//! The broker with a Slurm cluster beside the two Ray heads: a job whose GPU
//! model only Slurm has goes there and runs inside a Ray cluster in its
//! allocation; failures, time limits and cancels come back as the broker's
//! states; cancel leaves no Ray process behind. The broker mints Slurm tokens
//! living a few seconds (`support::slurm::TOKEN_LIFESPAN`), so every test
//! here also proves tokens are renewed without failing a job.

use std::time::Duration;

use raybroker_adapter::{ClusterAdapter, RemoteState};
use raybroker_conformance::processes::wait_until_none_mention;
use raybroker_core::{FailureClass, JobState};
use serde_json::json;

use crate::support::slurm::{processes_mentioning, SLURM, SLURM_GPU_MODEL};
use crate::support::{gpu_spec, TestEnv};

const FINISH: Duration = Duration::from_secs(180);

/// Runs inside the job's Ray cluster and prints what it was given.
const SHOW_GPUS_IN_RAY: &str = "python -c \"import os, ray; ray.init(); \
    print('CUDA_VISIBLE_DEVICES=' + os.environ['CUDA_VISIBLE_DEVICES']); \
    print('ray_gpus=%d' % ray.cluster_resources().get('GPU', 0))\"";

/// The Slurm job id of a broker job's first attempt. The broker records the
/// attempt before the adapter's submit returns, so the id is polled for
/// (bounded) rather than read once.
async fn slurm_job_id(env: &TestEnv, id: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = env.job(id).await;
        if let Some(attempt) = job.attempts.first() {
            let recorded = env
                .slurm()
                .job_dir(&attempt.submission_id)
                .expect("a job dir")
                .slurm_job_id()
                .await
                .expect("read the job dir");
            if let Some(slurm_id) = recorded {
                return slurm_id;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the submit never recorded slurm's job id: {job:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_gpu_job_is_routed_by_model_and_sees_its_gpus_inside_ray() {
    let env = TestEnv::start_with_slurm("slurm-gpu").await;
    let id = env
        .submit(&gpu_spec(SHOW_GPUS_IN_RAY, 2, SLURM_GPU_MODEL))
        .await;
    let job = env.wait_finished(&id, FINISH).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(job.cluster.as_deref(), Some(SLURM), "{job:#?}");
    assert_eq!(job.exit_code, Some(0), "{job:#?}");
    assert_eq!(job.attempts.len(), 1, "{job:#?}");

    // The broker kept the log from the job's output file.
    let logs = env.complete_logs(&id, Duration::from_secs(30)).await;
    let devices = logs
        .lines()
        .find_map(|line| line.trim().strip_prefix("CUDA_VISIBLE_DEVICES="))
        .unwrap_or_else(|| panic!("no CUDA_VISIBLE_DEVICES line in the log of {id}: {logs:?}"));
    let devices: Vec<u32> = devices
        .split(',')
        .map(|d| d.trim().parse().expect("a device index"))
        .collect();
    assert_eq!(devices.len(), 2, "two GPUs asked, got {devices:?}");
    assert!(devices.iter().all(|&d| d < 4), "{devices:?}");
    assert!(
        logs.contains("ray_gpus=2"),
        "Ray did not see 2 GPUs: {logs:?}"
    );

    // Slurm ran it once, tagged with this broker's origin.
    let slurm = env.slurm();
    let owned = slurm.list_owned().await.expect("list slurm jobs");
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(
        owned[0].job_id.as_ref().map(|j| j.as_str()),
        Some(id.as_str())
    );
    assert_eq!(owned[0].state, RemoteState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_failing_entrypoint_and_time_limit_end_the_job_failed() {
    let env = TestEnv::start_with_slurm("slurm-fail").await;
    let mut failing = gpu_spec(
        "python -c \"import ray, sys; ray.init(); print('about to fail'); sys.exit(7)\"",
        1,
        SLURM_GPU_MODEL,
    );
    failing["max_retries"] = 2.into();
    let failing = env.submit(&failing).await;
    // The limit counts from the start of the allocation, so it covers the
    // few seconds the job's Ray head takes to come up.
    let mut slow = gpu_spec("echo started; sleep 600", 1, SLURM_GPU_MODEL);
    slow["time_limit"] = json!("25s");
    let slow = env.submit(&slow).await;

    let job = env.wait_finished(&failing, FINISH).await;
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    assert_eq!(job.cluster.as_deref(), Some(SLURM), "{job:#?}");
    assert_eq!(job.exit_code, Some(7), "{job:#?}");
    assert_eq!(job.failure, Some(FailureClass::JobError), "{job:#?}");
    assert_eq!(
        job.attempts.len(),
        1,
        "a job error must not be retried: {job:#?}"
    );
    let logs = env.complete_logs(&failing, Duration::from_secs(30)).await;
    assert!(logs.contains("about to fail"), "{logs:?}");

    let job = env.wait_finished(&slow, FINISH).await;
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    assert_eq!(job.failure, Some(FailureClass::TimeLimit), "{job:#?}");
    let logs = env.complete_logs(&slow, Duration::from_secs(30)).await;
    assert!(logs.contains("started"), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_cancel_of_just_submitted_and_running_jobs_leaves_no_ray_process() {
    let env = TestEnv::start_with_slurm("slurm-cancel").await;
    let running = env
        .submit(&gpu_spec("echo ray-up; sleep 600", 2, SLURM_GPU_MODEL))
        .await;
    env.wait_state(&running, JobState::Running, FINISH).await;
    let tmp = format!("/tmp/rb-slurm-{}/", slurm_job_id(&env, &running).await);
    let deadline = tokio::time::Instant::now() + FINISH;
    loop {
        let (_, body) = env
            .call(
                reqwest::Method::GET,
                &format!("/v1/jobs/{running}/logs?offset=0"),
                None,
            )
            .await;
        if body["text"].as_str().unwrap_or_default().contains("ray-up") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never printed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ray = processes_mentioning(&tmp);
    assert!(
        ray.iter().any(|(_, cmd)| cmd.contains("raylet")),
        "the job's raylet is not running: {ray:#?}"
    );

    // A job cancelled as soon as it is on Slurm, before its Ray is up
    // (Slurm has it pending or starting; the broker places only jobs that
    // fit, so a job stays pending on Slurm only this briefly: the adapter's
    // own tests cancel one pending for lack of GPUs).
    let early = env
        .submit(&gpu_spec("echo never", 1, SLURM_GPU_MODEL))
        .await;
    let job = env
        .wait_for(&early, FINISH, |job| {
            !job.attempts.is_empty() || job.state.is_terminal()
        })
        .await;
    // On Slurm: the submit has recorded Slurm's job id.
    let early_tmp = format!("/tmp/rb-slurm-{}/", slurm_job_id(&env, &early).await);
    env.cancel(&early).await;
    let submission_id = job.attempts[0].submission_id.clone();
    let job = env.wait_finished(&early, FINISH).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    let slurm = env.slurm();
    let status = slurm.status(&submission_id).await.expect("slurm status");
    assert_eq!(status.state, RemoteState::Stopped, "{status:?}");
    wait_no_process(&early_tmp).await;

    env.cancel(&running).await;
    let job = env.wait_finished(&running, FINISH).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    wait_no_process(&tmp).await;
}

/// Waits until no live process mentions `needle` (Slurm ends a cancelled
/// job's processes with SIGTERM, then SIGKILL after KillWait).
async fn wait_no_process(needle: &str) {
    if let Err(left) = wait_until_none_mention(needle, Duration::from_secs(30)).await {
        panic!("Ray processes of a cancelled job are still alive: {left:#?}");
    }
}
