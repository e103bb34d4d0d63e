//! Checks a parsed [`JobSpec`] against the limits a sane job stays within, so
//! bad input is refused with the offending field named before anything is
//! stored.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gpu::GpuCatalog;
use crate::quantity::{Bytes, Quantity};
use crate::spec::JobSpec;

/// One problem with one field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `resources.gpus` (empty for the whole document).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// What validation needs to know about the deployment.
#[derive(Clone, Debug, Default)]
pub struct ValidationContext {
    /// GPU models a job may name.
    pub gpu_models: GpuCatalog,
    /// Names of configured clusters, to catch typos in placement constraints.
    pub clusters: BTreeSet<String>,
}

/// Largest per-node amounts a job may ask for; beyond them the request is a typo.
pub const MAX_CPUS_PER_NODE: u64 = 4_096;
/// See [`MAX_CPUS_PER_NODE`].
pub const MAX_GPUS_PER_NODE: u64 = 64;
/// See [`MAX_CPUS_PER_NODE`]: 64 TiB.
pub const MAX_MEMORY_PER_NODE: Bytes = Bytes(64 << 40);
/// Most nodes one gang job may ask for.
pub const MAX_NODES: u32 = 4_096;
/// Longest time limit: 30 days.
pub const MAX_TIME_LIMIT_SECS: u64 = 30 * 24 * 3600;
/// Longest entrypoint, in bytes.
pub const MAX_ENTRYPOINT_BYTES: usize = 16 * 1024;

/// Returns every problem found, or `Ok` when the spec can be queued.
pub fn validate(spec: &JobSpec, ctx: &ValidationContext) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| errors.push(FieldError::new(field, message));

    if spec.name.len() > 128 || spec.name.chars().any(char::is_control) {
        bad("name", "must be at most 128 printable characters".into());
    }
    if spec.entrypoint.trim().is_empty() {
        bad(
            "entrypoint",
            "must not be empty: give the command to run, e.g. 'python train.py'".into(),
        );
    } else if spec.entrypoint.len() > MAX_ENTRYPOINT_BYTES {
        bad("entrypoint", format!("is longer than {MAX_ENTRYPOINT_BYTES} bytes; ship long configuration as a file in working_dir"));
    } else if spec.entrypoint.contains('\0') {
        bad("entrypoint", "must not contain NUL bytes".into());
    }

    let r = &spec.resources;
    if r.cpus > Quantity::whole(MAX_CPUS_PER_NODE) {
        bad(
            "resources.cpus",
            format!(
                "{} CPUs per node is more than any node has (max {MAX_CPUS_PER_NODE})",
                r.cpus
            ),
        );
    }
    if r.gpus > Quantity::whole(MAX_GPUS_PER_NODE) {
        bad(
            "resources.gpus",
            format!(
                "{} GPUs per node is more than any node has (max {MAX_GPUS_PER_NODE})",
                r.gpus
            ),
        );
    } else if r.gpus > Quantity::whole(1) && !r.gpus.is_whole() {
        bad(
            "resources.gpus",
            format!(
                "{} is not valid: above 1, GPUs must be whole (fractions like 0.25 share one GPU)",
                r.gpus
            ),
        );
    }
    if r.memory > MAX_MEMORY_PER_NODE {
        bad(
            "resources.memory",
            format!(
                "{} per node is more than any node has (max {MAX_MEMORY_PER_NODE})",
                r.memory
            ),
        );
    }
    if r.nodes == 0 || r.nodes > MAX_NODES {
        bad(
            "resources.nodes",
            format!("must be between 1 and {MAX_NODES}"),
        );
    }
    if !r.gpu_types.is_empty() && r.gpus.is_zero() {
        bad(
            "resources.gpu_types",
            "names GPU models but resources.gpus is 0; set resources.gpus".into(),
        );
    }
    for model in &r.gpu_types {
        if !ctx.gpu_models.contains(model) {
            let known: Vec<&str> = ctx.gpu_models.models().map(|m| m.as_str()).collect();
            bad(
                "resources.gpu_types",
                format!(
                    "unknown GPU model '{model}'; known models: {}",
                    known.join(", ")
                ),
            );
        }
    }
    for (name, amount) in &r.custom {
        let field = format!("resources.custom.{name}");
        if !is_resource_name(name) {
            bad(
                &field,
                "resource names use letters, digits, '_', '-', '.', ':' and '/' (at most 128)"
                    .into(),
            );
        } else if matches!(
            name.as_str(),
            "CPU" | "GPU" | "memory" | "object_store_memory"
        ) {
            bad(&field, format!("'{name}' is a built-in resource; use resources.cpus, resources.gpus or resources.memory"));
        }
        if *amount > Quantity::whole(1_000_000) {
            bad(&field, "is absurdly large (max 1000000)".into());
        }
    }

    if !(-1000..=1000).contains(&spec.priority) {
        bad("priority", "must be between -1000 and 1000".into());
    }
    if spec.max_retries > 100 {
        bad("max_retries", "must be at most 100".into());
    }
    for (class, retries) in &spec.retry {
        let field = format!("retry.{class}");
        if *class == crate::FailureClass::Cancelled {
            bad(
                &field,
                "a cancelled job is never retried; remove this entry".into(),
            );
        } else if *retries > 100 {
            bad(&field, "must be at most 100".into());
        }
    }
    match spec.time_limit {
        Some(limit) if limit.as_secs() == 0 => {
            bad("time_limit", "must be at least one second".into())
        }
        Some(limit) if limit.as_secs() > MAX_TIME_LIMIT_SECS => {
            bad("time_limit", "must be at most 30 days".into())
        }
        _ => {}
    }

    if spec.labels.len() > 64 {
        bad("labels", "at most 64 labels".into());
    }
    for (key, value) in &spec.labels {
        if !is_label_key(key) {
            bad(
                &format!("labels.{key}"),
                "label keys are 1-63 letters, digits, '-', '_', '.' or '/'".into(),
            );
        }
        if value.len() > 256 || value.chars().any(char::is_control) {
            bad(
                &format!("labels.{key}"),
                "label values are at most 256 printable characters".into(),
            );
        }
    }
    if let Some(key) = &spec.idempotency_key {
        if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
            bad(
                "idempotency_key",
                "must be 1-256 printable characters".into(),
            );
        }
    }

    for name in spec.runtime_env.env_vars.keys() {
        let ok = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            bad(&format!("runtime_env.env_vars.{name}"), "environment variable names use letters, digits and '_' and do not start with a digit".into());
        }
    }

    let placement = &spec.placement;
    for (field, list) in [
        ("placement.allowed_clusters", &placement.allowed_clusters),
        ("placement.denied_clusters", &placement.denied_clusters),
    ] {
        for cluster in list {
            if !ctx.clusters.contains(cluster) {
                let known: Vec<&str> = ctx.clusters.iter().map(String::as_str).collect();
                bad(
                    field,
                    format!(
                        "unknown cluster '{cluster}'; configured clusters: {}",
                        if known.is_empty() {
                            "(none)".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
    }
    if !placement.allowed_clusters.is_empty()
        && placement
            .allowed_clusters
            .iter()
            .all(|c| placement.denied_clusters.contains(c))
    {
        bad(
            "placement",
            "every allowed cluster is also denied, so the job could never run".into(),
        );
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn is_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
}

fn is_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 63
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ValidationContext {
        ValidationContext {
            gpu_models: GpuCatalog::default(),
            clusters: ["onprem-a".to_string(), "gke-burst".to_string()].into(),
        }
    }

    fn fields(json: &str) -> Vec<String> {
        let spec = JobSpec::from_json(json.as_bytes()).expect("parses");
        match validate(&spec, &ctx()) {
            Ok(()) => vec![],
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn a_typical_job_is_valid() {
        let ok = r#"{"entrypoint": "python train.py", "resources": {"cpus": 8, "memory": "32GiB", "gpus": 0.25, "gpu_types": "A100|H100"},
                     "placement": {"allowed_clusters": ["onprem-a"]}, "labels": {"project": "ant"}}"#;
        assert_eq!(fields(ok), Vec::<String>::new());
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(fields(r#"{"entrypoint": "  "}"#), ["entrypoint"]);
        assert_eq!(
            fields(r#"{"entrypoint": "x", "resources": {"cpus": 100000}}"#),
            ["resources.cpus"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "resources": {"gpus": 1.5}}"#),
            ["resources.gpus"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "resources": {"gpus": 1, "gpu_types": "B9000"}}"#),
            ["resources.gpu_types"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "resources": {"gpu_types": "A100"}}"#),
            ["resources.gpu_types"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "resources": {"nodes": 0}}"#),
            ["resources.nodes"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "resources": {"memory": "100TiB"}}"#),
            ["resources.memory"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "resources": {"custom": {"GPU": 1}}}"#),
            ["resources.custom.GPU"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "priority": 5000}"#),
            ["priority"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "retry": {"job_error": 101, "node_lost": 3}}"#),
            ["retry.job_error"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "retry": {"cancelled": 1}}"#),
            ["retry.cancelled"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "time_limit": "90d"}"#),
            ["time_limit"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "placement": {"allowed_clusters": ["nowhere"]}}"#),
            ["placement.allowed_clusters"]
        );
        assert_eq!(
            fields(r#"{"entrypoint": "x", "runtime_env": {"env_vars": {"1BAD": "v"}}}"#),
            ["runtime_env.env_vars.1BAD"]
        );
        assert_eq!(
            fields(
                r#"{"entrypoint": "x", "placement": {"allowed_clusters": ["onprem-a"], "denied_clusters": ["onprem-a"]}}"#
            ),
            ["placement"]
        );
    }
}
