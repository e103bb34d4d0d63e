//! Ray-specific behaviour against the real test heads: capacity as Ray
//! reports it, GPU models reaching the job, exit codes, what Ray refuses.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use raybroker_adapter::{ClusterAdapter, ErrorKind, RemoteState, SubmitAck, SubmitRequest};
use raybroker_core::{GpuModel, JobId, JobSpec, Quantity, Resources, TenantId};
use raybroker_ray::client::SubmitBody;
use raybroker_ray::{GpuModelResource, RayAdapter, RayClusterConfig};

const FINISH: Duration = Duration::from_secs(90);

fn request(id: &str, entrypoint: &str, resources: Resources) -> SubmitRequest {
    SubmitRequest {
        submission_id: id.to_string(),
        job_id: JobId::generate(1_795_000_000_000),
        tenant: TenantId::new("robotics").unwrap(),
        attempt: 1,
        spec: JobSpec {
            entrypoint: entrypoint.to_string(),
            resources,
            ..JobSpec::default()
        },
        extra_env: BTreeMap::from([("RAYBROKER_TEST".to_string(), "yes".to_string())]),
    }
}

fn small() -> Resources {
    Resources {
        cpus: Quantity::from_units(1_000),
        ..Resources::default()
    }
}

fn a_gpu_of(model: &str) -> Resources {
    Resources {
        gpus: Quantity::whole(1),
        gpu_types: vec![GpuModel::parse(model).unwrap()],
        ..small()
    }
}

async fn snapshot_shows(var: &str, version_prefix: &str, model: &str, gpus: u64) {
    let url = common::head_url(var);
    let adapter = common::adapter(
        var,
        &url,
        &common::unique_origin("snap"),
        GpuModelResource::AcceleratorType,
    );
    let snapshot = adapter.snapshot().await.unwrap();
    assert!(
        snapshot.version.starts_with(version_prefix),
        "{var} at {url} runs {}, expected {version_prefix}",
        snapshot.version
    );
    let gpu_nodes: Vec<_> = snapshot
        .nodes
        .iter()
        .filter(|n| !n.total.gpus.is_zero())
        .collect();
    let total: u64 = gpu_nodes.iter().map(|n| n.total.gpus.units()).sum();
    assert_eq!(
        Quantity::from_units(total),
        Quantity::whole(gpus),
        "{snapshot:#?}"
    );
    let model = GpuModel::parse(model).unwrap();
    assert!(
        gpu_nodes
            .iter()
            .all(|n| n.gpu_model.as_ref() == Some(&model)),
        "{snapshot:#?}"
    );
    let gpu_resource = format!("gpu_{}", model.as_str().to_ascii_lowercase());
    assert!(
        gpu_nodes
            .iter()
            .all(|n| n.total.custom.contains_key(&gpu_resource)),
        "{snapshot:#?}"
    );
    assert!(snapshot
        .nodes
        .iter()
        .all(|n| n.total.cpus >= n.free.cpus && n.total.memory.0 > 0));
}

#[tokio::test]
async fn snapshot_of_head_a_shows_four_a100() {
    snapshot_shows(common::HEAD_A, "ray 2.31.0", "A100", 4).await;
}

#[tokio::test]
async fn snapshot_of_head_b_shows_two_l4() {
    snapshot_shows(common::HEAD_B, "ray ", "L4", 2).await;
}

/// One A100 asked through either model convention reaches the job as a GPU.
#[tokio::test]
async fn a100_job_on_head_a_gets_a_gpu() {
    let url = common::head_url(common::HEAD_A);
    for mode in [GpuModelResource::AcceleratorType, GpuModelResource::Custom] {
        let adapter = common::adapter("ray-a", &url, &common::unique_origin("gpu"), mode);
        let id = format!("{}-cuda-{mode:?}", adapter.origin()).to_ascii_lowercase();
        let entrypoint =
            "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES RAYBROKER_TEST=$RAYBROKER_TEST";
        let ack = adapter
            .submit(&request(&id, entrypoint, a_gpu_of("a100")))
            .await
            .unwrap();
        assert_eq!(ack, SubmitAck::Created);
        let status = common::wait_final(adapter.as_ref(), &id, FINISH).await;
        assert_eq!(status.state, RemoteState::Succeeded, "{mode:?}: {status:?}");
        let log = adapter.logs(&id, 0).await.unwrap().text;
        let devices = log
            .lines()
            .find_map(|line| line.strip_prefix("CUDA_VISIBLE_DEVICES="))
            .unwrap_or_else(|| panic!("{mode:?}: no CUDA_VISIBLE_DEVICES line in {log:?}"));
        let (devices, env) = devices.split_once(' ').unwrap_or((devices, ""));
        assert!(
            !devices.is_empty() && devices.chars().all(|c| c.is_ascii_digit()),
            "{mode:?}: one GPU index expected, got {devices:?} in {log:?}"
        );
        assert_eq!(
            env, "RAYBROKER_TEST=yes",
            "{mode:?}: extra_env must reach the job"
        );
        adapter.cleanup(&id).await.unwrap();
    }
}

#[tokio::test]
async fn absent_gpu_model_is_refused_before_submitting() {
    let url = common::head_url(common::HEAD_A);
    let adapter = common::adapter(
        "ray-a",
        &url,
        &common::unique_origin("absent"),
        GpuModelResource::AcceleratorType,
    );
    let id = format!("{}-l4", adapter.origin());
    let err = adapter
        .submit(&request(&id, "true", a_gpu_of("L4")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
    assert!(err.message.contains("A100"), "{err}");
    assert_eq!(
        adapter.status(&id).await.unwrap().state,
        RemoteState::NotFound
    );
}

async fn exit_code_is_reported(var: &str) {
    let url = common::head_url(var);
    let adapter = common::adapter(
        var,
        &url,
        &common::unique_origin("exit"),
        GpuModelResource::AcceleratorType,
    );
    let id = format!("{}-exit", adapter.origin());
    adapter
        .submit(&request(&id, "echo failing; exit 42", small()))
        .await
        .unwrap();
    let status = common::wait_final(adapter.as_ref(), &id, FINISH).await;
    assert_eq!(
        (status.state, status.exit_code),
        (RemoteState::Failed, Some(42)),
        "{status:?}"
    );
    assert!(status.message.contains("exit code 42"), "{status:?}");
    adapter.cleanup(&id).await.unwrap();
}

#[tokio::test]
async fn exit_code_is_reported_by_head_a() {
    exit_code_is_reported(common::HEAD_A).await;
}

#[tokio::test]
async fn exit_code_is_reported_by_head_b() {
    exit_code_is_reported(common::HEAD_B).await;
}

/// A job submitted without any origin (by a person, with the Ray CLI) is not ours.
#[tokio::test]
async fn untagged_jobs_are_not_listed() {
    let url = common::head_url(common::HEAD_B);
    let adapter = common::adapter(
        "ray-b",
        &url,
        &common::unique_origin("untagged"),
        GpuModelResource::AcceleratorType,
    );
    let id = format!("{}-raw", adapter.origin());
    let body = SubmitBody {
        entrypoint: "true".into(),
        submission_id: id.clone(),
        entrypoint_num_cpus: Some(0.1),
        ..SubmitBody::default()
    };
    adapter.client().submit(&body).await.unwrap();
    let listed = adapter.list_owned().await.unwrap();
    assert!(
        listed.iter().all(|job| job.submission_id != id),
        "{listed:?}"
    );
    common::wait_final(adapter.as_ref(), &id, FINISH).await;
    adapter.cleanup(&id).await.unwrap();
}

/// Ray deletes only final jobs; the adapter says so instead of a bare 500.
#[tokio::test]
async fn cleanup_of_running_job_is_rejected() {
    let url = common::head_url(common::HEAD_B);
    let adapter = common::adapter(
        "ray-b",
        &url,
        &common::unique_origin("running"),
        GpuModelResource::AcceleratorType,
    );
    let id = format!("{}-sleep", adapter.origin());
    adapter
        .submit(&request(&id, "sleep 60", small()))
        .await
        .unwrap();
    let err = adapter.cleanup(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
    adapter.cancel(&id).await.unwrap();
    let status = common::wait_final(adapter.as_ref(), &id, FINISH).await;
    assert!(
        matches!(status.state, RemoteState::Stopped | RemoteState::Failed),
        "{status:?}"
    );
    adapter.cleanup(&id).await.unwrap();
}

/// No head listening: every call is Unavailable, after the bounded retries.
#[tokio::test]
async fn unreachable_head_is_unavailable() {
    let mut config = RayClusterConfig::new("http://127.0.0.1:9", "rbtest");
    config.max_retries = 1;
    let adapter = RayAdapter::new("nowhere", config).unwrap();
    let started = std::time::Instant::now();
    let err = adapter.snapshot().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retries must be bounded"
    );
    assert!(
        err.message.contains("/api/"),
        "the message names the call: {err}"
    );
}
