//! What a submit asks of Slurm ([`job_description`]), and the origin tags in
//! the job's comment ([`Tags`]) that `list_owned` reads back.

use std::collections::BTreeMap;
use std::time::Duration;

use raybroker_adapter::{AdapterError, ErrorKind, NodeCapacity, SubmitRequest};
use raybroker_core::{GpuModel, JobId};

use crate::config::SlurmClusterConfig;
use crate::versions::JobDescription;

/// The comment's first word: marks a job as raybroker's.
const TAG_PREFIX: &str = "raybroker";

/// What the comment says about a job: `raybroker origin=O tenant=T job=J attempt=N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tags {
    /// The broker's origin.
    pub origin: String,
    /// The tenant.
    pub tenant: String,
    /// The broker job.
    pub job_id: Option<JobId>,
    /// The attempt.
    pub attempt: Option<u32>,
}

impl Tags {
    /// The comment text.
    pub fn encode(&self) -> String {
        let mut text = format!("{TAG_PREFIX} origin={} tenant={}", self.origin, self.tenant);
        if let Some(job) = &self.job_id {
            text.push_str(&format!(" job={job}"));
        }
        if let Some(attempt) = self.attempt {
            text.push_str(&format!(" attempt={attempt}"));
        }
        text
    }

    /// Reads a comment; `None` when it is not raybroker's.
    pub fn decode(comment: &str) -> Option<Tags> {
        let mut words = comment.split_whitespace();
        if words.next()? != TAG_PREFIX {
            return None;
        }
        let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        Some(Tags {
            origin: fields.get("origin")?.to_string(),
            tenant: fields.get("tenant").unwrap_or(&"").to_string(),
            job_id: fields.get("job").and_then(|j| j.parse().ok()),
            attempt: fields.get("attempt").and_then(|a| a.parse().ok()),
        })
    }
}

/// The tags of a request.
pub fn tags(request: &SubmitRequest, origin: &str) -> Tags {
    Tags {
        origin: origin.to_string(),
        tenant: request.tenant.as_str().to_string(),
        job_id: Some(request.job_id.clone()),
        attempt: Some(request.attempt),
    }
}

/// The environment every job script starts with, before the job's own.
const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    ),
    ("LANG", "C.UTF-8"),
    ("PYTHONUNBUFFERED", "1"),
];

/// The job's environment: a base, the spec's `runtime_env.env_vars`, then
/// the broker's own (trace context); later ones win.
pub fn environment(request: &SubmitRequest) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BASE_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(request.spec.runtime_env.env_vars.clone());
    env.extend(request.extra_env.clone());
    env.insert(
        "RAYBROKER_SUBMISSION_ID".to_string(),
        request.submission_id.clone(),
    );
    env.into_iter().collect()
}

fn rejected(message: impl Into<String>) -> AdapterError {
    AdapterError::new(ErrorKind::Rejected, message)
}

/// The GPU model the job gets here: the first model it accepts that a node
/// of this cluster has; `None` when it accepts any model.
pub fn chosen_gpu_model(
    accepted: &[GpuModel],
    nodes: &[NodeCapacity],
) -> Result<Option<GpuModel>, AdapterError> {
    if accepted.is_empty() {
        return Ok(None);
    }
    accepted
        .iter()
        .find(|model| nodes.iter().any(|n| n.gpu_model.as_ref() == Some(*model)))
        .cloned()
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = accepted.iter().map(GpuModel::as_str).collect();
            rejected(format!(
                "none of the GPU models the job accepts ({}) is on this cluster",
                names.join(", ")
            ))
        })
}

/// Slurm's whole minutes for the job's time limit, with a minute to spare:
/// the job script enforces the exact limit itself, Slurm's is the backstop.
pub fn slurm_minutes(limit: Duration) -> u64 {
    limit.as_secs().div_ceil(60) + 1
}

/// The Slurm job for a request (the `script` goes beside it).
pub fn job_description(
    request: &SubmitRequest,
    config: &SlurmClusterConfig,
    gpu_model: Option<&GpuModel>,
    job_dir: &str,
    output_file: &str,
) -> Result<JobDescription, AdapterError> {
    let spec = &request.spec;
    let resources = &spec.resources;
    if !resources.custom.is_empty() {
        return Err(rejected(
            "resources.custom: Slurm clusters do not offer custom resources through raybroker",
        ));
    }
    let env = &spec.runtime_env;
    if env.working_dir.is_some() || !env.pip.is_empty() || !env.py_modules.is_empty() {
        return Err(rejected(
            "runtime_env: on Slurm the entrypoint runs directly in the job's Ray cluster; \
             only env_vars are supported (install packages into the cluster's Ray venv)",
        ));
    }
    if !resources.gpus.is_whole() {
        return Err(rejected(format!(
            "resources.gpus: Slurm allocates whole GPUs; {} would need sharing",
            resources.gpus
        )));
    }
    if resources.nodes == 0 {
        return Err(rejected("resources.nodes must be at least 1"));
    }
    let gpus = resources.gpus.units() / raybroker_core::quantity::QUANTITY_SCALE;
    let gres_per_node = (gpus > 0).then(|| match gpu_model {
        Some(model) => format!("gpu:{}:{gpus}", config.gres_type(model)),
        None => format!("gpu:{gpus}"),
    });
    let scale = raybroker_core::quantity::QUANTITY_SCALE;
    let cpus = resources.cpus.units().div_ceil(scale).max(1);
    Ok(JobDescription {
        name: request.submission_id.clone(),
        comment: tags(request, &config.origin).encode(),
        working_dir: job_dir.to_string(),
        output_file: output_file.to_string(),
        environment: environment(request),
        nodes: resources.nodes,
        cpus_per_node: u32::try_from(cpus).map_err(|_| rejected("resources.cpus is too large"))?,
        memory_mb_per_node: resources.memory.0.div_ceil(1024 * 1024),
        time_limit_minutes: spec.time_limit.map(slurm_minutes),
        gres_per_node,
        partition: config.partition.clone(),
        account: config.account.clone(),
        qos: config.qos.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raybroker_core::{Bytes, JobSpec, Quantity, Resources, TenantId};

    fn config() -> SlurmClusterConfig {
        let mut config = crate::config::test_config("/opt/ray/bin", "prod");
        config.partition = Some("gpu".into());
        config.gpu_types.insert("A100".into(), "nvidia_a100".into());
        config
    }

    fn request(resources: Resources) -> SubmitRequest {
        SubmitRequest {
            submission_id: "rb-x-1".into(),
            job_id: JobId::generate(1_795_000_000_000),
            tenant: TenantId::new("robotics").unwrap(),
            attempt: 2,
            spec: JobSpec {
                entrypoint: "python train.py".into(),
                resources,
                time_limit: Some(Duration::from_secs(90)),
                ..JobSpec::default()
            },
            extra_env: BTreeMap::from([("TRACEPARENT".into(), "00-abc".into())]),
        }
    }

    #[test]
    fn tags_round_trip() {
        let request = request(Resources::default());
        let tags = tags(&request, "prod");
        let text = tags.encode();
        assert!(
            text.starts_with("raybroker origin=prod tenant=robotics job="),
            "{text}"
        );
        assert_eq!(Tags::decode(&text), Some(tags));
        assert_eq!(Tags::decode("someone else's comment"), None);
        assert_eq!(Tags::decode("raybroker tenant=x"), None);
    }

    #[test]
    fn descriptions_map_resources_per_node() {
        let resources = Resources {
            cpus: Quantity::from_units(25_000),
            memory: Bytes(3 * 1024 * 1024 * 1024 + 1),
            gpus: Quantity::whole(2),
            gpu_types: vec![GpuModel::parse("A100").unwrap()],
            nodes: 2,
            ..Resources::default()
        };
        let a100 = GpuModel::parse("A100").unwrap();
        let job =
            job_description(&request(resources), &config(), Some(&a100), "/j", "/j/o").unwrap();
        assert_eq!(job.cpus_per_node, 3);
        assert_eq!(job.memory_mb_per_node, 3 * 1024 + 1);
        assert_eq!(job.gres_per_node.as_deref(), Some("gpu:nvidia_a100:2"));
        assert_eq!(job.nodes, 2);
        assert_eq!(job.time_limit_minutes, Some(3));
        assert_eq!(job.partition.as_deref(), Some("gpu"));
        assert!(job
            .environment
            .contains(&("TRACEPARENT".into(), "00-abc".into())));
        assert!(job
            .environment
            .contains(&("RAYBROKER_SUBMISSION_ID".into(), "rb-x-1".into())));
        let any_model = Resources {
            gpus: Quantity::whole(1),
            ..Resources::default()
        };
        let job = job_description(&request(any_model), &config(), None, "/j", "/j/o").unwrap();
        assert_eq!(job.gres_per_node.as_deref(), Some("gpu:1"));
    }

    #[test]
    fn the_job_env_wins_over_the_base_and_the_broker_over_both() {
        let mut request = request(Resources::default());
        request.spec.runtime_env.env_vars = BTreeMap::from([
            ("PATH".into(), "/mine".into()),
            ("TRACEPARENT".into(), "x".into()),
        ]);
        let env: BTreeMap<_, _> = environment(&request).into_iter().collect();
        assert_eq!(env["PATH"], "/mine");
        assert_eq!(env["TRACEPARENT"], "00-abc");
        assert_eq!(env["PYTHONUNBUFFERED"], "1");
    }

    #[test]
    fn impossible_shapes_are_rejected_with_the_field() {
        let shared = Resources {
            gpus: Quantity::from_units(5_000),
            ..Resources::default()
        };
        let err = job_description(&request(shared), &config(), None, "/j", "/j/o").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert!(err.message.starts_with("resources.gpus"), "{}", err.message);
        let mut pip = request(Resources::default());
        pip.spec.runtime_env.pip = vec!["torch".into()];
        let err = job_description(&pip, &config(), None, "/j", "/j/o").unwrap_err();
        assert!(err.message.starts_with("runtime_env"), "{}", err.message);
    }

    #[test]
    fn gpu_models_must_be_on_the_cluster() {
        let h100 = GpuModel::parse("H100").unwrap();
        let node = NodeCapacity {
            id: "n".into(),
            gpu_model: Some(h100.clone()),
            total: Default::default(),
            free: Default::default(),
        };
        let a100 = GpuModel::parse("A100").unwrap();
        let nodes = [node];
        assert_eq!(
            chosen_gpu_model(&[a100.clone(), h100.clone()], &nodes).unwrap(),
            Some(h100)
        );
        assert_eq!(chosen_gpu_model(&[], &nodes).unwrap(), None);
        assert!(chosen_gpu_model(&[a100], &nodes).is_err());
    }

    #[test]
    fn slurm_limits_round_up_with_a_spare_minute() {
        assert_eq!(slurm_minutes(Duration::from_secs(10)), 2);
        assert_eq!(slurm_minutes(Duration::from_secs(60)), 2);
        assert_eq!(slurm_minutes(Duration::from_secs(61)), 3);
    }
}
