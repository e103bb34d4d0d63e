//! The pure mapping from Ray's submit request to a [`JobSpec`] (the way back,
//! a job as Ray's `JobDetails`, is in [`super::details`]). No IO: the
//! handlers look packages up first and pass the digests in.
//!
//! # Conventions (docs/ray-jobs-api.md)
//! - `entrypoint_num_cpus`, `entrypoint_num_gpus` and `entrypoint_memory` are
//!   the job's per-node CPUs, GPUs and memory; absent means 0, as in Ray.
//! - GPU models: an `entrypoint_resources` key `accelerator_type:<MODEL>` (Ray's
//!   own convention; several keys mean any of those models, the amount is
//!   ignored) and the metadata key `raybroker.gpu_types` (`A100|H100`).
//!   Every other `entrypoint_resources` key is a custom resource.
//! - `metadata` becomes the job's labels, sanitised; the metadata keys
//!   `raybroker.priority`, `raybroker.max_retries` and `raybroker.time_limit`
//!   set those broker options.
//! - `submission_id` is the job's idempotency key.

use std::collections::{BTreeMap, HashMap};

use raybroker_core::{Bytes, GpuModel, JobSpec, Quantity, Resources, RuntimeEnv};
use serde::Deserialize;
use serde_json::Value;

use crate::raystore::uri::{broker_package_uri, uploaded_package};

/// Metadata key naming the GPU models a job accepts, e.g. `A100|H100`.
pub(crate) const META_GPU_TYPES: &str = "raybroker.gpu_types";
/// Metadata key of the job's priority (-1000 to 1000).
pub(crate) const META_PRIORITY: &str = "raybroker.priority";
/// Metadata key of the retries a failed attempt gets.
pub(crate) const META_MAX_RETRIES: &str = "raybroker.max_retries";
/// Metadata key of an attempt's wall-clock limit, e.g. `2h`.
pub(crate) const META_TIME_LIMIT: &str = "raybroker.time_limit";
/// The `entrypoint_resources` prefix that names a GPU model.
pub(crate) const ACCELERATOR_PREFIX: &str = "accelerator_type:";

/// Most labels a job may carry; metadata beyond it is dropped (by key order).
const MAX_LABELS: usize = 64;
/// `runtime_env` keys Ray's clients add that mean nothing once packages are
/// uploaded (`excludes`), are informational (`_ray_commit`) or tune the head's
/// own setup (`config`): accepted and dropped.
const DROPPED_RUNTIME_ENV_KEYS: &[&str] = &["excludes", "_ray_commit", "config"];

/// The body of `POST /api/jobs/` (Ray's `JobSubmitRequest`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitRequest {
    /// The shell command to run.
    pub entrypoint: String,
    /// The id the client will use; generated when absent.
    #[serde(default)]
    pub submission_id: Option<String>,
    /// Deprecated name of `submission_id`, still sent by old clients.
    #[serde(default)]
    pub job_id: Option<String>,
    /// Ray's `runtime_env`.
    #[serde(default)]
    pub runtime_env: Option<Value>,
    /// Free string key/values.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// CPUs for the entrypoint.
    #[serde(default)]
    pub entrypoint_num_cpus: Option<f64>,
    /// GPUs for the entrypoint.
    #[serde(default)]
    pub entrypoint_num_gpus: Option<f64>,
    /// Memory for the entrypoint, in bytes.
    #[serde(default)]
    pub entrypoint_memory: Option<u64>,
    /// Custom resources (and `accelerator_type:<MODEL>`).
    #[serde(default)]
    pub entrypoint_resources: Option<BTreeMap<String, f64>>,
    /// Ray 2.60's node label selector; only an empty one is accepted.
    #[serde(default)]
    pub entrypoint_label_selector: Option<BTreeMap<String, String>>,
}

impl SubmitRequest {
    /// The `(protocol, name)` of every uploaded package the request names
    /// (`gcs://...` URIs in `working_dir` and `py_modules`).
    pub(crate) fn uploaded_packages(&self) -> Vec<(String, String)> {
        let Some(Value::Object(env)) = &self.runtime_env else {
            return Vec::new();
        };
        let working_dir = env.get("working_dir").and_then(Value::as_str);
        let modules = env
            .get("py_modules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        working_dir
            .into_iter()
            .chain(modules)
            .filter_map(uploaded_package)
            .map(|(protocol, name)| (protocol.to_string(), name.to_string()))
            .collect()
    }
}

/// The job spec for `request`, submitted as `submission_id`; `digests` maps
/// each uploaded package URI to the digest of the tenant's zip. The spec is
/// still to be validated. An error says what is wrong, in words.
pub(crate) fn to_spec(
    request: &SubmitRequest,
    submission_id: &str,
    digests: &HashMap<String, String>,
) -> Result<JobSpec, String> {
    if let Some(selector) = &request.entrypoint_label_selector {
        if !selector.is_empty() {
            return Err("entrypoint_label_selector is not supported by raybroker; \
                 choose GPU models with accelerator_type:<MODEL> resources"
                .into());
        }
    }
    let metadata = request.metadata.clone().unwrap_or_default();
    let mut spec = JobSpec {
        entrypoint: request.entrypoint.clone(),
        runtime_env: runtime_env(request.runtime_env.as_ref(), digests)?,
        resources: resources(request, &metadata)?,
        labels: labels(&metadata),
        idempotency_key: Some(submission_id.to_string()),
        ..JobSpec::default()
    };
    if let Some(text) = metadata.get(META_PRIORITY) {
        spec.priority = text
            .trim()
            .parse()
            .map_err(|_| format!("metadata {META_PRIORITY}: '{text}' is not a whole number"))?;
    }
    if let Some(text) = metadata.get(META_MAX_RETRIES) {
        spec.max_retries = text.trim().parse().map_err(|_| {
            format!("metadata {META_MAX_RETRIES}: '{text}' is not a whole number of at least 0")
        })?;
    }
    if let Some(text) = metadata.get(META_TIME_LIMIT) {
        let limit = humantime::parse_duration(text.trim())
            .map_err(|e| format!("metadata {META_TIME_LIMIT}: '{text}' is not a duration ({e})"))?;
        spec.time_limit = Some(limit);
    }
    Ok(spec)
}

fn quantity(field: &str, value: Option<f64>) -> Result<Quantity, String> {
    value.map_or(Ok(Quantity::ZERO), |v| {
        Quantity::from_f64(v).map_err(|e| format!("{field}: {v} {e}"))
    })
}

fn resources(
    request: &SubmitRequest,
    metadata: &BTreeMap<String, String>,
) -> Result<Resources, String> {
    let mut resources = Resources {
        cpus: quantity("entrypoint_num_cpus", request.entrypoint_num_cpus)?,
        gpus: quantity("entrypoint_num_gpus", request.entrypoint_num_gpus)?,
        memory: Bytes(request.entrypoint_memory.unwrap_or(0)),
        ..Resources::default()
    };
    let mut add_model = |model: GpuModel| {
        if !resources.gpu_types.contains(&model) {
            resources.gpu_types.push(model);
        }
    };
    for (name, amount) in request.entrypoint_resources.iter().flatten() {
        if let Some(model) = name.strip_prefix(ACCELERATOR_PREFIX) {
            add_model(GpuModel::parse(model).map_err(|e| format!("entrypoint_resources: {e}"))?);
        } else {
            let field = format!("entrypoint_resources.{name}");
            resources
                .custom
                .insert(name.clone(), quantity(&field, Some(*amount))?);
        }
    }
    if let Some(list) = metadata.get(META_GPU_TYPES) {
        let models =
            GpuModel::parse_list(list).map_err(|e| format!("metadata {META_GPU_TYPES}: {e}"))?;
        models.into_iter().for_each(add_model);
    }
    Ok(resources)
}

/// Metadata as labels: keys keep letters, digits, `-`, `_`, `.` and `/`
/// (anything else becomes `_`) and at most 63 characters; values lose
/// control characters and are cut at 256 bytes; the first of two keys that
/// sanitise alike wins; at most 64 labels, by key order.
pub(crate) fn labels(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (key, value) in metadata {
        if labels.len() == MAX_LABELS {
            break;
        }
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                    c
                } else {
                    '_'
                }
            })
            .take(63)
            .collect();
        if key.is_empty() {
            continue;
        }
        let mut value: String = value.chars().filter(|c| !c.is_control()).collect();
        if value.len() > 256 {
            let mut cut = 256;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
        }
        labels.entry(key).or_insert(value);
    }
    labels
}

fn runtime_env(
    value: Option<&Value>,
    digests: &HashMap<String, String>,
) -> Result<RuntimeEnv, String> {
    let mut env = RuntimeEnv::default();
    let fields = match value {
        None | Some(Value::Null) => return Ok(env),
        Some(Value::Object(fields)) => fields,
        Some(_) => return Err("runtime_env must be an object".into()),
    };
    let package = |uri: &str| -> Result<String, String> {
        if uri.ends_with(".whl") && uri.starts_with("gcs://") {
            return Err(format!(
                "runtime_env: uploaded wheels ({uri}) are not supported by raybroker; \
                 publish the wheel to an index and list it under pip"
            ));
        }
        match (uploaded_package(uri), digests.get(uri)) {
            (Some(_), Some(digest)) => Ok(broker_package_uri(digest)),
            (Some(_), None) => Err(format!("package {uri} does not exist; upload it first")),
            (None, _) if !uri.contains("://") => Err(format!(
                "runtime_env: '{uri}' is a local path; Ray's clients upload local \
                 directories before submitting, send the uploaded gcs:// URI"
            )),
            (None, _) => Ok(uri.to_string()),
        }
    };
    for (key, value) in fields {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("env_vars", Value::Object(vars)) => {
                for (name, value) in vars {
                    let Value::String(value) = value else {
                        return Err(format!("runtime_env.env_vars.{name} must be a string"));
                    };
                    env.env_vars.insert(name.clone(), value.clone());
                }
            }
            ("working_dir", Value::String(uri)) => env.working_dir = Some(package(uri)?),
            ("py_modules", Value::Array(uris)) => {
                for uri in uris {
                    let uri = uri.as_str().ok_or("runtime_env.py_modules must be URIs")?;
                    env.py_modules.push(package(uri)?);
                }
            }
            ("pip", value) => env.pip = pip_packages(value)?,
            (key, _) if DROPPED_RUNTIME_ENV_KEYS.contains(&key) => {}
            ("env_vars" | "working_dir" | "py_modules", _) => {
                return Err(format!("runtime_env.{key} has the wrong type"))
            }
            (other, _) => {
                return Err(format!(
                    "runtime_env.{other} is not supported by raybroker; \
                     supported: env_vars, working_dir, py_modules, pip"
                ))
            }
        }
    }
    Ok(env)
}

/// `pip` as a list of requirements, or Ray's parsed form
/// `{"packages": [...], "pip_check": false}` (no `pip_version`).
fn pip_packages(value: &Value) -> Result<Vec<String>, String> {
    let list = match value {
        Value::Array(list) => list,
        Value::Object(fields) => {
            if fields
                .get("pip_version")
                .is_some_and(|v| !v.is_null() && v != "")
            {
                return Err("runtime_env.pip.pip_version is not supported by raybroker".into());
            }
            match fields.get("packages") {
                Some(Value::Array(list)) => list,
                _ => return Err("runtime_env.pip.packages must be a list".into()),
            }
        }
        _ => return Err("runtime_env.pip must be a list of requirements".into()),
    };
    list.iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| "runtime_env.pip entries must be strings".to_string())
        })
        .collect()
}

/// A broker spec field as the Ray request names it, for error messages.
pub(crate) fn ray_field(field: &str) -> String {
    let renamed = [
        ("resources.cpus", "entrypoint_num_cpus"),
        ("resources.gpus", "entrypoint_num_gpus"),
        ("resources.memory", "entrypoint_memory"),
        ("resources.gpu_types", "accelerator_type:<MODEL>"),
        ("resources.custom", "entrypoint_resources"),
        ("resources", "entrypoint resources"),
        ("labels", "metadata"),
        ("idempotency_key", "submission_id"),
        ("priority", "metadata raybroker.priority"),
        ("max_retries", "metadata raybroker.max_retries"),
        ("time_limit", "metadata raybroker.time_limit"),
    ];
    for (broker, ray) in renamed {
        if let Some(rest) = field.strip_prefix(broker) {
            if rest.is_empty() || rest.starts_with('.') {
                return format!("{ray}{rest}");
            }
        }
    }
    field.to_string()
}
