//! A [`SubmitRequest`] as the body of Ray's `POST /api/jobs/`.
//!
//! Resources become `entrypoint_num_cpus`, `entrypoint_num_gpus`,
//! `entrypoint_memory` (bytes) and `entrypoint_resources` (custom resources
//! plus the GPU model resource). Ray places the entrypoint on one node, so the
//! request is per node and single node.
//!
//! # The GPU model rule
//!
//! Ray's `entrypoint_resources` must all hold at once: there is no "A100 or
//! H100". When a job asks for GPUs and accepts some models, the adapter picks
//! one model using the nodes of its last snapshot:
//! 1. only accepted models whose resource (see [`model_resource`]) some node
//!    of this cluster has are candidates; none means the job cannot run here
//!    and submit is refused as [`ErrorKind::Rejected`] (the broker should not
//!    have placed it here);
//! 2. among candidates, the one whose best node has the most free GPUs wins
//!    (the job runs on one node);
//! 3. ties go to the model the job lists first.

use std::collections::BTreeMap;

use raybroker_adapter::{AdapterError, ErrorKind, NodeCapacity, SubmitRequest};
use raybroker_core::{GpuModel, Quantity};

use super::{META_ATTEMPT, META_JOB_ID, META_ORIGIN, META_TENANT};
use crate::client::SubmitBody;
use crate::config::GpuModelResource;

/// Resource names Ray reserves; a custom resource by these names is refused
/// by Ray only after the job was accepted (the job then fails), so the
/// adapter refuses it up front.
pub const RESERVED_RESOURCES: &[&str] = &["CPU", "GPU", "memory", "object_store_memory"];

/// How much of the `accelerator_type:<MODEL>` marker a job asks for: Ray's
/// own `accelerator_type=` option asks 0.001, because a node declares the
/// marker once (amount 1), however many GPUs it has.
pub const ACCELERATOR_MARKER_AMOUNT: Quantity = Quantity::from_units(10);

/// The Ray resource that stands for GPU model `model` on a cluster using `mode`:
/// `accelerator_type:A100` or `gpu_a100`.
pub fn model_resource(mode: GpuModelResource, model: &GpuModel) -> String {
    match mode {
        GpuModelResource::AcceleratorType => format!("accelerator_type:{}", model.as_str()),
        GpuModelResource::Custom => format!("gpu_{}", model.as_str().to_ascii_lowercase()),
    }
}

/// The GPU model resource and amount a job needs on this cluster (`None` when
/// it asks for no GPU or accepts any model), following the module's rule.
pub fn choose_gpu_model(
    accepted: &[GpuModel],
    gpus: Quantity,
    mode: GpuModelResource,
    nodes: &[NodeCapacity],
) -> Result<Option<(String, Quantity)>, AdapterError> {
    if gpus.is_zero() || accepted.is_empty() {
        return Ok(None);
    }
    let mut best: Option<(String, Quantity)> = None;
    for model in accepted {
        let resource = model_resource(mode, model);
        let most_free = nodes
            .iter()
            .filter(|node| {
                node.total
                    .custom
                    .get(&resource)
                    .is_some_and(|q| !q.is_zero())
            })
            .map(|node| node.free.gpus)
            .max();
        if let Some(free) = most_free {
            if best.as_ref().is_none_or(|(_, best_free)| free > *best_free) {
                best = Some((resource, free));
            }
        }
    }
    let Some((resource, _)) = best else {
        let wanted: Vec<&str> = accepted.iter().map(GpuModel::as_str).collect();
        let mut present: Vec<&str> = nodes
            .iter()
            .filter_map(|node| node.gpu_model.as_ref().map(GpuModel::as_str))
            .collect();
        present.sort_unstable();
        present.dedup();
        return Err(AdapterError::new(
            ErrorKind::Rejected,
            format!(
                "this cluster has none of the GPU models the job accepts ({}); its nodes have: {}",
                wanted.join("|"),
                if present.is_empty() {
                    "no known GPU model".to_string()
                } else {
                    present.join(", ")
                }
            ),
        ));
    };
    let amount = match mode {
        GpuModelResource::AcceleratorType => ACCELERATOR_MARKER_AMOUNT,
        GpuModelResource::Custom => gpus,
    };
    Ok(Some((resource, amount)))
}

/// The submit body for `request`, tagged with `origin`; `nodes` is the
/// cluster's last known capacity (used for the GPU model rule only).
pub fn submit_body(
    request: &SubmitRequest,
    origin: &str,
    mode: GpuModelResource,
    nodes: &[NodeCapacity],
) -> Result<SubmitBody, AdapterError> {
    let spec = &request.spec;
    let resources = &spec.resources;
    let rejected = |message: String| AdapterError::new(ErrorKind::Rejected, message);
    if resources.nodes > 1 {
        return Err(rejected(format!(
            "a Ray job's entrypoint runs on one node; the job asks for {} nodes",
            resources.nodes
        )));
    }
    let mut entrypoint_resources = BTreeMap::new();
    for (name, amount) in &resources.custom {
        if RESERVED_RESOURCES.contains(&name.as_str()) {
            return Err(rejected(format!(
                "custom resource '{name}' is reserved by Ray: use cpus, gpus or memory"
            )));
        }
        entrypoint_resources.insert(name.clone(), amount.as_f64());
    }
    if let Some((name, amount)) =
        choose_gpu_model(&resources.gpu_types, resources.gpus, mode, nodes)?
    {
        entrypoint_resources.insert(name, amount.as_f64());
    }
    let metadata = BTreeMap::from([
        (META_ORIGIN.to_string(), origin.to_string()),
        (META_TENANT.to_string(), request.tenant.as_str().to_string()),
        (META_JOB_ID.to_string(), request.job_id.as_str().to_string()),
        (META_ATTEMPT.to_string(), request.attempt.to_string()),
    ]);
    Ok(SubmitBody {
        entrypoint: spec.entrypoint.clone(),
        submission_id: request.submission_id.clone(),
        runtime_env: request.ray_runtime_env(),
        metadata,
        entrypoint_num_cpus: Some(resources.cpus.as_f64()),
        entrypoint_num_gpus: (!resources.gpus.is_zero()).then(|| resources.gpus.as_f64()),
        entrypoint_memory: (resources.memory.0 > 0).then_some(resources.memory.0),
        entrypoint_resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raybroker_adapter::NodeResources;
    use raybroker_core::{Bytes, JobId, JobSpec, Resources, TenantId};
    use serde_json::json;

    fn model(name: &str) -> GpuModel {
        GpuModel::parse(name).unwrap()
    }

    /// A node of `name` GPUs with `free` of `total` GPUs free, declaring both
    /// model resources the way deploy/local/ray.sh starts heads.
    fn node(name: &str, total: u64, free: u64) -> NodeCapacity {
        let custom = BTreeMap::from([
            (format!("accelerator_type:{name}"), Quantity::whole(1)),
            (
                format!("gpu_{}", name.to_ascii_lowercase()),
                Quantity::whole(total),
            ),
        ]);
        NodeCapacity {
            id: format!("node-{name}-{free}"),
            gpu_model: Some(model(name)),
            total: NodeResources {
                gpus: Quantity::whole(total),
                custom: custom.clone(),
                ..Default::default()
            },
            free: NodeResources {
                gpus: Quantity::whole(free),
                custom,
                ..Default::default()
            },
        }
    }

    fn request(resources: Resources) -> SubmitRequest {
        SubmitRequest {
            submission_id: "01JDQ3ZK8V6X9T2M4N5P7R8S9A-1".into(),
            job_id: "01JDQ3ZK8V6X9T2M4N5P7R8S9A".parse::<JobId>().unwrap(),
            tenant: TenantId::new("robotics").unwrap(),
            attempt: 1,
            spec: JobSpec {
                entrypoint: "python train.py".into(),
                resources,
                ..Default::default()
            },
            extra_env: BTreeMap::new(),
        }
    }

    #[test]
    fn model_resources_follow_the_configured_convention() {
        let a100 = model("a100");
        assert_eq!(
            model_resource(GpuModelResource::AcceleratorType, &a100),
            "accelerator_type:A100"
        );
        assert_eq!(model_resource(GpuModelResource::Custom, &a100), "gpu_a100");
    }

    #[test]
    fn one_present_model_is_used_with_the_right_amount() {
        let nodes = [node("A100", 4, 4)];
        let two = Quantity::whole(2);
        let custom = choose_gpu_model(&[model("A100")], two, GpuModelResource::Custom, &nodes);
        assert_eq!(custom.unwrap(), Some(("gpu_a100".to_string(), two)));
        let marker = choose_gpu_model(
            &[model("A100")],
            two,
            GpuModelResource::AcceleratorType,
            &nodes,
        );
        assert_eq!(
            marker.unwrap(),
            Some((
                "accelerator_type:A100".to_string(),
                ACCELERATOR_MARKER_AMOUNT
            ))
        );
    }

    #[test]
    fn among_several_models_the_freest_present_one_wins() {
        let nodes = [node("A100", 4, 1), node("H100", 8, 3), node("H100", 8, 0)];
        let accepted = [model("T4"), model("A100"), model("H100")];
        let chosen = choose_gpu_model(
            &accepted,
            Quantity::whole(1),
            GpuModelResource::Custom,
            &nodes,
        );
        assert_eq!(chosen.unwrap().unwrap().0, "gpu_h100");
        // A tie goes to the model listed first.
        let tied = [node("A100", 4, 2), node("H100", 8, 2)];
        let chosen = choose_gpu_model(
            &[model("H100"), model("A100")],
            Quantity::whole(1),
            GpuModelResource::Custom,
            &tied,
        );
        assert_eq!(chosen.unwrap().unwrap().0, "gpu_h100");
    }

    #[test]
    fn absent_models_are_refused_and_no_gpu_means_no_model() {
        let nodes = [node("L4", 2, 2)];
        let err = choose_gpu_model(
            &[model("A100"), model("H100")],
            Quantity::whole(1),
            GpuModelResource::AcceleratorType,
            &nodes,
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert!(
            err.message.contains("A100|H100") && err.message.contains("L4"),
            "{}",
            err.message
        );
        let none = choose_gpu_model(
            &[model("A100")],
            Quantity::ZERO,
            GpuModelResource::Custom,
            &[],
        );
        assert_eq!(none.unwrap(), None);
        let any = choose_gpu_model(&[], Quantity::whole(1), GpuModelResource::Custom, &[]);
        assert_eq!(any.unwrap(), None);
    }

    #[test]
    fn body_carries_resources_tags_and_environment() {
        let mut req = request(Resources {
            cpus: Quantity::from_units(5_000),
            memory: Bytes(2 * Bytes::GIB),
            gpus: Quantity::from_units(2_500),
            gpu_types: vec![model("A100")],
            custom: BTreeMap::from([("license".to_string(), Quantity::whole(1))]),
            ..Default::default()
        });
        req.spec.runtime_env.env_vars = BTreeMap::from([
            ("A".to_string(), "spec".to_string()),
            ("B".to_string(), "b".to_string()),
        ]);
        req.spec.runtime_env.pip = vec!["rsl-rl-lib==2.2.4".into()];
        req.spec.runtime_env.working_dir = Some("s3://bucket/code.zip".into());
        req.extra_env = BTreeMap::from([("A".to_string(), "broker".to_string())]);
        let body = submit_body(
            &req,
            "prod",
            GpuModelResource::Custom,
            &[node("A100", 4, 4)],
        )
        .unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            json!({
                "entrypoint": "python train.py",
                "submission_id": "01JDQ3ZK8V6X9T2M4N5P7R8S9A-1",
                "runtime_env": {
                    "env_vars": {"A": "broker", "B": "b"},
                    "working_dir": "s3://bucket/code.zip",
                    "pip": ["rsl-rl-lib==2.2.4"]
                },
                "metadata": {
                    "raybroker.origin": "prod",
                    "raybroker.tenant": "robotics",
                    "raybroker.job_id": "01JDQ3ZK8V6X9T2M4N5P7R8S9A",
                    "raybroker.attempt": "1"
                },
                "entrypoint_num_cpus": 0.5,
                "entrypoint_num_gpus": 0.25,
                "entrypoint_memory": 2_147_483_648_u64,
                "entrypoint_resources": {"license": 1.0, "gpu_a100": 0.25}
            })
        );
    }

    #[test]
    fn minimal_body_omits_what_is_not_asked() {
        let body = submit_body(
            &request(Resources::default()),
            "prod",
            GpuModelResource::Custom,
            &[],
        )
        .unwrap();
        let json = serde_json::to_value(&body).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "entrypoint",
                "entrypoint_num_cpus",
                "metadata",
                "submission_id"
            ]
        );
    }

    #[test]
    fn impossible_shapes_are_refused_before_sending() {
        let multi = request(Resources {
            nodes: 2,
            ..Default::default()
        });
        let err = submit_body(&multi, "prod", GpuModelResource::Custom, &[]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected);
        let reserved = request(Resources {
            custom: BTreeMap::from([("GPU".to_string(), Quantity::whole(1))]),
            ..Default::default()
        });
        let err = submit_body(&reserved, "prod", GpuModelResource::Custom, &[]).unwrap_err();
        assert!(err.message.contains("reserved"), "{}", err.message);
    }
}
