//! Cancelling a job wherever it is: still queued in the broker (it never
//! reaches Ray), just submitted (pending on the head), and running (the
//! head's own job ends STOPPED).

use std::time::{Duration, Instant};

use raybroker_core::{Job, JobState};
use serde_json::json;

use crate::support::{gpu_spec, ray, spec, Options, RayJob, TestEnv, HEAD_A, HEAD_A_GPUS};

/// Long enough never to end by itself during a test.
const FOREVER: &str = "sleep 300";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_queued_job_ends_it_at_once_and_it_never_reaches_ray() {
    let env = TestEnv::start("cancel-queued").await;
    // Every A100 busy, so one more A100 job has to wait in the broker.
    let mut fill = Vec::new();
    for _ in 0..HEAD_A_GPUS {
        fill.push(env.submit(&gpu_spec(FOREVER, 1, "A100")).await);
    }
    for id in &fill {
        let job = env
            .wait_state(id, JobState::Running, Duration::from_secs(120))
            .await;
        assert_eq!(job.cluster.as_deref(), Some(HEAD_A));
    }
    env.wait_gpus_taken(HEAD_A, "A100", Duration::from_secs(30))
        .await;
    let waiting = env.submit(&gpu_spec(FOREVER, 1, "A100")).await;
    // Many dispatch rounds and at least one fresh snapshot later...
    tokio::time::sleep(Duration::from_secs(2)).await;
    let job = env.job(&waiting).await;
    assert_eq!(job.state, JobState::Queued, "{job:#?}");
    assert_eq!(job.attempt, 0, "{job:#?}");

    let (effect, job) = env.cancel(&waiting).await;
    assert_eq!(effect, "cancelled", "{job:#?}");
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");

    // It stays cancelled, without an attempt, and no head ever saw it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let job = env.job(&waiting).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    assert!(job.attempts.is_empty(), "{job:#?}");
    let on_heads: Vec<RayJob> = env
        .ray_jobs()
        .await
        .into_iter()
        .filter(|j| j.meta(ray::META_JOB_ID) == Some(waiting.as_str()))
        .collect();
    assert!(
        on_heads.is_empty(),
        "a cancelled queued job reached Ray: {on_heads:#?}"
    );

    // The running ones are cancelled through the head.
    for id in &fill {
        let (effect, _) = env.cancel(id).await;
        assert_eq!(effect, "requested");
    }
    for id in &fill {
        let job = env.wait_finished(id, Duration::from_secs(60)).await;
        assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_just_submitted_job_stops_it_on_the_head() {
    // The garbage collector is the broker's safety net for a job that Ray
    // starts after the broker gave it up: let it run often.
    let env = TestEnv::start_with("cancel-pending", Options { gc_every: "2s" }).await;
    // Ray 2.31 keeps a new job PENDING for a second or more while it starts
    // the job's supervisor; the test cancels in that window. Should a job
    // get past it before the poll sees it, cancel it anyway and try again.
    let mut pinned = spec(FOREVER);
    pinned["placement"] = json!({"allowed_clusters": [HEAD_A]});
    let mut caught = None;
    for _ in 0..5 {
        let id = env.submit(&pinned).await;
        let job = first_seen_on_cluster(&env, &id).await;
        let (effect, after) = env.cancel(&id).await;
        assert_eq!(effect, "requested", "{after:#?}");
        assert!(after.cancel_requested, "{after:#?}");
        if job.state == JobState::Submitted {
            caught = Some(id);
            break;
        }
        let job = env.wait_finished(&id, Duration::from_secs(60)).await;
        assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    }
    let id = caught.expect("no job was seen in `submitted` in five tries");

    let job = env.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    assert_eq!(job.attempts.len(), 1, "{job:#?}");
    let sid = &job.attempts[0].submission_id;
    let on_head = wait_ray_final(&env, HEAD_A, sid, Duration::from_secs(60)).await;
    assert_eq!(on_head.status, "STOPPED", "{on_head:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_on_the_head() {
    let env = TestEnv::start("cancel-running").await;
    let id = env.submit(&spec("sleep 120")).await;
    let running = env
        .wait_state(&id, JobState::Running, Duration::from_secs(120))
        .await;
    let cluster = running
        .cluster
        .clone()
        .expect("a running job has a cluster");
    let sid = running.attempts[0].submission_id.clone();

    let asked = Instant::now();
    let (effect, job) = env.cancel(&id).await;
    assert_eq!(effect, "requested", "{job:#?}");
    assert!(job.cancel_requested, "{job:#?}");
    let job = env.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    assert_eq!(job.attempts.len(), 1, "{job:#?}");
    eprintln!(
        "cancel of a running job took {:.1} s to be confirmed",
        asked.elapsed().as_secs_f64()
    );

    let on_head = env
        .ray_job(&cluster, &sid)
        .await
        .unwrap_or_else(|| panic!("{cluster} does not know {sid}"));
    assert_eq!(on_head.status, "STOPPED", "{on_head:?}");
}

/// Polls the job fast until it has left the broker's queue.
async fn first_seen_on_cluster(env: &TestEnv, id: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = env.job(id).await;
        if !matches!(job.state, JobState::Queued | JobState::Dispatching) {
            assert!(!job.state.is_terminal(), "{job:#?}");
            return job;
        }
        assert!(Instant::now() < deadline, "never dispatched: {job:#?}");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Polls the head until its job is final.
async fn wait_ray_final(env: &TestEnv, cluster: &str, sid: &str, within: Duration) -> RayJob {
    let deadline = Instant::now() + within;
    loop {
        let job = env
            .ray_job(cluster, sid)
            .await
            .unwrap_or_else(|| panic!("{cluster} does not know {sid}"));
        if job.is_final() {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{sid} on {cluster} not final within {within:?}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
