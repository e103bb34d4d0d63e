use std::time::Duration;

use raybroker_adapter::NodeResources;
use raybroker_core::{JobId, JobSpec, TenantId};

use super::*;

fn config() -> KubeRayClusterConfig {
    let mut config: KubeRayClusterConfig =
        serde_norway::from_str(crate::config::tests::EPHEMERAL).unwrap();
    config
        .template
        .as_mut()
        .unwrap()
        .worker_groups
        .push(serde_norway::from_str("{gpu_model: A100, label_value: nvidia-tesla-a100}").unwrap());
    config.validate().unwrap();
    config
}

fn request(resources: Resources) -> SubmitRequest {
    SubmitRequest {
        submission_id: "rb-01jabcdefghjkmnpqrstvwxyz0-1".into(),
        job_id: JobId::generate(1_700_000_000_000),
        tenant: TenantId::new("vision").unwrap(),
        attempt: 1,
        spec: JobSpec {
            entrypoint: "python train.py".into(),
            resources,
            time_limit: Some(Duration::from_secs(7200)),
            ..JobSpec::default()
        },
        extra_env: BTreeMap::from([("TRACEPARENT".to_string(), "00-abc".to_string())]),
    }
}

fn gpu_job(models: &[&str], gpus: u64) -> Resources {
    Resources {
        cpus: Quantity::from_units(15_000),
        memory: Bytes(16 << 30),
        gpus: Quantity::whole(gpus),
        gpu_types: models.iter().map(|m| GpuModel::parse(m).unwrap()).collect(),
        ..Resources::default()
    }
}

#[test]
fn an_ephemeral_gpu_job_gets_its_own_worker_group() {
    let config = config();
    let req = request(gpu_job(&["L4"], 2));
    let group = choose_group(&config, &req.spec.resources, &[]).unwrap();
    let job = build(&req, &config, group).unwrap();
    let spec = &job["spec"];
    assert_eq!(job["metadata"]["name"], "rb-01jabcdefghjkmnpqrstvwxyz0-1");
    assert_eq!(job["metadata"]["labels"][LABEL_ORIGIN], "prod-broker");
    assert_eq!(
        job["metadata"]["annotations"][ANNOTATION_SUBMISSION_ID],
        req.submission_id
    );
    assert_eq!(spec["entrypointNumCpus"], 1.5);
    assert_eq!(spec["entrypointNumGpus"], 2.0);
    assert_eq!(spec["activeDeadlineSeconds"], 7200);
    assert_eq!(spec["shutdownAfterJobFinishes"], true);
    assert_eq!(spec["ttlSecondsAfterFinished"], 300);
    assert!(spec["runtimeEnvYAML"]
        .as_str()
        .unwrap()
        .contains("TRACEPARENT: 00-abc"));
    let cluster = &spec["rayClusterSpec"];
    assert_eq!(cluster["rayVersion"], "2.46.0");
    assert_eq!(cluster["headGroupSpec"]["rayStartParams"]["num-gpus"], "0");
    let worker = &cluster["workerGroupSpecs"][0];
    assert_eq!(worker["groupName"], "gpu-l4");
    assert_eq!(worker["replicas"], 1);
    let pod = &worker["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"]["cloud.google.com/gke-accelerator"],
        "nvidia-l4"
    );
    assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
    let limits = &pod["containers"][0]["resources"]["limits"];
    assert_eq!(limits["nvidia.com/gpu"], "2");
    assert_eq!(limits["cpu"], "1500m");
    assert_eq!(limits["memory"], (16u64 << 30).to_string());
    assert_eq!(
        worker["template"]["metadata"]["labels"][LABEL_JOB_ID],
        req.job_id.as_str()
    );
}

#[test]
fn the_freest_accepted_model_wins() {
    let config = config();
    let node = |model: &str, free: u64| NodeCapacity {
        id: model.into(),
        gpu_model: Some(GpuModel::parse(model).unwrap()),
        total: NodeResources::default(),
        free: NodeResources {
            gpus: Quantity::whole(free),
            ..NodeResources::default()
        },
    };
    let nodes = [node("L4", 0), node("A100", 4)];
    let resources = gpu_job(&["L4", "A100"], 1);
    let group = choose_group(&config, &resources, &nodes).unwrap().unwrap();
    assert_eq!(group.gpu_model.as_str(), "A100");
    let any = gpu_job(&[], 1);
    assert_eq!(
        choose_group(&config, &any, &[])
            .unwrap()
            .unwrap()
            .gpu_model
            .as_str(),
        "L4"
    );
}

#[test]
fn a_cpu_job_runs_on_a_head_of_its_size() {
    let config = config();
    let req = request(Resources {
        cpus: Quantity::whole(4),
        ..Resources::default()
    });
    let job = build(&req, &config, None).unwrap();
    let cluster = &job["spec"]["rayClusterSpec"];
    assert!(cluster.get("workerGroupSpecs").is_none());
    let head = &cluster["headGroupSpec"]["template"]["spec"]["containers"][0];
    assert_eq!(head["resources"]["requests"]["cpu"], "4");
    assert!(job["spec"].get("entrypointNumGpus").is_none());
}

#[test]
fn shared_mode_selects_the_existing_cluster() {
    let mut config = config();
    config.mode = Mode::Shared;
    config
        .cluster_selector
        .insert("ray.io/cluster".into(), "shared".into());
    let req = request(gpu_job(&["L4"], 1));
    let job = build(&req, &config, None).unwrap();
    assert_eq!(job["spec"]["clusterSelector"]["ray.io/cluster"], "shared");
    assert!(job["spec"].get("rayClusterSpec").is_none());
    assert!(job["spec"].get("shutdownAfterJobFinishes").is_none());
}

#[test]
fn impossible_requests_are_refused_before_building() {
    let config = config();
    let cases = [
        (
            gpu_job(&["H100"], 1),
            "no worker group for H100; it offers: L4, A100",
        ),
        (
            Resources {
                gpus: Quantity::from_units(5_000),
                ..gpu_job(&["L4"], 1)
            },
            "whole GPUs",
        ),
        (
            Resources {
                gpus: Quantity::ZERO,
                ..gpu_job(&["L4"], 1)
            },
            "gpus is 0",
        ),
    ];
    for (resources, words) in cases {
        let err = build(&request(resources), &config, None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert!(err.message.contains(words), "{}", err.message);
    }
}

#[test]
fn cpu_quantities_round_up_to_millicores() {
    assert_eq!(cpu_quantity(Quantity::whole(2)), "2");
    assert_eq!(cpu_quantity(Quantity::from_units(2_500)), "250m");
    assert_eq!(cpu_quantity(Quantity::from_units(1)), "1m");
}
