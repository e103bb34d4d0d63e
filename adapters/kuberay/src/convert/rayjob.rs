//! The RayJob (`ray.io/v1`) for one attempt.
//!
//! Ephemeral mode builds `rayClusterSpec` from the cluster's template: a head
//! group (sized up to a CPU-only job's request, which then runs there), and
//! for a GPU job one worker group of the chosen model, `nodes` replicas of the
//! job's shape, pinned by the GPU label and the group's node selector and
//! tolerations. The entrypoint asks Ray for the job's CPUs and GPUs, so its
//! driver lands on a GPU worker. Shared mode sets `clusterSelector` instead.
//! Every object the RayJob leads to carries the origin and job labels.

use std::collections::BTreeMap;

use raybroker_adapter::{AdapterError, ErrorKind, NodeCapacity, SubmitRequest};
use raybroker_core::{Bytes, GpuModel, Quantity, Resources};
use serde_json::{json, Map, Value};

use super::{
    label_value, object_name, ANNOTATION_SUBMISSION_ID, LABEL_ATTEMPT, LABEL_JOB_ID,
    LABEL_MANAGED_BY, LABEL_ORIGIN, LABEL_TENANT,
};
use crate::config::{KubeRayClusterConfig, Mode, PodSettings, WorkerGroupTemplate};

/// The API version of the objects.
pub const API_VERSION: &str = "ray.io/v1";
/// The extended resource GPUs are requested as.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

fn rejected(message: String) -> AdapterError {
    AdapterError::new(ErrorKind::Rejected, message)
}

/// Why this cluster cannot run `resources` at all, before anything is created.
pub fn check_request(
    config: &KubeRayClusterConfig,
    resources: &Resources,
) -> Result<(), AdapterError> {
    if resources.gpus.is_zero() {
        if !resources.gpu_types.is_empty() {
            return Err(rejected(
                "gpu_types is set but gpus is 0: ask for at least one GPU".into(),
            ));
        }
        return Ok(());
    }
    match config.mode {
        Mode::Shared => {
            if resources.nodes > 1 {
                return Err(rejected(format!(
                    "a job on a shared RayCluster runs its entrypoint on one node; it asks for {} nodes",
                    resources.nodes
                )));
            }
            Ok(())
        }
        Mode::Ephemeral => {
            if !resources.gpus.is_whole() {
                return Err(rejected(format!(
                    "an ephemeral cluster's pods get whole GPUs; {} GPUs would need sharing",
                    resources.gpus
                )));
            }
            offered_groups(config, &resources.gpu_types).map(|_| ())
        }
    }
}

/// The template's groups of the models `accepted` (all groups when it is empty).
fn offered_groups<'a>(
    config: &'a KubeRayClusterConfig,
    accepted: &[GpuModel],
) -> Result<Vec<&'a WorkerGroupTemplate>, AdapterError> {
    let groups: &[WorkerGroupTemplate] = config
        .template
        .as_ref()
        .map(|t| t.worker_groups.as_slice())
        .unwrap_or_default();
    let fitting: Vec<&WorkerGroupTemplate> = groups
        .iter()
        .filter(|g| accepted.is_empty() || accepted.contains(&g.gpu_model))
        .collect();
    if fitting.is_empty() {
        let offered: Vec<&str> = groups.iter().map(|g| g.gpu_model.as_str()).collect();
        let wanted: Vec<&str> = accepted.iter().map(GpuModel::as_str).collect();
        return Err(rejected(format!(
            "this cluster's template has no worker group for {}; it offers: {}",
            if wanted.is_empty() {
                "GPUs".to_string()
            } else {
                wanted.join("|")
            },
            if offered.is_empty() {
                "no GPU models".to_string()
            } else {
                offered.join(", ")
            }
        )));
    }
    Ok(fitting)
}

/// The worker group for a GPU job: among the accepted models the template
/// offers, the one with the most free GPUs in the last snapshot (the first
/// listed when none is known to be free).
pub fn choose_group<'a>(
    config: &'a KubeRayClusterConfig,
    resources: &Resources,
    nodes: &[NodeCapacity],
) -> Result<Option<&'a WorkerGroupTemplate>, AdapterError> {
    if resources.gpus.is_zero() || config.mode == Mode::Shared {
        return Ok(None);
    }
    let groups = offered_groups(config, &resources.gpu_types)?;
    let free_of = |group: &WorkerGroupTemplate| -> Quantity {
        nodes
            .iter()
            .filter(|n| n.gpu_model.as_ref() == Some(&group.gpu_model))
            .map(|n| n.free.gpus)
            .max()
            .unwrap_or(Quantity::ZERO)
    };
    let mut best = groups[0];
    for group in &groups[1..] {
        if free_of(group) > free_of(best) {
            best = group;
        }
    }
    Ok(Some(best))
}

/// A CPU amount as a Kubernetes quantity (`2`, `1500m`), rounded up to a millicore.
pub fn cpu_quantity(cpus: Quantity) -> String {
    let per_milli = Quantity::whole(1).units() / 1000;
    let millis = cpus.units().div_ceil(per_milli.max(1));
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The labels of every object an attempt leads to.
pub fn labels(request: &SubmitRequest, origin: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_ORIGIN.to_string(), origin.to_string()),
        (
            LABEL_JOB_ID.to_string(),
            request.job_id.as_str().to_string(),
        ),
        (LABEL_ATTEMPT.to_string(), request.attempt.to_string()),
        (
            LABEL_TENANT.to_string(),
            label_value(request.tenant.as_str()),
        ),
        (LABEL_MANAGED_BY.to_string(), "raybroker".to_string()),
    ])
}

/// Ray's `runtime_env` as YAML: the spec's, with the broker's `extra_env`
/// added to `env_vars` (the broker's values win).
pub fn runtime_env_yaml(request: &SubmitRequest) -> Result<Option<String>, AdapterError> {
    let Some(env) = request.ray_runtime_env() else {
        return Ok(None);
    };
    serde_norway::to_string(&env)
        .map(Some)
        .map_err(|e| AdapterError::new(ErrorKind::Internal, format!("runtime env as YAML: {e}")))
}

fn container_resources(cpus: Quantity, memory: Bytes, gpus: u64) -> Value {
    let mut amounts = Map::new();
    amounts.insert("cpu".into(), json!(cpu_quantity(cpus)));
    if memory.0 > 0 {
        amounts.insert("memory".into(), json!(memory.0.to_string()));
    }
    if gpus > 0 {
        amounts.insert(GPU_RESOURCE.into(), json!(gpus.to_string()));
    }
    json!({"requests": amounts.clone(), "limits": amounts})
}

fn pod_template(
    container: &str,
    image: &str,
    resources: Value,
    pod: &PodSettings,
    node_selector: BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Value {
    let mut spec = Map::new();
    spec.insert(
        "containers".into(),
        json!([{"name": container, "image": image, "resources": resources}]),
    );
    if !node_selector.is_empty() {
        spec.insert("nodeSelector".into(), json!(node_selector));
    }
    if !pod.tolerations.is_empty() {
        spec.insert("tolerations".into(), json!(pod.tolerations));
    }
    if let Some(account) = &pod.service_account {
        spec.insert("serviceAccountName".into(), json!(account));
    }
    json!({"metadata": {"labels": labels}, "spec": spec})
}

/// `rayClusterSpec` of an ephemeral cluster for a job of `resources`.
fn cluster_spec(
    config: &KubeRayClusterConfig,
    resources: &Resources,
    group: Option<&WorkerGroupTemplate>,
    labels: &BTreeMap<String, String>,
) -> Result<Value, AdapterError> {
    let template = config
        .template
        .as_ref()
        .ok_or_else(|| rejected("an ephemeral cluster needs a template".into()))?;
    let head = &template.head;
    let (head_cpus, head_memory) = match group {
        // A CPU-only job runs on the head, which gets at least its shape.
        None => (
            head.cpus.max(resources.cpus),
            Bytes(head.memory.0.max(resources.memory.0)),
        ),
        Some(_) => (head.cpus, head.memory),
    };
    let head_image = head.pod.image.as_deref().unwrap_or(&template.image);
    let mut head_params = Map::new();
    if group.is_some() {
        // The head takes no GPU work, so the entrypoint lands on a GPU worker.
        head_params.insert("num-gpus".into(), json!("0"));
    }
    let mut spec = json!({
        "rayVersion": template.ray_version,
        "headGroupSpec": {
            "rayStartParams": head_params,
            "template": pod_template(
                "ray-head",
                head_image,
                container_resources(head_cpus, head_memory, 0),
                &head.pod,
                head.pod.node_selector.clone(),
                labels,
            ),
        },
    });
    if let Some(group) = group {
        let gpus = resources.gpus.units() / Quantity::whole(1).units();
        let mut selector = group.pod.node_selector.clone();
        selector.insert(config.gpu_label.clone(), group.label_value.clone());
        let mut params = Map::new();
        if !resources.custom.is_empty() {
            let custom: BTreeMap<&String, f64> = resources
                .custom
                .iter()
                .map(|(k, v)| (k, v.as_f64()))
                .collect();
            params.insert("resources".into(), json!(format!("'{}'", json!(custom))));
        }
        let replicas = resources.nodes.max(1);
        spec["workerGroupSpecs"] = json!([{
            "groupName": format!("gpu-{}", group.gpu_model.as_str().to_ascii_lowercase()),
            "replicas": replicas,
            "minReplicas": replicas,
            "maxReplicas": replicas,
            "rayStartParams": params,
            "template": pod_template(
                "ray-worker",
                group.pod.image.as_deref().unwrap_or(&template.image),
                container_resources(resources.cpus, resources.memory, gpus),
                &group.pod,
                selector,
                labels,
            ),
        }]);
    }
    Ok(spec)
}

/// The RayJob for `request`, tagged with `origin`, in `config.namespace`.
pub fn build(
    request: &SubmitRequest,
    config: &KubeRayClusterConfig,
    group: Option<&WorkerGroupTemplate>,
) -> Result<Value, AdapterError> {
    let resources = &request.spec.resources;
    check_request(config, resources)?;
    let labels = labels(request, &config.origin);
    let mut spec = Map::new();
    spec.insert("entrypoint".into(), json!(request.spec.entrypoint));
    if let Some(yaml) = runtime_env_yaml(request)? {
        spec.insert("runtimeEnvYAML".into(), json!(yaml));
    }
    spec.insert("entrypointNumCpus".into(), json!(resources.cpus.as_f64()));
    if !resources.gpus.is_zero() {
        spec.insert("entrypointNumGpus".into(), json!(resources.gpus.as_f64()));
    }
    if !resources.custom.is_empty() {
        let custom: BTreeMap<&String, f64> = resources
            .custom
            .iter()
            .map(|(k, v)| (k, v.as_f64()))
            .collect();
        spec.insert(
            "entrypointResources".into(),
            json!(json!(custom).to_string()),
        );
    }
    if let Some(limit) = request.spec.time_limit {
        let seconds = i32::try_from(limit.as_secs().max(1)).unwrap_or(i32::MAX);
        spec.insert("activeDeadlineSeconds".into(), json!(seconds));
    }
    spec.insert("submissionMode".into(), json!("K8sJobMode"));
    // The broker retries attempts itself, on whichever cluster fits.
    spec.insert("backoffLimit".into(), json!(0));
    match config.mode {
        Mode::Ephemeral => {
            spec.insert(
                "rayClusterSpec".into(),
                cluster_spec(config, resources, group, &labels)?,
            );
            spec.insert("shutdownAfterJobFinishes".into(), json!(true));
            let ttl = i32::try_from(config.ttl_after_finished.as_secs()).unwrap_or(i32::MAX);
            spec.insert("ttlSecondsAfterFinished".into(), json!(ttl));
        }
        Mode::Shared => {
            spec.insert("clusterSelector".into(), json!(config.cluster_selector));
        }
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "RayJob",
        "metadata": {
            "name": object_name(&request.submission_id),
            "namespace": config.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_SUBMISSION_ID: request.submission_id},
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests;
