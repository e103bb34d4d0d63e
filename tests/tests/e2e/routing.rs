//! Where jobs go: by GPU model to the head that has it; nowhere (refused at
//! submit, each head's reason named) when no head could ever run them.

use std::time::Duration;

use raybroker_core::JobState;
use serde_json::json;

use crate::support::{gpu_spec, ray, TestEnv, HEAD_A, HEAD_A_GPUS, HEAD_B, HEAD_B_GPUS};

/// Prints the GPUs Ray gave the entrypoint.
const SHOW_GPUS: &str = "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_jobs_run_on_the_head_with_their_model_and_get_a_gpu() {
    let env = TestEnv::start("routing").await;
    let a100 = env.submit(&gpu_spec(SHOW_GPUS, 1, "A100")).await;
    let l4 = env.submit(&gpu_spec(SHOW_GPUS, 1, "L4")).await;

    for (id, cluster, other, gpus_there) in [
        (&a100, HEAD_A, HEAD_B, HEAD_A_GPUS),
        (&l4, HEAD_B, HEAD_A, HEAD_B_GPUS),
    ] {
        let job = env.wait_finished(id, Duration::from_secs(120)).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
        assert_eq!(job.cluster.as_deref(), Some(cluster), "{job:#?}");
        assert_eq!(job.attempt, 1, "{job:#?}");
        assert_eq!(job.attempts.len(), 1, "{job:#?}");
        assert_eq!(job.exit_code, Some(0), "{job:#?}");
        let attempt = &job.attempts[0];
        assert_eq!(attempt.cluster, cluster);
        assert_eq!(
            attempt.submission_id,
            format!("rb-{}-1", id.to_ascii_lowercase())
        );

        // The log, as the broker kept it, shows the GPU Ray assigned.
        let logs = env.complete_logs(id, Duration::from_secs(30)).await;
        let devices = logs
            .lines()
            .find_map(|line| line.trim().strip_prefix("CUDA_VISIBLE_DEVICES="))
            .unwrap_or_else(|| panic!("no CUDA_VISIBLE_DEVICES line in the log of {id}: {logs:?}"));
        let devices: Vec<u32> = devices
            .split(',')
            .map(|d| {
                d.trim().parse().unwrap_or_else(|_| {
                    panic!("CUDA_VISIBLE_DEVICES of {id} is not a device list: {devices:?}")
                })
            })
            .collect();
        assert_eq!(devices.len(), 1, "one GPU asked, got {devices:?}");
        assert!(devices[0] < gpus_there, "device {devices:?} on {cluster}");

        // The head itself ran it, tagged as ours; the other head never saw it.
        let on_head = env
            .ray_job(cluster, &attempt.submission_id)
            .await
            .unwrap_or_else(|| panic!("{cluster} does not know {}", attempt.submission_id));
        assert_eq!(on_head.status, "SUCCEEDED", "{on_head:?}");
        assert_eq!(on_head.meta(ray::META_JOB_ID), Some(id.as_str()));
        assert_eq!(on_head.meta(ray::META_ATTEMPT), Some("1"));
        assert!(
            env.ray_job(other, &attempt.submission_id).await.is_none(),
            "{other} has a copy of {}",
            attempt.submission_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_head_can_run_is_refused_at_submit_with_each_heads_reason() {
    let env = TestEnv::start("unfit").await;
    let (status, body) = env.post_job(&gpu_spec("echo never", 1, "H100")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unschedulable", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let fields: Vec<String> = body["error"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f["message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for (cluster, model) in [(HEAD_A, "A100"), (HEAD_B, "L4")] {
        assert!(
            message.contains(&format!(
                "{cluster}: has no GPU of model H100 (it has: {model})"
            )),
            "the message does not give {cluster}'s reason: {message}"
        );
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with(&format!("cluster {cluster}:")) && f.contains("H100")),
            "no field names {cluster}: {body}"
        );
    }
    assert_eq!(fields.len(), 2, "{body}");

    // Nothing was queued.
    let (status, page) = env.call(reqwest::Method::GET, "/v1/jobs", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["jobs"], json!([]), "a refused job was queued: {page}");
}
