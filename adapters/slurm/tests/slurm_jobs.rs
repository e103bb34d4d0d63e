//! Slurm-specific behaviour against the real test Slurm: GPUs reaching the
//! job inside Ray, exit codes, time limits, cancel leaving no Ray process,
//! capacity as Slurm reports it, tokens replaced before they expire.

mod common;

use std::time::Duration;

use raybroker_adapter::{ClusterAdapter, ErrorKind, RemoteState, SubmitAck};
use raybroker_conformance::processes::{processes_mentioning, wait_until_none_mention};
use raybroker_core::{FailureClass, GpuModel, Quantity, Resources};
use raybroker_slurm::{SlurmAdapter, SlurmAuth};

const FINISH: Duration = Duration::from_secs(120);

fn gpus(count: u64) -> Resources {
    Resources {
        gpus: Quantity::whole(count),
        gpu_types: vec![GpuModel::parse(&common::slurm().gpu_model).unwrap()],
        ..common::small()
    }
}

async fn slurm_job_id(adapter: &SlurmAdapter, id: &str) -> u64 {
    adapter
        .job_dir(id)
        .unwrap()
        .slurm_job_id()
        .await
        .unwrap()
        .expect("the submit recorded slurm's job id")
}

#[tokio::test]
async fn snapshot_shows_the_fake_gpus() {
    let adapter = common::adapter("slurm", &common::unique_origin("snap"));
    let snapshot = adapter.snapshot().await.unwrap();
    assert!(
        snapshot.version.starts_with("slurm 22.05"),
        "{}",
        snapshot.version
    );
    assert!(
        snapshot.version.contains("api v0.0.38"),
        "{}",
        snapshot.version
    );
    let [node] = snapshot.nodes.as_slice() else {
        panic!("expected one node, got {:?}", snapshot.nodes);
    };
    let model = GpuModel::parse(&common::slurm().gpu_model).unwrap();
    assert_eq!(node.gpu_model.as_ref(), Some(&model));
    assert_eq!(node.total.gpus, Quantity::whole(4));
    assert!(node.free.gpus <= node.total.gpus);
}

#[tokio::test]
async fn a_gpu_job_runs_inside_ray_and_sees_its_gpus() {
    let adapter = common::adapter("slurm", &common::unique_origin("gpu"));
    let id = common::fresh_id("gpu");
    let entrypoint = "python -c \"import os, ray; ray.init(); \
        print('cvd=' + os.environ['CUDA_VISIBLE_DEVICES']); \
        print('ray_gpus=%d' % ray.cluster_resources().get('GPU', 0)); \
        print('trace=' + os.environ['TRACEPARENT'])\"";
    let request = common::request(&id, entrypoint, gpus(2));
    assert_eq!(adapter.submit(&request).await.unwrap(), SubmitAck::Created);
    let status = common::wait_final(adapter.as_ref(), &id, FINISH).await;
    let log = common::whole_log(adapter.as_ref(), &id).await;
    assert_eq!(status.state, RemoteState::Succeeded, "{status:?}\n{log}");
    let cvd = log
        .lines()
        .find_map(|line| line.strip_prefix("cvd="))
        .unwrap_or_else(|| panic!("no cvd= line in {log}"));
    assert_eq!(cvd.split(',').count(), 2, "{log}");
    assert!(log.contains("ray_gpus=2"), "{log}");
    assert!(log.contains("trace=00-trace-span-01"), "{log}");
    adapter.cleanup(&id).await.unwrap();
}

#[tokio::test]
async fn a_failing_python_entrypoint_reports_its_exit_code() {
    let adapter = common::adapter("slurm", &common::unique_origin("exit"));
    let id = common::fresh_id("exit");
    let request = common::request(
        &id,
        "python -c 'import ray, sys; ray.init(); sys.exit(42)'",
        common::small(),
    );
    adapter.submit(&request).await.unwrap();
    let status = common::wait_final(adapter.as_ref(), &id, FINISH).await;
    assert_eq!(status.state, RemoteState::Failed, "{status:?}");
    assert_eq!(status.exit_code, Some(42), "{status:?}");
    assert_eq!(status.failure, Some(FailureClass::JobError), "{status:?}");
    adapter.cleanup(&id).await.unwrap();
}

#[tokio::test]
async fn a_job_over_its_time_limit_ends_timed_out() {
    let adapter = common::adapter("slurm", &common::unique_origin("limit"));
    let id = common::fresh_id("limit");
    let mut request = common::request(&id, "echo started; sleep 300", common::small());
    request.spec.time_limit = Some(Duration::from_secs(5));
    adapter.submit(&request).await.unwrap();
    let status = common::wait_final(adapter.as_ref(), &id, FINISH).await;
    assert_eq!(status.state, RemoteState::Failed, "{status:?}");
    assert_eq!(status.failure, Some(FailureClass::TimeLimit), "{status:?}");
    let log = common::whole_log(adapter.as_ref(), &id).await;
    assert!(log.contains("started"), "{log}");
    assert!(log.contains("time limit"), "{log}");
    adapter.cleanup(&id).await.unwrap();
}

/// Waits until no live process mentions `needle` (Slurm ends a cancelled
/// job's processes with SIGTERM, then SIGKILL after KillWait).
async fn wait_no_process(needle: &str) {
    if let Err(left) = wait_until_none_mention(needle, Duration::from_secs(30)).await {
        panic!("processes of {needle} still alive 30 s after the job ended: {left:#?}");
    }
}

#[tokio::test]
async fn cancel_of_pending_and_running_jobs_leaves_no_ray_process() {
    let adapter = common::adapter("slurm", &common::unique_origin("cancel"));
    let tmp_root = "/tmp/rb-slurm-";
    // The running job holds every GPU, so the second one waits.
    let running = common::fresh_id("cancel-running");
    let request = common::request(&running, "echo up; sleep 300", gpus(4));
    adapter.submit(&request).await.unwrap();
    common::wait_for(adapter.as_ref(), &running, FINISH, |s| {
        s.state == RemoteState::Running || s.state.is_final()
    })
    .await;
    let running_tmp = format!("{tmp_root}{}/", slurm_job_id(&adapter, &running).await);
    let pending = common::fresh_id("cancel-pending");
    adapter
        .submit(&common::request(&pending, "echo never", gpus(1)))
        .await
        .unwrap();
    let status = adapter.status(&pending).await.unwrap();
    assert_eq!(status.state, RemoteState::Pending, "{status:?}");
    let pending_tmp = format!("{tmp_root}{}/", slurm_job_id(&adapter, &pending).await);

    adapter.cancel(&pending).await.unwrap();
    let status = common::wait_final(adapter.as_ref(), &pending, FINISH).await;
    assert_eq!(status.state, RemoteState::Stopped, "{status:?}");
    assert_eq!(status.failure, Some(FailureClass::Cancelled));
    assert!(processes_mentioning(&pending_tmp).is_empty());

    // The Ray head is up once the entrypoint printed; its processes carry
    // the job's temp dir on their command lines.
    let deadline = tokio::time::Instant::now() + FINISH;
    while !common::whole_log(adapter.as_ref(), &running)
        .await
        .contains("up")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the running job never printed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ray = processes_mentioning(&running_tmp);
    assert!(
        ray.iter().any(|(_, cmd)| cmd.contains("raylet")),
        "expected the job's raylet among {ray:#?}"
    );
    adapter.cancel(&running).await.unwrap();
    let status = common::wait_final(adapter.as_ref(), &running, FINISH).await;
    assert_eq!(status.state, RemoteState::Stopped, "{status:?}");
    wait_no_process(&running_tmp).await;
    for id in [&running, &pending] {
        adapter.cleanup(id).await.unwrap();
    }
}

#[tokio::test]
async fn an_expired_token_fails_and_a_minted_one_is_replaced_in_time() {
    // Proof that expiry matters: an expired token is refused (HTTP 500).
    let slurm = common::slurm();
    let key = std::fs::read(&slurm.jwt_key).unwrap();
    let now = common::now_ms() / 1000;
    let claims = serde_json::json!({"exp": now - 10, "iat": now - 70, "sun": "root"});
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&key),
    )
    .unwrap();
    let path = std::env::temp_dir().join(format!("rb-slurm-expired-{}", std::process::id()));
    std::fs::write(&path, expired).unwrap();
    let mut config = common::config(&common::unique_origin("expired"), Duration::from_secs(60));
    config.auth = SlurmAuth::TokenFile(path.clone());
    config.api_version = Some("v0.0.38".into());
    let stale = common::adapter_with("slurm-stale", config);
    let error = stale.snapshot().await.unwrap_err();
    assert_ne!(error.kind, ErrorKind::NotFound, "{error}");
    std::fs::remove_file(path).unwrap();

    // Tokens living 3 s, through a job of ~15 s polled all along: every call
    // succeeds and the job ends well.
    let config = common::config(&common::unique_origin("refresh"), Duration::from_secs(3));
    let adapter = common::adapter_with("slurm-refresh", config);
    let id = common::fresh_id("refresh");
    let request = common::request(&id, "sleep 8; echo done", common::small());
    adapter.submit(&request).await.unwrap();
    let status = common::wait_final(adapter.as_ref(), &id, FINISH).await;
    assert_eq!(status.state, RemoteState::Succeeded, "{status:?}");
    assert!(common::whole_log(adapter.as_ref(), &id)
        .await
        .contains("done"));
    adapter.cleanup(&id).await.unwrap();
}
