//! The queue is in Redis, not in the broker: jobs waiting for capacity when
//! the broker is killed with SIGKILL are still there after a restart, and run.

use std::time::Duration;

use raybroker_core::JobState;

use crate::support::{gpu_spec, TestEnv, HEAD_A, HEAD_A_GPUS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_survive_a_broker_kill_and_run_after_the_restart() {
    let mut env = TestEnv::start("restart").await;
    // One job takes every A100; the jobs after it must wait in the broker.
    let blocker = env.submit(&gpu_spec("sleep 20", HEAD_A_GPUS, "A100")).await;
    let running = env
        .wait_state(&blocker, JobState::Running, Duration::from_secs(120))
        .await;
    assert_eq!(running.cluster.as_deref(), Some(HEAD_A));
    env.wait_gpus_taken(HEAD_A, "A100", Duration::from_secs(30))
        .await;
    let mut queued = Vec::new();
    for i in 0..3 {
        let entrypoint = format!("echo queued-{i}");
        queued.push(
            env.submit(&gpu_spec(&entrypoint, HEAD_A_GPUS, "A100"))
                .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in &queued {
        let job = env.job(id).await;
        assert_eq!(job.state, JobState::Queued, "{job:#?}");
    }

    env.kill();
    env.restart().await;

    // Still there, still waiting; the blocker still followed.
    let (status, page) = env
        .call(reqwest::Method::GET, "/v1/jobs?state=queued", None)
        .await;
    assert_eq!(status, 200, "{page}");
    let mut listed: Vec<&str> = page["jobs"]
        .as_array()
        .expect("a job list")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = queued.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{page}");
    let job = env.job(&blocker).await;
    assert_eq!(job.state, JobState::Running, "{job:#?}");

    // Then everything runs, each exactly once.
    for (i, id) in queued.iter().enumerate() {
        let job = env.wait_finished(id, Duration::from_secs(180)).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
        assert_eq!(job.attempts.len(), 1, "{job:#?}");
        let logs = env.complete_logs(id, Duration::from_secs(30)).await;
        assert!(
            logs.contains(&format!("queued-{i}")),
            "log of {id}: {logs:?}"
        );
    }
    let job = env.wait_finished(&blocker, Duration::from_secs(60)).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(job.attempts.len(), 1, "the blocker ran again: {job:#?}");
}
