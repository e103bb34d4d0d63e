//! Validation of RayJobs and RayClusters against the real KubeRay CRDs.
//!
//! The CRDs' `openAPIV3Schema` is OpenAPI v3 with Kubernetes extensions; it is
//! turned into JSON Schema the way the API server reads it:
//! - objects with `properties` and neither `additionalProperties` nor
//!   `x-kubernetes-preserve-unknown-fields` reject unknown fields (the API
//!   server prunes them, or refuses them with `fieldValidation=Strict`; this
//!   test server always refuses, so a typo never passes silently);
//! - `x-kubernetes-int-or-string` accepts an integer or a string;
//! - `nullable: true` accepts `null`;
//! - `x-kubernetes-embedded-resource` objects may carry `apiVersion`, `kind`
//!   and `metadata`;
//! - `x-kubernetes-validations` (CEL) rules are not evaluated: setting a field
//!   that carries them is refused with a message saying so, so a test can
//!   never pass on a rule nobody checked. `metadata` is checked separately
//!   (name and labels), as the API server does for every object.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The environment variable overriding where the CRDs are read from.
pub const CRDS_ENV: &str = "RAYBROKER_KUBERAY_CRDS";

/// Where the KubeRay CRDs are: `$RAYBROKER_KUBERAY_CRDS`, else
/// `../shared/kuberay-crds` beside the repository root.
pub fn crds_dir() -> PathBuf {
    match std::env::var(CRDS_ENV) {
        Ok(dir) if !dir.trim().is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kuberay-crds"),
    }
}

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// The field, in the API server's spelling: `spec.workerGroupSpecs[0].replicas`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// True for a field the schema does not declare (400 under strict
    /// field validation, not 422).
    pub unknown_field: bool,
}

/// The compiled schema of one kind, plus where its CEL rules are.
pub struct KindSchema {
    validator: jsonschema::Validator,
    /// JSON pointers (into instances, `*` for any array index or map key) of
    /// fields carrying CEL rules.
    cel_fields: Vec<Vec<String>>,
}

/// Why the CRDs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read or parsed.
    #[error("cannot read CRD {path}: {reason} (set {CRDS_ENV} to the kuberay-crds folder)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not a CRD with a v1 openAPIV3Schema.
    #[error("{0} has no v1 openAPIV3Schema")]
    NoSchema(PathBuf),
    /// The schema does not compile.
    #[error("schema of {path} does not compile: {reason}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl KindSchema {
    /// Loads and compiles `ray.io_<plural>.yaml` from `dir`.
    pub fn load(dir: &Path, plural: &str) -> Result<KindSchema, SchemaError> {
        let path = dir.join(format!("ray.io_{plural}.yaml"));
        let read_error = |reason: String| SchemaError::Read {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| read_error(e.to_string()))?;
        let crd: Value = serde_norway::from_str(&text).map_err(|e| read_error(e.to_string()))?;
        let schema = crd["spec"]["versions"]
            .as_array()
            .and_then(|versions| versions.iter().find(|v| v["name"] == "v1"))
            .map(|v| v["schema"]["openAPIV3Schema"].clone())
            .filter(Value::is_object)
            .ok_or_else(|| SchemaError::NoSchema(path.clone()))?;
        let mut cel_fields = Vec::new();
        let schema = to_json_schema(schema, &mut Vec::new(), &mut cel_fields);
        let validator = jsonschema::validator_for(&schema).map_err(|e| SchemaError::Compile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(KindSchema {
            validator,
            cel_fields,
        })
    }

    /// Every problem of `object`, empty when it is valid.
    pub fn validate(&self, object: &Value) -> Vec<Cause> {
        let mut causes: Vec<Cause> = Vec::new();
        for error in self.validator.iter_errors(object) {
            let at = field_path(error.instance_path().as_str());
            match error.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for name in unexpected {
                        causes.push(Cause {
                            field: join(&at, name),
                            message: "field not declared in schema".to_string(),
                            unknown_field: true,
                        });
                    }
                }
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    causes.push(Cause {
                        field: join(&at, property.as_str().unwrap_or_default()),
                        message: "Required value".to_string(),
                        unknown_field: false,
                    })
                }
                _ => causes.push(Cause {
                    field: at,
                    message: format!("Invalid value: {error}"),
                    unknown_field: false,
                }),
            }
        }
        for pattern in &self.cel_fields {
            for field in present_paths(object, pattern) {
                causes.push(Cause {
                    field,
                    message: "this field carries CEL validation rules (x-kubernetes-validations), \
                              which the test server does not evaluate; refusing rather than \
                              passing it unchecked"
                        .to_string(),
                    unknown_field: false,
                });
            }
        }
        causes.extend(check_metadata(&object["metadata"]));
        causes
    }
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// `/spec/workerGroupSpecs/0/replicas` -> `spec.workerGroupSpecs[0].replicas`.
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// Turns one OpenAPI v3 node (at `path` in instances) into JSON Schema.
fn to_json_schema(node: Value, path: &mut Vec<String>, cel: &mut Vec<Vec<String>>) -> Value {
    let Value::Object(mut map) = node else {
        return node;
    };
    if map.remove("x-kubernetes-validations").is_some() && !path.is_empty() {
        cel.push(path.clone());
    }
    let preserve = map.remove("x-kubernetes-preserve-unknown-fields") == Some(Value::Bool(true));
    let embedded = map.remove("x-kubernetes-embedded-resource") == Some(Value::Bool(true));
    if map.remove("x-kubernetes-int-or-string") == Some(Value::Bool(true)) {
        map.remove("type");
        map.insert(
            "anyOf".into(),
            serde_json::json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if map.remove("nullable") == Some(Value::Bool(true)) {
        if let Some(Value::String(kind)) = map.remove("type") {
            map.insert("type".into(), serde_json::json!([kind, "null"]));
        }
    }
    map.retain(|key, _| !key.starts_with("x-kubernetes-"));
    // Formats such as int32 and quantity are not JSON Schema's; the types say enough.
    map.remove("format");
    if let Some(Value::Object(properties)) = map.remove("properties") {
        let mut converted = Map::new();
        for (name, child) in properties {
            path.push(name.clone());
            converted.insert(name, to_json_schema(child, path, cel));
            path.pop();
        }
        if embedded {
            for name in ["apiVersion", "kind"] {
                converted
                    .entry(name.to_string())
                    .or_insert(serde_json::json!({"type": "string"}));
            }
            converted
                .entry("metadata".to_string())
                .or_insert(serde_json::json!({"type": "object"}));
        }
        map.insert("properties".into(), Value::Object(converted));
        if !preserve && !map.contains_key("additionalProperties") {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    if let Some(items) = map.remove("items") {
        path.push("*".into());
        map.insert("items".into(), to_json_schema(items, path, cel));
        path.pop();
    }
    if let Some(additional) = map.remove("additionalProperties") {
        let converted = if additional.is_object() {
            path.push("*".into());
            let converted = to_json_schema(additional, path, cel);
            path.pop();
            converted
        } else {
            additional
        };
        map.insert("additionalProperties".into(), converted);
    }
    for keyword in ["anyOf", "allOf", "oneOf"] {
        if let Some(Value::Array(options)) = map.remove(keyword) {
            let converted = options
                .into_iter()
                .map(|o| to_json_schema(o, path, cel))
                .collect();
            map.insert(keyword.into(), Value::Array(converted));
        }
    }
    Value::Object(map)
}

/// The paths present in `object` that match `pattern` (`*` matches any index or key).
fn present_paths(object: &Value, pattern: &[String]) -> Vec<String> {
    fn walk(value: &Value, pattern: &[String], at: String, out: &mut Vec<String>) {
        let Some((head, rest)) = pattern.split_first() else {
            out.push(at);
            return;
        };
        match (head.as_str(), value) {
            ("*", Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, rest, format!("{at}[{i}]"), out);
                }
            }
            ("*", Value::Object(map)) => {
                for (key, item) in map {
                    walk(item, rest, join(&at, key), out);
                }
            }
            (name, Value::Object(map)) => {
                if let Some(item) = map.get(name) {
                    walk(item, rest, join(&at, name), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(object, pattern, String::new(), &mut out);
    out
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            let b = part.as_bytes();
            !part.is_empty()
                && part.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn is_label_value(value: &str) -> bool {
    let b = value.as_bytes();
    value.is_empty()
        || (value.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
}

/// The API server's own checks of `metadata`: a DNS name, valid labels.
pub fn check_metadata(metadata: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let invalid = |field: String, message: String| Cause {
        field,
        message,
        unknown_field: false,
    };
    match metadata["name"].as_str() {
        Some(name) if is_dns_subdomain(name) => {}
        Some(name) => causes.push(invalid(
            "metadata.name".into(),
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
        )),
        None => causes.push(invalid("metadata.name".into(), "Required value: name is required".into())),
    }
    if let Some(labels) = metadata["labels"].as_object() {
        for (key, value) in labels {
            let name = key.rsplit('/').next().unwrap_or_default();
            let prefix_ok = key
                .rsplit_once('/')
                .is_none_or(|(prefix, _)| is_dns_subdomain(prefix));
            if name.is_empty() || !is_label_value(name) || !prefix_ok {
                causes.push(invalid(
                    format!("metadata.labels.{key}"),
                    "Invalid value: not a label key".into(),
                ));
            }
            if !value.as_str().is_some_and(is_label_value) {
                causes.push(invalid(
                    format!("metadata.labels.{key}"),
                    format!("Invalid value: {value}: not a label value"),
                ));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests;
