use std::time::Duration;

use raybroker_adapter::{ErrorKind, RemoteState, SubmitAck, SubmitRequest};
use raybroker_core::{Bytes, GpuModel, JobId, JobSpec, Quantity, Resources, TenantId};

use super::Cluster;
use crate::config::{NodeShape, SimClusterConfig};

const GIB: u64 = 1 << 30;

fn model(name: &str) -> GpuModel {
    GpuModel::parse(name).unwrap()
}

fn gpu_cluster(nodes: u32, gpus: u64) -> Cluster {
    let config = SimClusterConfig::new(
        "ours",
        vec![NodeShape::gpu(
            nodes,
            16,
            Bytes(64 * GIB),
            gpus,
            model("A100"),
        )],
    );
    Cluster::new(&config, 0)
}

fn job(submission_id: &str, entrypoint: &str, gpus: Quantity, nodes: u32) -> SubmitRequest {
    SubmitRequest {
        submission_id: submission_id.to_string(),
        job_id: JobId::generate(1),
        tenant: TenantId::new("t").unwrap(),
        attempt: 1,
        spec: JobSpec {
            entrypoint: entrypoint.to_string(),
            resources: Resources {
                gpus,
                nodes,
                ..Resources::default()
            },
            ..JobSpec::default()
        },
        extra_env: Default::default(),
    }
}

fn gpus(n: u64) -> Quantity {
    Quantity::whole(n)
}

fn share(units: u64) -> Quantity {
    Quantity::from_units(units)
}

fn full_log(cluster: &mut Cluster, id: &str, now: u64) -> String {
    cluster.logs(id, 0, now).unwrap().text
}

#[test]
fn gang_starts_all_or_nothing_and_backfills() {
    let mut cluster = gpu_cluster(2, 4);
    cluster
        .submit(&job("a", "sleep 10", gpus(3), 1), "ours", 0)
        .unwrap();
    cluster
        .submit(&job("gang", "sleep 10", gpus(2), 2), "ours", 0)
        .unwrap();
    cluster
        .submit(&job("small", "sleep 10", gpus(1), 1), "ours", 0)
        .unwrap();
    // `gang` needs two nodes with 2 free GPUs; only one has them, so it
    // waits, and the later `small` starts around it (backfill).
    assert_eq!(cluster.in_state(RemoteState::Pending, 0), ["gang"]);
    assert_eq!(cluster.in_state(RemoteState::Running, 0), ["a", "small"]);
    assert_eq!(cluster.allocation("gang", 0), Some(Vec::new()));
    // When both end at 10 s, the gang gets one node each, on two devices.
    let status = cluster.status("gang", 10_000);
    assert_eq!(status.state, RemoteState::Running);
    assert_eq!(status.started_at_ms, Some(10_000));
    let held = cluster.allocation("gang", 10_000).unwrap();
    let nodes: Vec<&str> = held.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(nodes, ["a100-0", "a100-1"]);
    assert!(held.iter().all(|a| a.gpus.len() == 2));
    let log = full_log(&mut cluster, "gang", 10_000);
    assert!(
        log.contains("started on node a100-0 with CUDA_VISIBLE_DEVICES=0,1\n"),
        "{log}"
    );
    assert!(
        log.contains("started on node a100-1 with CUDA_VISIBLE_DEVICES=0,1\n"),
        "{log}"
    );
}

#[test]
fn pending_jobs_start_in_submission_order_when_capacity_frees() {
    let mut cluster = gpu_cluster(1, 1);
    cluster
        .submit(&job("first", "sleep 5", gpus(1), 1), "ours", 0)
        .unwrap();
    cluster
        .submit(&job("second", "sleep 3", gpus(1), 1), "ours", 1)
        .unwrap();
    cluster
        .submit(&job("third", "sleep 3", gpus(1), 1), "ours", 2)
        .unwrap();
    // One jump over every event: each job starts when the one before ends.
    let second = cluster.status("second", 60_000);
    let third = cluster.status("third", 60_000);
    assert_eq!(
        (second.started_at_ms, second.ended_at_ms),
        (Some(5_000), Some(8_000))
    );
    assert_eq!(
        (third.started_at_ms, third.ended_at_ms),
        (Some(8_000), Some(11_000))
    );
    assert_eq!(third.state, RemoteState::Succeeded);
    assert_eq!(third.exit_code, Some(0));
}

#[test]
fn fractional_gpus_are_honoured_exactly() {
    let mut cluster = gpu_cluster(1, 2);
    for (id, units) in [
        ("q1", 2_500),
        ("q2", 2_500),
        ("q3", 2_500),
        ("three", 3_333),
    ] {
        cluster
            .submit(&job(id, "sleep 100", share(units), 1), "ours", 0)
            .unwrap();
    }
    // Shares pack onto the fullest device that has room: 0.75 + 0.3333 does
    // not fit one device, so the last share opens device 1.
    let devices = |c: &mut Cluster, id: &str| c.allocation(id, 0).unwrap()[0].gpus.clone();
    assert_eq!(devices(&mut cluster, "q1"), [(0, share(2_500))]);
    assert_eq!(devices(&mut cluster, "q3"), [(0, share(2_500))]);
    assert_eq!(devices(&mut cluster, "three"), [(1, share(3_333))]);
    cluster
        .submit(&job("q4", "sleep 100", share(2_500), 1), "ours", 0)
        .unwrap();
    assert_eq!(devices(&mut cluster, "q4"), [(0, share(2_500))]);
    // Device 0 is exactly full; 0.6667 is left on device 1.
    let snapshot = cluster.snapshot("v", 0);
    assert_eq!(snapshot.nodes[0].free.gpus, share(6_667));
    // Snapshots count whole free devices plus the largest share, never a
    // sum of shares no one job could use: device 0 frees 0.25 of itself.
    cluster.cancel("q4", 0);
    assert_eq!(cluster.snapshot("v", 0).nodes[0].free.gpus, share(6_667));
    cluster
        .submit(&job("q5", "sleep 100", share(2_500), 1), "ours", 0)
        .unwrap();
    assert_eq!(devices(&mut cluster, "q5"), [(0, share(2_500))]);
    cluster
        .submit(&job("whole", "sleep 1", gpus(1), 1), "ours", 0)
        .unwrap();
    assert_eq!(cluster.in_state(RemoteState::Pending, 0), ["whole"]);
    cluster
        .submit(&job("fits", "sleep 1", share(6_667), 1), "ours", 0)
        .unwrap();
    assert_eq!(devices(&mut cluster, "fits"), [(1, share(6_667))]);
    assert_eq!(cluster.snapshot("v", 0).nodes[0].free.gpus, Quantity::ZERO);
    let log = full_log(&mut cluster, "three", 0);
    assert!(
        log.contains("CUDA_VISIBLE_DEVICES=1 (0.3333 of GPU 1)"),
        "{log}"
    );
}

#[test]
fn snapshot_shows_free_capacity_and_pending_jobs() {
    let config = SimClusterConfig::new(
        "ours",
        vec![
            NodeShape::gpu(1, 16, Bytes(64 * GIB), 4, model("L4")),
            NodeShape::cpu(1, 8, Bytes(32 * GIB)),
        ],
    );
    let mut cluster = Cluster::new(&config, 0);
    let mut heavy = job("heavy", "sleep 10", gpus(4), 1);
    heavy.spec.resources.cpus = Quantity::whole(10);
    heavy.spec.resources.memory = Bytes(16 * GIB);
    cluster.submit(&heavy, "ours", 0).unwrap();
    cluster
        .submit(&job("waits", "sleep 10", gpus(1), 1), "ours", 0)
        .unwrap();
    let snapshot = cluster.snapshot("sim test", 2_000);
    assert_eq!(snapshot.taken_at_ms, 2_000);
    assert_eq!(snapshot.pending_jobs, 1);
    assert_eq!(snapshot.version, "sim test");
    let l4 = &snapshot.nodes[0];
    assert_eq!(
        (l4.id.as_str(), l4.gpu_model.clone()),
        ("l4-0", Some(model("L4")))
    );
    assert_eq!(l4.free.gpus, Quantity::ZERO);
    assert_eq!(l4.free.cpus, Quantity::whole(6));
    assert_eq!(l4.free.memory, Bytes(48 * GIB));
    assert_eq!(snapshot.nodes[1].id, "cpu-1");
    assert_eq!(snapshot.nodes[1].free, snapshot.nodes[1].total);
    let later = cluster.snapshot("sim test", 10_000);
    assert_eq!(later.pending_jobs, 0, "`waits` starts when `heavy` ends");
    assert_eq!(later.nodes[0].free.gpus, Quantity::whole(3));
}

#[test]
fn gpu_models_custom_resources_and_impossible_shapes() {
    let config = SimClusterConfig::new(
        "ours",
        vec![NodeShape {
            custom: [("license".to_string(), Quantity::whole(1))].into(),
            ..NodeShape::gpu(1, 8, Bytes(32 * GIB), 2, model("L4"))
        }],
    );
    let mut cluster = Cluster::new(&config, 0);
    let mut wants_a100 = job("a100", "sleep 1", gpus(1), 1);
    wants_a100.spec.resources.gpu_types = vec![model("A100")];
    let err = cluster.submit(&wants_a100, "ours", 0).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    let mut wants_l4 = job("l4", "sleep 1", gpus(1), 1);
    wants_l4.spec.resources.gpu_types = vec![model("A100"), model("L4")];
    wants_l4.spec.resources.custom = [("license".to_string(), Quantity::whole(1))].into();
    assert_eq!(cluster.submit(&wants_l4, "ours", 0), Ok(SubmitAck::Created));
    let mut second_license = job("l4-again", "sleep 1", gpus(1), 1);
    second_license.spec.resources.custom = [("license".to_string(), Quantity::whole(1))].into();
    cluster.submit(&second_license, "ours", 0).unwrap();
    assert_eq!(cluster.in_state(RemoteState::Pending, 0), ["l4-again"]);
    let err = cluster
        .submit(&job("two-nodes", "sleep 1", gpus(1), 2), "ours", 0)
        .unwrap_err();
    assert!(err.message.contains("needs 2"), "{}", err.message);
    let err = cluster
        .submit(&job("odd", "sleep 1", share(15_000), 1), "ours", 0)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert_eq!(cluster.status("odd", 0).state, RemoteState::NotFound);
}

#[test]
fn backend_capabilities_are_enforced() {
    let mut config = SimClusterConfig::new(
        "ours",
        vec![NodeShape::gpu(2, 8, Bytes(32 * GIB), 2, model("L4"))],
    );
    config.capabilities.fractional_gpus = false;
    config.capabilities.multi_node = false;
    config.capabilities.gpu_models = false;
    let mut cluster = Cluster::new(&config, 0);
    let err = cluster
        .submit(&job("shared", "sleep 1", share(5_000), 1), "ours", 0)
        .unwrap_err();
    assert!(err.message.contains("whole GPUs"), "{}", err.message);
    let err = cluster
        .submit(&job("wide", "sleep 1", gpus(1), 2), "ours", 0)
        .unwrap_err();
    assert!(err.message.contains("single-node"), "{}", err.message);
    // Models are not enforced: an A100 request runs on an L4 node.
    let mut wants_a100 = job("any", "sleep 1", gpus(1), 1);
    wants_a100.spec.resources.gpu_types = vec![model("A100")];
    assert_eq!(
        cluster.submit(&wants_a100, "ours", 0),
        Ok(SubmitAck::Created)
    );
    assert_eq!(cluster.in_state(RemoteState::Running, 0), ["any"]);
}

#[test]
fn duplicates_are_adopted_and_run_once() {
    let mut cluster = gpu_cluster(1, 1);
    let request = job("dup", "sleep 1", gpus(1), 1);
    assert_eq!(cluster.submit(&request, "ours", 0), Ok(SubmitAck::Created));
    assert_eq!(
        cluster.submit(&request, "ours", 500),
        Ok(SubmitAck::AlreadyExists)
    );
    assert_eq!(
        cluster.submit(&request, "ours", 5_000),
        Ok(SubmitAck::AlreadyExists)
    );
    assert_eq!(cluster.starts_of("dup"), 1);
    assert_eq!(cluster.owned_by("ours", 5_000).len(), 1);
    assert_eq!(cluster.status("dup", 5_000).state, RemoteState::Succeeded);
}

#[test]
fn exit_fails_at_once_and_fail_after_waits() {
    let mut cluster = gpu_cluster(1, 1);
    cluster
        .submit(&job("three", "exit 3", Quantity::ZERO, 1), "ours", 1_000)
        .unwrap();
    let status = cluster.status("three", 1_000);
    assert_eq!(
        (status.state, status.exit_code),
        (RemoteState::Failed, Some(3))
    );
    assert_eq!(
        (status.started_at_ms, status.ended_at_ms),
        (Some(1_000), Some(1_000))
    );
    assert!(status.message.contains("code 3"), "{}", status.message);
    cluster
        .submit(
            &job("late", "fail-after 2 9", Quantity::ZERO, 1),
            "ours",
            1_000,
        )
        .unwrap();
    assert_eq!(cluster.status("late", 2_999).state, RemoteState::Running);
    let status = cluster.status("late", 3_000);
    assert_eq!(
        (status.state, status.exit_code),
        (RemoteState::Failed, Some(9))
    );
    let log = full_log(&mut cluster, "late", 3_000);
    assert!(
        log.starts_with("[sim] started on node a100-0 with CUDA_VISIBLE_DEVICES=\n"),
        "{log}"
    );
    assert!(log.ends_with("[sim] exited with code 9\n"), "{log}");
}

#[test]
fn logs_appear_as_time_passes_and_cursors_resume() {
    let mut cluster = gpu_cluster(1, 1);
    cluster
        .submit(
            &job("talk", "echo one; sleep 5; echo two", Quantity::ZERO, 1),
            "ours",
            0,
        )
        .unwrap();
    let first = cluster.logs("talk", 0, 1_000).unwrap();
    assert!(
        first.text.ends_with("one\n") && !first.text.contains("two"),
        "{}",
        first.text
    );
    assert_eq!(first.next_cursor, first.text.len() as u64);
    let rest = cluster.logs("talk", first.next_cursor, 5_000).unwrap();
    assert_eq!(rest.text, "two\n[sim] exited with code 0\n");
    let end = cluster.logs("talk", rest.next_cursor, 9_000).unwrap();
    assert_eq!((end.text.as_str(), end.next_cursor), ("", rest.next_cursor));
    assert_eq!(
        cluster.logs("nobody", 0, 9_000).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn cancel_stops_pending_and_running_jobs_and_frees_capacity() {
    let mut cluster = gpu_cluster(1, 1);
    cluster
        .submit(
            &job("runs", "echo a; sleep 60; echo b", gpus(1), 1),
            "ours",
            0,
        )
        .unwrap();
    cluster
        .submit(&job("waits", "sleep 60", gpus(1), 1), "ours", 0)
        .unwrap();
    cluster
        .submit(&job("later", "sleep 60", gpus(1), 1), "ours", 0)
        .unwrap();
    cluster.cancel("waits", 1_000);
    assert_eq!(cluster.status("waits", 1_000).state, RemoteState::Stopped);
    assert_eq!(cluster.starts_of("waits"), 0);
    assert_eq!(
        cluster.snapshot("v", 1_000).pending_jobs,
        1,
        "only `later` waits now"
    );
    cluster.cancel("runs", 2_000);
    let status = cluster.status("runs", 2_000);
    assert_eq!(
        (status.state, status.ended_at_ms),
        (RemoteState::Stopped, Some(2_000))
    );
    assert_eq!(status.exit_code, None);
    assert_eq!(cluster.status("later", 2_000).started_at_ms, Some(2_000));
    assert_eq!(cluster.snapshot("v", 2_000).pending_jobs, 0);
    // The stopped job's planned end (60 s) is no event any more: `later`
    // runs its full minute.
    assert_eq!(cluster.status("later", 61_000).state, RemoteState::Running);
    assert_eq!(cluster.status("later", 62_000).ended_at_ms, Some(62_000));
    // The stopped job's log ends with the stop: the text it would have
    // written later never appears.
    let log = full_log(&mut cluster, "runs", 100_000);
    assert!(log.ends_with("a\n[sim] stopped on request\n"), "{log}");
    cluster.cancel("runs", 3_000);
    cluster.cancel("nobody", 3_000);
    assert_eq!(cluster.status("runs", 3_000).state, RemoteState::Stopped);
}

#[test]
fn cleanup_forgets_only_finished_jobs() {
    let mut cluster = gpu_cluster(1, 1);
    cluster
        .submit(&job("long", "sleep 60", Quantity::ZERO, 1), "ours", 0)
        .unwrap();
    assert_eq!(
        cluster.cleanup("long", 0).unwrap_err().kind,
        ErrorKind::Rejected
    );
    assert_eq!(cluster.status("long", 0).state, RemoteState::Running);
    cluster.cleanup("long", 60_000).unwrap();
    assert_eq!(cluster.status("long", 60_000).state, RemoteState::NotFound);
    assert!(cluster.owned_by("ours", 60_000).is_empty());
    cluster.cleanup("long", 60_000).unwrap();
    assert_eq!(
        cluster.starts_of("long"),
        1,
        "the start count outlives the record"
    );
}

#[test]
fn unknown_entrypoints_run_for_the_default_duration() {
    let mut config = SimClusterConfig::new("ours", vec![NodeShape::cpu(1, 4, Bytes(GIB))]);
    config.default_duration = Duration::from_secs(30);
    let mut cluster = Cluster::new(&config, 0);
    cluster
        .submit(
            &job("train", "python train.py", Quantity::ZERO, 1),
            "ours",
            0,
        )
        .unwrap();
    assert_eq!(cluster.status("train", 29_999).state, RemoteState::Running);
    assert_eq!(
        cluster.status("train", 30_000).state,
        RemoteState::Succeeded
    );
}
