//! The job specification a user submits, as JSON or YAML.
//!
//! The tenant is deliberately absent: it comes from the caller's token, and a
//! body that tries to set it is refused as an unknown field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::failure::FailureClass;
use crate::resources::Resources;
use crate::validate::FieldError;

/// Everything a job asks for. Parse with [`JobSpec::from_json`] or
/// [`JobSpec::from_yaml`], then check with [`crate::validate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A human name; defaults to one derived from the entrypoint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The shell command the job runs, e.g. `python train.py --task Isaac-Ant-v0 --headless`.
    #[schema(example = "python scripts/rsl_rl/train.py --task Isaac-Ant-v0 --headless")]
    pub entrypoint: String,
    /// Passed through to Ray's `runtime_env`.
    #[serde(default, skip_serializing_if = "RuntimeEnv::is_empty")]
    pub runtime_env: RuntimeEnv,
    /// Per-node resources and node count.
    #[serde(default)]
    pub resources: Resources,
    /// Where the job may run.
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
    /// Higher runs first within a tenant; -1000 to 1000, default 0.
    #[serde(default)]
    pub priority: i32,
    /// How many times an attempt lost to the infrastructure may be retried
    /// (0 to 100); 0 keeps the broker's per-class default. See `retry`.
    #[serde(default)]
    pub max_retries: u32,
    /// Retries per failure class, over the broker's defaults and
    /// `max_retries`, e.g. `{job_error: 2}` retries a non-zero exit twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, u32>, example = json!({"job_error": 2}))]
    pub retry: BTreeMap<FailureClass, u32>,
    /// Wall-clock limit of one attempt, e.g. `2h` or `90m`.
    #[serde(
        default,
        with = "duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, example = "2h")]
    pub time_limit: Option<Duration>,
    /// Free key/values to find jobs by.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The same key from the same tenant returns the same job instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Ray's `runtime_env`, limited to the fields the broker understands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEnv {
    /// Environment variables for the job's processes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
    /// A URI of the job's code (`s3://...zip`, `gs://...`, `https://...zip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// pip requirements installed for the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pip: Vec<String>,
    /// URIs of extra Python modules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub py_modules: Vec<String>,
}

impl RuntimeEnv {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self == &RuntimeEnv::default()
    }
}

/// Constraints on which clusters may run the job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Only these clusters (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_clusters: Vec<String>,
    /// Never these clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_clusters: Vec<String>,
    /// Cluster labels that must match, e.g. `{"site": "onprem"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_labels: BTreeMap<String, String>,
}

impl Placement {
    /// True when the job may run anywhere.
    pub fn is_empty(&self) -> bool {
        self == &Placement::default()
    }
}

/// Why a spec document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub FieldError);

impl JobSpec {
    /// Reads a JSON document, naming the offending field on error.
    pub fn from_json(bytes: &[u8]) -> Result<JobSpec, ParseError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let field = field_of(&err.path().to_string());
            let inner = err.into_inner();
            let message = if inner.is_syntax() || inner.is_eof() {
                format!("malformed JSON: {inner}")
            } else {
                strip_position(&inner.to_string())
            };
            ParseError(FieldError::new(field, message))
        })
    }

    /// Reads a YAML document (a single job), naming the offending field on error.
    pub fn from_yaml(text: &str) -> Result<JobSpec, ParseError> {
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let field = field_of(&err.path().to_string());
            let inner = err.into_inner();
            ParseError(FieldError::new(field, format!("{inner}")))
        })
    }

    /// The name to show: the given one, else derived from the entrypoint.
    pub fn display_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        derive_name(&self.entrypoint)
    }
}

/// `python scripts/train.py --x` -> `train`.
fn derive_name(entrypoint: &str) -> String {
    let mut words = entrypoint.split_whitespace();
    let first = words.next().unwrap_or("job");
    let program = if first.starts_with("python") {
        match words.next() {
            // `python -m pkg.module`: the module; `python -c '...'`: the interpreter.
            Some("-m") => words.next().unwrap_or(first),
            Some("-c") | None => first,
            Some(word) if !word.starts_with('-') => word,
            Some(_) => words.find(|w| !w.starts_with('-')).unwrap_or(first),
        }
    } else {
        first
    };
    let base = program.rsplit('/').next().unwrap_or(program);
    let stem = base.strip_suffix(".py").unwrap_or(base);
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "job".to_string()
    } else {
        cleaned
    }
}

fn field_of(path: &str) -> String {
    // serde_path_to_error writes `?` for a map key it could not read
    // (`retry.?`); the map's own name says where.
    let path = path.trim_end_matches(".?");
    if path == "." || path.is_empty() {
        String::new()
    } else {
        path.to_string()
    }
}

/// serde_json appends " at line 1 column 17"; the field name already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Seconds(u64),
            Human(String),
        }
        match Option::<Text>::deserialize(d)? {
            None => Ok(None),
            Some(Text::Seconds(s)) => Ok(Some(Duration::from_secs(s))),
            Some(Text::Human(text)) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                serde::de::Error::custom(format!(
                    "'{text}' is not a duration ({e}); write e.g. 90m, 2h or 1h30m"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::Quantity;

    const ISAAC_YAML: &str = r#"
name: ant-ppo
entrypoint: python scripts/rsl_rl/train.py --task Isaac-Ant-v0 --headless
runtime_env:
  env_vars: {WANDB_MODE: offline}
  pip: ["rsl-rl-lib==2.2.4"]
resources:
  cpus: 8
  memory: 32GiB
  gpus: 2
  gpu_type: A100|H100
placement:
  required_labels: {site: onprem}
priority: 5
max_retries: 2
retry: {job_error: 1, node_lost: 4}
time_limit: 2h
labels: {project: locomotion}
idempotency_key: ant-ppo-seed-1
"#;

    #[test]
    fn yaml_task_parses() {
        let spec = JobSpec::from_yaml(ISAAC_YAML).unwrap();
        assert_eq!(spec.name, "ant-ppo");
        assert_eq!(spec.resources.gpus, Quantity::whole(2));
        assert_eq!(spec.resources.memory.0, 32 << 30);
        assert_eq!(spec.resources.gpu_types.len(), 2);
        assert_eq!(spec.time_limit, Some(Duration::from_secs(7200)));
        assert_eq!(spec.placement.required_labels["site"], "onprem");
        assert_eq!(spec.retry[&FailureClass::JobError], 1);
        assert_eq!(spec.retry[&FailureClass::NodeLost], 4);
    }

    #[test]
    fn an_unknown_failure_class_in_retry_names_the_field() {
        let err = JobSpec::from_json(br#"{"entrypoint": "x", "retry": {"oops": 1}}"#).unwrap_err();
        assert_eq!(err.0.field, "retry");
        assert!(err.0.message.contains("job_error"), "{}", err.0.message);
        let err = JobSpec::from_yaml("entrypoint: x\nretry: {job_error: -1}\n").unwrap_err();
        assert!(err.0.field.starts_with("retry"), "{}", err.0.field);
    }

    #[test]
    fn json_round_trips() {
        let spec = JobSpec::from_yaml(ISAAC_YAML).unwrap();
        let json = serde_json::to_vec(&spec).unwrap();
        assert_eq!(JobSpec::from_json(&json).unwrap(), spec);
    }

    #[test]
    fn errors_name_the_field() {
        let err =
            JobSpec::from_json(br#"{"entrypoint": "x", "resources": {"cpus": -2}}"#).unwrap_err();
        assert_eq!(err.0.field, "resources.cpus");
        assert!(err.0.message.contains("negative"), "{}", err.0.message);

        let err = JobSpec::from_json(br#"{"entrypoint": "x", "tenant": "other"}"#).unwrap_err();
        assert!(
            err.0.message.contains("unknown field `tenant`"),
            "{}",
            err.0.message
        );

        let err = JobSpec::from_json(br#"{"entrypoint": "x", "time_limit": "soon"}"#).unwrap_err();
        assert_eq!(err.0.field, "time_limit");

        let err = JobSpec::from_json(br#"{"entrypoint": "#).unwrap_err();
        assert!(
            err.0.message.starts_with("malformed JSON"),
            "{}",
            err.0.message
        );

        let err =
            JobSpec::from_yaml("entrypoint: x\nresources:\n  memory: 3 parsecs\n").unwrap_err();
        assert_eq!(err.0.field, "resources.memory");
    }

    #[test]
    fn names_derive_from_entrypoints() {
        let spec = JobSpec {
            entrypoint: "python scripts/rsl_rl/train.py --task X".into(),
            ..Default::default()
        };
        assert_eq!(spec.display_name(), "train");
        let spec = JobSpec {
            entrypoint: "./run.sh".into(),
            ..Default::default()
        };
        assert_eq!(spec.display_name(), "run-sh");
        let spec = JobSpec {
            entrypoint: "python -c \"print('hi')\"".into(),
            ..Default::default()
        };
        assert_eq!(spec.display_name(), "python");
        let spec = JobSpec {
            entrypoint: "python3 -m isaaclab.train --x".into(),
            ..Default::default()
        };
        assert_eq!(spec.display_name(), "isaaclab-train");
    }
}
