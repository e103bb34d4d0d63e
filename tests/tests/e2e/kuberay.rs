//! A KubeRay cluster in the real broker: the Kubernetes API test server (in
//! this process) in front of head B, added to the test broker's config as a
//! `kind: kuberay` cluster whose only GPU model, T4, no Ray head offers.
//!
//! - a T4 job is routed there, its RayJob passes the CRD schema, it runs on
//!   the real head and its log comes back through the broker;
//! - a malformed template stops the broker at start with the field named;
//! - a T4 job asking for half a GPU is refused at submit (pods get whole GPUs);
//! - cancel tears the job's cluster down and leaves its RayJob terminating
//!   with the cancel's record; `clusters cleanup` (via the admin endpoint)
//!   then leaves nothing of the broker's on the cluster.

use std::path::PathBuf;
use std::time::Duration;

use raybroker_core::JobState;
use raybroker_kube_testserver::store::Resource;
use raybroker_kube_testserver::{gpu_node, schema, TestServer, TestServerConfig};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{gpu_spec, TestEnv};

const CLUSTER: &str = "gke";
const TOKEN: &str = "e2e-kube-token";

async fn test_server(head_b: &str) -> TestServer {
    TestServer::start(TestServerConfig {
        crds_dir: schema::crds_dir(),
        ray_url: head_b.to_string(),
        token: Some(TOKEN.to_string()),
        nodes: vec![gpu_node(
            "t4-1",
            "cloud.google.com/gke-accelerator",
            "nvidia-tesla-t4",
            2,
        )],
    })
    .await
    .expect("the kubernetes api test server starts")
}

fn config_path(env: &TestEnv) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(&env.origin)
        .join("broker.yaml")
}

/// The test broker's config with the KubeRay cluster (`template` as given)
/// and the tenant made an admin (cleanup is an admin's command).
fn with_kuberay(config: &str, kubeconfig: &str, label_value: &str) -> String {
    let entry = format!(
        r#"  - name: {CLUSTER}
    kind: kuberay
    tier: 1
    pending_allowance: 2
    kuberay:
      kubeconfig: "{kubeconfig}"
      namespace: ray-jobs
      ttl_after_finished: 1s
      template:
        ray_version: 2.60.0
        image: rayproject/ray:2.60.0-gpu
        worker_groups:
          - gpu_model: T4
            label_value: "{label_value}"
            tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
"#
    );
    let at = config
        .find("\nloops:")
        .expect("a loops section after the clusters");
    let config = format!("{}\n{}{}", &config[..at], entry.trim_end(), &config[at..]);
    config.replacen("{name: e2e, ", "{name: e2e, admin: true, ", 1)
}

/// Writes `env`'s config with the KubeRay cluster added to `path`.
fn write_config(env: &TestEnv, server: &TestServer, label_value: &str, path: &std::path::Path) {
    let kubeconfig = config_path(env).with_file_name("kubeconfig.yaml");
    std::fs::write(&kubeconfig, server.kubeconfig(&json!({"token": TOKEN}))).unwrap();
    let original = std::fs::read_to_string(config_path(env)).unwrap();
    let config = with_kuberay(&original, &kubeconfig.display().to_string(), label_value);
    std::fs::write(path, config).unwrap();
}

fn ours(server: &TestServer, resource: Resource, origin: &str) -> Vec<Value> {
    server.objects_of_origin(resource, origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_t4_job_runs_as_a_rayjob_and_cleanup_leaves_nothing() {
    let mut env = TestEnv::start("kuberay").await;
    let server = test_server(&env.heads.b).await;
    write_config(&env, &server, "nvidia-tesla-t4", &config_path(&env));
    env.kill();
    env.restart().await;

    let id = env
        .submit(&gpu_spec("echo kuberay-e2e-$((20 + 22))", 1, "T4"))
        .await;
    let job = env.wait_finished(&id, Duration::from_secs(120)).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
    assert_eq!(job.cluster.as_deref(), Some(CLUSTER), "{job:#?}");
    let logs = env.complete_logs(&id, Duration::from_secs(30)).await;
    assert!(logs.contains("kuberay-e2e-42"), "{logs:?}");
    let jobs = ours(&server, Resource::RayJob, &env.origin);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0]["metadata"]["labels"]["raybroker.io/job-id"],
        json!(id)
    );
    assert!(server
        .shared()
        .validate(Resource::RayJob, &jobs[0])
        .is_empty());
    assert_eq!(server.own_violations(), Vec::<String>::new());

    // Half a T4 cannot be had on pods with whole GPUs: refused at submit.
    let mut half = gpu_spec("echo never", 1, "T4");
    half["resources"]["gpus"] = json!(0.5);
    let (status, body) = env.post_job(&half).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("whole GPUs"), "{body}");

    // A running job, cancelled: its cluster goes; its RayJob is being deleted
    // and keeps the cancel's record (a restarted broker reads it back) until
    // the garbage collector's cleanup, or `clusters cleanup` below, lets it go.
    let long = env.submit(&gpu_spec("sleep 300", 1, "T4")).await;
    env.wait_state(&long, JobState::Running, Duration::from_secs(60))
        .await;
    env.cancel(&long).await;
    let job = env
        .wait_state(&long, JobState::Cancelled, Duration::from_secs(60))
        .await;
    assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
    let of_long = |resource| {
        ours(&server, resource, &env.origin)
            .into_iter()
            .filter(|o| o["metadata"]["labels"]["raybroker.io/job-id"] == json!(long))
            .collect::<Vec<Value>>()
    };
    let rayjob = &of_long(Resource::RayJob)[0];
    assert!(
        rayjob["metadata"]["deletionTimestamp"].is_string()
            && rayjob["metadata"]["annotations"]["raybroker.io/cancelled-at"].is_string(),
        "{rayjob}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !of_long(Resource::RayCluster).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cancelled job's RayCluster stayed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Cleanup: the dry run lists what is left, the DELETE removes it all.
    let path = format!("/v1/clusters/{CLUSTER}/created");
    let (status, listed) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{listed}");
    let (status, deleted) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(listed["objects"], deleted["objects"]);
    assert_eq!(server.left_of_origin(&env.origin), []);
    let (status, after) = env.call(Method::GET, &path, None).await;
    assert_eq!((status, after["objects"].clone()), (200, json!([])));
    let (status, body) = env
        .call(Method::GET, "/v1/clusters/head-a/created", None)
        .await;
    assert_eq!(
        status, 422,
        "a plain Ray cluster has nothing to clean up: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_template_stops_the_broker_naming_the_field() {
    let env = TestEnv::start("kuberay-bad").await;
    let server = test_server(&env.heads.b).await;
    let bad = config_path(&env).with_file_name("bad.yaml");
    write_config(&env, &server, "nvidia tesla t4", &bad);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_raybroker-e2e-broker"))
        .arg(&bad)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the broker");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the broker") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the broker started on a malformed template");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("clusters[2].kuberay.template.worker_groups[0].label_value"),
        "{stderr}"
    );
    assert!(server.requests() == 0, "nothing reached the cluster");
}
