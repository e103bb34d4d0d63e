//! The adapter's own behaviour through the Kubernetes API test server:
//! credentials, what it creates, refusals before creating, capacity, and
//! leaving nothing behind.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raybroker_adapter::{ClusterAdapter, ErrorKind, RemoteState, SubmitAck, SubmitRequest};
use raybroker_core::{FailureClass, GpuModel, JobId, JobSpec, Quantity, Resources, TenantId};
use raybroker_kube_testserver::store::Resource;
use raybroker_kube_testserver::TestServer;
use raybroker_kuberay::client::RayKind;
use raybroker_kuberay::convert::cancel::ANNOTATION_CANCELLED_AT;
use raybroker_kuberay::{CancelMode, KubeRayAdapter, Mode};
use serde_json::{json, Value};

fn request(id: &str, entrypoint: &str, resources: Resources) -> SubmitRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    SubmitRequest {
        submission_id: id.to_string(),
        job_id: JobId::generate(now),
        tenant: TenantId::new("vision").unwrap(),
        attempt: 1,
        spec: JobSpec {
            entrypoint: entrypoint.to_string(),
            resources,
            ..JobSpec::default()
        },
        extra_env: BTreeMap::new(),
    }
}

fn l4_job(gpus: u64) -> Resources {
    Resources {
        cpus: Quantity::whole(1),
        gpus: Quantity::whole(gpus),
        gpu_types: vec![GpuModel::parse("L4").unwrap()],
        ..Resources::default()
    }
}

/// CPU only, so the jobs of parallel tests never wait for the head's 2 GPUs.
fn small_cpu_job() -> Resources {
    Resources {
        cpus: Quantity::from_units(1_000),
        ..Resources::default()
    }
}

fn ours(server: &TestServer, resource: Resource, origin: &str) -> Vec<Value> {
    server.objects_of_origin(resource, origin)
}

async fn wait_final(adapter: &KubeRayAdapter, id: &str) -> raybroker_adapter::RemoteStatus {
    let started = Instant::now();
    loop {
        let status = adapter.status(id).await.expect("status");
        if status.state.is_final() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{id} not final: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_running(adapter: &KubeRayAdapter, id: &str) {
    let started = Instant::now();
    loop {
        let status = adapter.status(id).await.expect("status");
        if status.state == RemoteState::Running {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60) && !status.state.is_final(),
            "{id} not running: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_gpu_job_gets_an_ephemeral_cluster_runs_and_its_logs_come_back() {
    let server = common::server().await;
    let origin = common::unique_origin("gpu");
    let adapter = common::adapter("kuberay", common::config(&server, &origin));
    let snapshot = adapter.snapshot().await.expect("snapshot");
    let l4 = snapshot
        .nodes
        .iter()
        .find(|n| n.id == "l4-1")
        .expect("the L4 node");
    assert_eq!(l4.gpu_model.as_ref().map(GpuModel::as_str), Some("L4"));
    assert_eq!(l4.free.gpus, Quantity::whole(2));
    // The pool may grow to 4 L4 nodes: 3 more can appear (the burst tier).
    let pool = snapshot
        .nodes
        .iter()
        .filter(|n| n.id.starts_with("autoscale:"))
        .count();
    assert_eq!(pool, 3);
    let cpu = snapshot
        .nodes
        .iter()
        .find(|n| n.id == "cpu-1")
        .expect("the CPU node");
    assert_eq!(cpu.gpu_model, None);

    let id = format!("rb-gpu-{}", std::process::id());
    let req = request(&id, "python -c \"print('kuberay-' + 'gpu-ok')\"", l4_job(1));
    assert_eq!(adapter.submit(&req).await.unwrap(), SubmitAck::Created);
    assert_eq!(
        adapter.submit(&req).await.unwrap(),
        SubmitAck::AlreadyExists
    );
    let jobs = ours(&server, Resource::RayJob, &origin);
    assert_eq!(jobs.len(), 1);
    let worker = &jobs[0]["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"];
    assert_eq!(
        worker["nodeSelector"]["cloud.google.com/gke-accelerator"],
        "nvidia-l4"
    );
    assert_eq!(
        worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    // The cluster and its pods carry the labels too (listable by origin).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ours(&server, Resource::RayCluster, &origin).len(), 1);
    let pods = ours(&server, Resource::Pod, &origin);
    assert!(
        pods.iter().any(|p| p["spec"]["nodeName"] == "l4-1"),
        "{pods:?}"
    );
    let busy = adapter.snapshot().await.unwrap();
    let l4 = busy.nodes.iter().find(|n| n.id == "l4-1").unwrap();
    assert_eq!(
        l4.free.gpus,
        Quantity::whole(1),
        "the worker pod holds a GPU"
    );

    let status = wait_final(&adapter, &id).await;
    assert_eq!(status.state, RemoteState::Succeeded, "{status:?}");
    assert!(status.started_at_ms.is_some() && status.ended_at_ms.is_some());
    let logs = adapter.logs(&id, 0).await.expect("logs");
    assert!(logs.text.contains("kuberay-gpu-ok"), "{logs:?}");
    // shutdownAfterJobFinishes + ttlSecondsAfterFinished (1 s) remove the cluster.
    let started = Instant::now();
    while !ours(&server, Resource::RayCluster, &origin).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the cluster outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    adapter.cleanup(&id).await.unwrap();
    for resource in [Resource::RayJob, Resource::RayCluster, Resource::Pod] {
        assert!(
            ours(&server, resource, &origin).is_empty(),
            "{resource:?} left"
        );
    }
    assert_eq!(server.own_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn impossible_requests_are_refused_before_anything_is_created() {
    let server = common::server().await;
    let origin = common::unique_origin("refuse");
    let adapter = common::adapter("kuberay", common::config(&server, &origin));
    let mut h100 = l4_job(1);
    h100.gpu_types = vec![GpuModel::parse("H100").unwrap()];
    let shared_gpu = Resources {
        gpus: Quantity::from_units(5_000),
        ..l4_job(1)
    };
    for (resources, words) in [
        (h100, "no worker group for H100"),
        (shared_gpu, "whole GPUs"),
    ] {
        let err = adapter
            .submit(&request("rb-refused-1", "true", resources))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert!(err.message.contains(words), "{err}");
    }
    assert!(server.objects(Resource::RayJob).is_empty());
    assert!(server.objects(Resource::RayCluster).is_empty());
}

#[tokio::test]
async fn the_test_server_refuses_invalid_rayjobs_naming_the_field() {
    let server = common::server().await;
    let adapter = common::adapter("kuberay", common::config(&server, "rbtest-invalid"));
    let bad = json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": "bad-job", "namespace": common::NAMESPACE},
        "spec": {"entrypoint": "true", "entrypointNumCpus": "lots", "clusterSelector": {"ray.io/cluster": "x"}},
    });
    let err = adapter
        .client()
        .create(RayKind::RayJob, &bad)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status.message.contains("spec.entrypointNumCpus"),
        "{}",
        status.message
    );
    let mut unknown = bad.clone();
    unknown["spec"]["entrypointNumCpus"] = json!(1);
    unknown["spec"]["entrypointNumCPUs"] = json!(1);
    let err = adapter
        .client()
        .create(RayKind::RayJob, &unknown)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 400);
    assert!(
        status
            .message
            .contains("unknown field \"spec.entrypointNumCPUs\""),
        "{}",
        status.message
    );
    assert!(server.objects(Resource::RayJob).is_empty());
}

#[tokio::test]
async fn exec_credential_plugins_supply_the_token_and_bad_ones_are_unauthorized() {
    let server = common::server().await;
    let plugin = |token: &str| {
        json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "sh",
            "args": ["-c", format!(
                "printf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'"
            )],
            "interactiveMode": "Never",
        }})
    };
    let mut config = common::config(&server, "rbtest-exec");
    config.kubeconfig = Some(common::write_kubeconfig(
        &server,
        "exec",
        &plugin(common::TOKEN),
    ));
    config.context = Some("test".to_string());
    let adapter = KubeRayAdapter::new("kuberay", config.clone()).unwrap();
    let snapshot = adapter
        .snapshot()
        .await
        .expect("a snapshot with the plugin's token");
    assert!(snapshot.nodes.iter().any(|n| n.id == "l4-1"));

    config.kubeconfig = Some(common::write_kubeconfig(
        &server,
        "exec-bad",
        &plugin("wrong"),
    ));
    let adapter = KubeRayAdapter::new("kuberay", config).unwrap();
    let err = adapter.snapshot().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
}

#[tokio::test]
async fn shared_mode_runs_on_the_selected_cluster() {
    let server = common::server().await;
    let origin = common::unique_origin("shared");
    let mut config = common::config(&server, &origin);
    config.mode = Mode::Shared;
    config.template = None;
    config
        .cluster_selector
        .insert("ray.io/cluster".into(), "shared-l4".into());
    let adapter = common::adapter("kuberay-shared", config);
    assert!(adapter.capabilities().fractional_gpus);
    let id = format!("rb-shared-{}", std::process::id());
    let resources = Resources {
        gpus: Quantity::from_units(5_000),
        ..l4_job(1)
    };
    adapter
        .submit(&request(&id, "echo shared-ok", resources))
        .await
        .unwrap();
    let job = &ours(&server, Resource::RayJob, &origin)[0];
    assert_eq!(
        job["spec"]["clusterSelector"]["ray.io/cluster"],
        "shared-l4"
    );
    assert!(job["spec"].get("rayClusterSpec").is_none());
    assert_eq!(
        wait_final(&adapter, &id).await.state,
        RemoteState::Succeeded
    );
    assert!(
        ours(&server, Resource::RayCluster, &origin).is_empty(),
        "shared mode creates no cluster"
    );
    adapter.cleanup(&id).await.unwrap();
}

#[tokio::test]
async fn cleanup_of_everything_and_orphan_collection_leave_nothing_of_ours() {
    let server = common::server().await;
    let origin = common::unique_origin("gc");
    let adapter = common::adapter("kuberay", common::config(&server, &origin));
    let foreign_origin = common::unique_origin("other");
    let foreign = common::adapter("kuberay", common::config(&server, &foreign_origin));
    for i in 0..2 {
        let id = format!("rb-gc-{i}-{}", std::process::id());
        adapter
            .submit(&request(&id, "sleep 60", small_cpu_job()))
            .await
            .unwrap();
    }
    let theirs = format!("rb-theirs-{}", std::process::id());
    foreign
        .submit(&request(&theirs, "sleep 60", small_cpu_job()))
        .await
        .unwrap();
    let secret =
        json!({"metadata": {"name": "rb-secret", "labels": {"raybroker.io/origin": origin}}});
    server
        .shared()
        .store
        .create(Resource::Secret, common::NAMESPACE, secret)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Orphan collection: what list_owned finds, cancel + cleanup removes.
    let owned = adapter.list_owned().await.unwrap();
    assert_eq!(owned.len(), 2, "{owned:?}");
    let first = &owned[0].submission_id;
    adapter.cancel(first).await.unwrap();
    adapter.cleanup(first).await.unwrap();
    assert_eq!(adapter.list_owned().await.unwrap().len(), 1);

    // The cleanup command's capability: list first, then delete all.
    let created = adapter
        .created_objects()
        .expect("kuberay lists what it created");
    let listed = created.list_created().await.unwrap();
    let kinds: Vec<&str> = listed.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds, ["RayCluster", "RayJob", "Secret"], "{listed:?}");
    let deleted = created.delete_created().await.unwrap();
    assert_eq!(deleted, listed);
    assert_eq!(server.left_of_origin(&origin), []);
    assert!(created.list_created().await.unwrap().is_empty());
    // The other broker's job is untouched.
    assert_eq!(foreign.list_owned().await.unwrap().len(), 1);
    foreign.cancel(&theirs).await.unwrap();
    foreign.cleanup(&theirs).await.unwrap();
}

/// The broker cancels a running job and restarts before it has seen the job
/// end: the new adapter (nothing in memory) reads the cancel back from the
/// RayJob, in both cancel modes, and its cleanup removes everything.
#[tokio::test]
async fn a_cancel_is_read_back_after_a_broker_restart() {
    let server = common::server().await;
    for mode in [CancelMode::Delete, CancelMode::Suspend] {
        let label = format!("{mode:?}").to_lowercase();
        let origin = common::unique_origin(&format!("restart-{label}"));
        let mut config = common::config(&server, &origin);
        config.cancel = mode;
        let before = common::adapter("kuberay", config.clone());
        let id = format!("rb-restart-{label}-{}", std::process::id());
        before
            .submit(&request(&id, "sleep 60", small_cpu_job()))
            .await
            .unwrap();
        wait_running(&before, &id).await;
        before.cancel(&id).await.unwrap();
        drop(before);

        let after = common::adapter("kuberay", config);
        let status = wait_final(&after, &id).await;
        assert_eq!(status.state, RemoteState::Stopped, "{label}: {status:?}");
        assert_eq!(status.failure, Some(FailureClass::Cancelled), "{label}");
        let job = &ours(&server, Resource::RayJob, &origin)[0];
        assert!(
            job["metadata"]["annotations"][ANNOTATION_CANCELLED_AT].is_string(),
            "{label}: {job}"
        );
        // Cancelling again is harmless, and garbage collection sees the job.
        after.cancel(&id).await.unwrap();
        assert_eq!(after.status(&id).await.unwrap().state, RemoteState::Stopped);
        let owned = after.list_owned().await.unwrap();
        assert_eq!(owned.len(), 1, "{label}: {owned:?}");
        assert_eq!(owned[0].state, RemoteState::Stopped);
        // The job's cluster is torn down; cleanup lets the RayJob go.
        let started = Instant::now();
        while !ours(&server, Resource::RayCluster, &origin).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{label}: cluster left"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        after.cleanup(&id).await.unwrap();
        assert!(
            ours(&server, Resource::RayJob, &origin).is_empty(),
            "{label}"
        );
        assert_eq!(
            after.status(&id).await.unwrap().state,
            RemoteState::NotFound
        );
        assert!(after.list_owned().await.unwrap().is_empty());
    }
    assert_eq!(server.own_violations(), Vec::<String>::new());
}

/// A RayJob suspended by someone else (kubectl, Kueue) is stopped, but it is
/// no cancel of the broker's: it carries no failure class, so the broker's
/// retry policy (not a cancel) decides what comes next.
#[tokio::test]
async fn a_rayjob_suspended_by_someone_else_is_not_reported_cancelled() {
    let server = common::server().await;
    let origin = common::unique_origin("foreign-suspend");
    let adapter = common::adapter("kuberay", common::config(&server, &origin));
    let id = format!("rb-suspended-{}", std::process::id());
    adapter
        .submit(&request(&id, "sleep 60", small_cpu_job()))
        .await
        .unwrap();
    wait_running(&adapter, &id).await;
    adapter
        .client()
        .merge_patch(RayKind::RayJob, &id, &json!({"spec": {"suspend": true}}))
        .await
        .unwrap();
    let status = wait_final(&adapter, &id).await;
    assert_eq!(status.state, RemoteState::Stopped, "{status:?}");
    assert_eq!(status.failure, None, "{status:?}");
    adapter.cleanup(&id).await.unwrap();
    assert!(ours(&server, Resource::RayJob, &origin).is_empty());
}
