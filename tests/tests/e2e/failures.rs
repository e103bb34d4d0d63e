//! A failing entrypoint fails its job with the entrypoint's exit code, and
//! the broker does not retry it: retries are for failures of the cluster.

use std::time::Duration;

use raybroker_core::JobState;

use crate::support::{ray, spec, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_entrypoint_fails_with_its_exit_code_and_is_not_retried() {
    let env = TestEnv::start("failure").await;
    let mut failing = spec(r#"python -c "import sys; print('about to fail'); sys.exit(3)""#);
    failing["max_retries"] = 2.into();
    let id = env.submit(&failing).await;

    let job = env.wait_finished(&id, Duration::from_secs(120)).await;
    assert_eq!(job.state, JobState::Failed, "{job:#?}");
    assert_eq!(job.exit_code, Some(3), "{job:#?}");
    assert_eq!(job.attempt, 1, "{job:#?}");
    assert_eq!(job.attempts.len(), 1, "{job:#?}");
    assert!(
        job.reason.contains("exited with code 3"),
        "the reason does not say why: {}",
        job.reason
    );
    let logs = env.complete_logs(&id, Duration::from_secs(30)).await;
    assert!(logs.contains("about to fail"), "log: {logs:?}");

    // Several dispatch and reconcile rounds later, still one attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = env.job(&id).await;
    assert_eq!(later.state, JobState::Failed, "{later:#?}");
    assert_eq!(later.attempt, 1, "retried: {later:#?}");
    assert_eq!(later.attempts.len(), 1, "retried: {later:#?}");

    // The head ran it exactly once and saw the same exit code.
    let on_heads: Vec<_> = env
        .ray_jobs()
        .await
        .into_iter()
        .filter(|j| j.meta(ray::META_JOB_ID) == Some(id.as_str()))
        .collect();
    assert_eq!(on_heads.len(), 1, "{on_heads:#?}");
    assert_eq!(on_heads[0].status, "FAILED", "{on_heads:#?}");
    assert_eq!(on_heads[0].driver_exit_code, Some(3), "{on_heads:#?}");
    assert_eq!(
        on_heads[0].submission_id.as_deref(),
        Some(job.attempts[0].submission_id.as_str())
    );
}
