//! How the broker reaches one KubeRay cluster and what it creates there.
//!
//! One entry of the broker's cluster list, read strictly (unknown fields are
//! errors) and checked by [`KubeRayClusterConfig::validate`] before any call
//! goes out, so a malformed template is a config error naming the field, never
//! a RayJob the API server refuses later.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Toleration;
use raybroker_adapter::config::{default_request_timeout, duration_text, request_timeout_ok};
use raybroker_core::{Bytes, GpuModel, Quantity};
use serde::Deserialize;

/// Where each job runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A Ray cluster of its own per job, built from [`KubeRayClusterConfig::template`]
    /// and shut down when the job finishes.
    #[default]
    Ephemeral,
    /// An existing RayCluster, chosen by [`KubeRayClusterConfig::cluster_selector`].
    Shared,
}

/// What cancelling a job does to its RayJob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    /// Delete the RayJob (KubeRay deletes its cluster with it).
    #[default]
    Delete,
    /// Set `spec.suspend: true`: KubeRay stops the job and deletes its
    /// cluster but keeps the RayJob, so its status stays readable.
    Suspend,
}

/// One Ray node group's pod settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSettings {
    /// Container image; defaults to the template's `image`.
    #[serde(default)]
    pub image: Option<String>,
    /// Node labels the pods must land on (added to any GPU label).
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate (Kubernetes' own `tolerations` format).
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Service account of the pods.
    #[serde(default)]
    pub service_account: Option<String>,
}

/// The head group of an ephemeral cluster.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadTemplate {
    /// CPUs of the head pod (a CPU-only job gets at least its own request).
    #[serde(default = "default_head_cpus")]
    pub cpus: Quantity,
    /// Memory of the head pod, e.g. `8GiB`.
    #[serde(default = "default_head_memory")]
    pub memory: Bytes,
    /// Image, node selector, tolerations.
    #[serde(flatten)]
    pub pod: PodSettings,
}

impl Default for HeadTemplate {
    fn default() -> Self {
        HeadTemplate {
            cpus: default_head_cpus(),
            memory: default_head_memory(),
            pod: PodSettings::default(),
        }
    }
}

/// One worker group per GPU model the cluster offers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerGroupTemplate {
    /// The broker's name of the model, e.g. `L4`.
    pub gpu_model: GpuModel,
    /// The value of [`KubeRayClusterConfig::gpu_label`] on nodes of this
    /// model, e.g. `nvidia-l4` for GKE's `cloud.google.com/gke-accelerator`.
    pub label_value: String,
    /// Image, extra node selector, tolerations.
    #[serde(flatten)]
    pub pod: PodSettings,
    /// An autoscaled node pool of this model can add up to this many nodes
    /// beyond those that exist (the burst tier); 0 = no autoscaling.
    #[serde(default)]
    pub autoscale_max_nodes: u32,
    /// The shape of one autoscaled node: what it will have once it exists.
    #[serde(default)]
    pub autoscale_node: Option<NodeShape>,
}

/// What one node of an autoscaled pool has.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeShape {
    /// Allocatable CPUs.
    pub cpus: Quantity,
    /// Allocatable memory.
    pub memory: Bytes,
    /// GPUs.
    pub gpus: u32,
}

/// The per-cluster template every ephemeral RayJob's `rayClusterSpec` is built from.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTemplate {
    /// `rayVersion` of the cluster, e.g. `2.46.0`.
    pub ray_version: String,
    /// Default image of every pod, e.g. `rayproject/ray:2.46.0-gpu`.
    pub image: String,
    /// The head group.
    #[serde(default)]
    pub head: HeadTemplate,
    /// One group per GPU model.
    #[serde(default)]
    pub worker_groups: Vec<WorkerGroupTemplate>,
}

/// One KubeRay cluster.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeRayClusterConfig {
    /// A kubeconfig file; without it the broker uses its pod's service account
    /// inside Kubernetes, else `$KUBECONFIG` or `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; its current context without it.
    #[serde(default)]
    pub context: Option<String>,
    /// The namespace every object is created in.
    pub namespace: String,
    /// Ephemeral cluster per job, or a shared one.
    #[serde(default)]
    pub mode: Mode,
    /// Labels of the RayCluster shared-mode jobs run on (`clusterSelector`).
    #[serde(default)]
    pub cluster_selector: BTreeMap<String, String>,
    /// The ephemeral cluster template (ephemeral mode only).
    #[serde(default)]
    pub template: Option<ClusterTemplate>,
    /// The node label naming a node's GPU model.
    #[serde(default = "default_gpu_label")]
    pub gpu_label: String,
    /// What cancel does.
    #[serde(default)]
    pub cancel: CancelMode,
    /// How long a finished ephemeral cluster lingers (`ttlSecondsAfterFinished`).
    #[serde(default = "default_ttl", deserialize_with = "duration_text")]
    pub ttl_after_finished: Duration,
    /// Limit of one API request.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "duration_text"
    )]
    pub request_timeout: Duration,
    /// The broker's origin tag, the `raybroker.io/origin` label of everything created.
    pub origin: String,
}

/// Why a KubeRay cluster entry cannot be used; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The offending field, relative to the `kuberay:` section.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn default_head_cpus() -> Quantity {
    Quantity::whole(1)
}

fn default_head_memory() -> Bytes {
    Bytes(2 << 30)
}

fn default_gpu_label() -> String {
    "cloud.google.com/gke-accelerator".to_string()
}

fn default_ttl() -> Duration {
    Duration::from_secs(300)
}

/// True for a Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`,
/// starting and ending alphanumeric (empty is allowed by Kubernetes, not here).
pub fn is_label_value(value: &str) -> bool {
    is_label_shaped(value, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
    })
}

/// True for a DNS-1123 label (namespaces, group names): lower-case
/// alphanumerics and `-`, at most 63, alphanumeric at both ends.
pub fn is_dns_label(value: &str) -> bool {
    is_label_shaped(value, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
    })
}

/// 1 to 63 bytes, each `allowed`, alphanumeric at both ends.
fn is_label_shaped(value: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(|b| allowed(*b))
}

/// True for a label key: an optional DNS prefix and `/`, then a name part.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok =
        prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label));
    prefix_ok && is_label_value(name)
}

fn check_labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in labels {
        if !is_label_key(key) {
            return Err(ConfigError::new(
                format!("{field}.{key}"),
                "not a Kubernetes label key (e.g. cloud.google.com/gke-nodepool)",
            ));
        }
        if !value.is_empty() && !is_label_value(value) {
            return Err(ConfigError::new(
                format!("{field}.{key}"),
                format!("'{value}' is not a label value: up to 63 of A-Z a-z 0-9 . _ -"),
            ));
        }
    }
    Ok(())
}

fn check_pod(field: &str, pod: &PodSettings) -> Result<(), ConfigError> {
    if pod.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        return Err(ConfigError::new(
            format!("{field}.image"),
            "must not be empty",
        ));
    }
    check_labels(&format!("{field}.node_selector"), &pod.node_selector)?;
    for (i, toleration) in pod.tolerations.iter().enumerate() {
        let operator = toleration.operator.as_deref().unwrap_or("Equal");
        if !matches!(operator, "Equal" | "Exists") {
            return Err(ConfigError::new(
                format!("{field}.tolerations[{i}].operator"),
                format!("'{operator}' is neither Equal nor Exists"),
            ));
        }
        if let Some(effect) = toleration.effect.as_deref() {
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(ConfigError::new(
                    format!("{field}.tolerations[{i}].effect"),
                    format!("'{effect}' is not NoSchedule, PreferNoSchedule or NoExecute"),
                ));
            }
        }
    }
    Ok(())
}

impl ClusterTemplate {
    fn validate(&self) -> Result<(), ConfigError> {
        let version_ok = {
            let parts: Vec<&str> = self.ray_version.split('.').collect();
            parts.len() >= 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        if !version_ok {
            return Err(ConfigError::new(
                "template.ray_version",
                format!("'{}' is not a Ray version such as 2.46.0", self.ray_version),
            ));
        }
        if self.image.trim().is_empty() {
            return Err(ConfigError::new(
                "template.image",
                "name the Ray image, e.g. rayproject/ray:2.46.0-gpu",
            ));
        }
        if self.head.cpus.is_zero() || self.head.memory.0 == 0 {
            return Err(ConfigError::new(
                "template.head",
                "cpus and memory must be above zero",
            ));
        }
        check_pod("template.head", &self.head.pod)?;
        let mut seen = Vec::new();
        for (i, group) in self.worker_groups.iter().enumerate() {
            let at = format!("template.worker_groups[{i}]");
            if seen.contains(&&group.gpu_model) {
                return Err(ConfigError::new(
                    format!("{at}.gpu_model"),
                    format!("{} has a worker group already", group.gpu_model.as_str()),
                ));
            }
            seen.push(&group.gpu_model);
            if !is_label_value(&group.label_value) {
                return Err(ConfigError::new(
                    format!("{at}.label_value"),
                    format!(
                        "'{}' is not a label value, e.g. nvidia-l4",
                        group.label_value
                    ),
                ));
            }
            check_pod(&at, &group.pod)?;
            match (&group.autoscale_node, group.autoscale_max_nodes) {
                (None, n) if n > 0 => {
                    return Err(ConfigError::new(
                        format!("{at}.autoscale_node"),
                        "autoscale_max_nodes needs the shape of a node: {cpus, memory, gpus}",
                    ))
                }
                (Some(shape), _) if shape.gpus == 0 || shape.cpus.is_zero() => {
                    return Err(ConfigError::new(
                        format!("{at}.autoscale_node"),
                        "an autoscaled GPU node needs gpus and cpus above zero",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The worker group of `model`, if the template has one.
    pub fn group_of(&self, model: &GpuModel) -> Option<&WorkerGroupTemplate> {
        self.worker_groups.iter().find(|g| &g.gpu_model == model)
    }
}

impl KubeRayClusterConfig {
    /// A shared-mode config on `namespace` with defaults, for tools and tests.
    pub fn new(namespace: impl Into<String>, origin: impl Into<String>) -> KubeRayClusterConfig {
        KubeRayClusterConfig {
            kubeconfig: None,
            context: None,
            namespace: namespace.into(),
            mode: Mode::Ephemeral,
            cluster_selector: BTreeMap::new(),
            template: None,
            gpu_label: default_gpu_label(),
            cancel: CancelMode::Delete,
            ttl_after_finished: default_ttl(),
            request_timeout: default_request_timeout(),
            origin: origin.into(),
        }
    }

    /// Checks what parsing cannot; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_dns_label(&self.namespace) {
            return Err(ConfigError::new(
                "namespace",
                format!(
                    "'{}' is not a namespace name (lower case, digits, -)",
                    self.namespace
                ),
            ));
        }
        if !is_label_value(&self.origin) {
            return Err(ConfigError::new(
                "origin",
                format!(
                    "'{}' must be a Kubernetes label value: 1-63 of A-Z a-z 0-9 . _ -, \
                     alphanumeric at both ends",
                    self.origin
                ),
            ));
        }
        if !is_label_key(&self.gpu_label) {
            return Err(ConfigError::new("gpu_label", "not a Kubernetes label key"));
        }
        if self.context.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::new("context", "must not be empty"));
        }
        if !request_timeout_ok(self.request_timeout) {
            return Err(ConfigError::new(
                "request_timeout",
                "must be between 1ms and 10m",
            ));
        }
        if self.ttl_after_finished > Duration::from_secs(i32::MAX as u64) {
            return Err(ConfigError::new("ttl_after_finished", "is too long"));
        }
        match self.mode {
            Mode::Ephemeral => {
                let Some(template) = &self.template else {
                    return Err(ConfigError::new(
                        "template",
                        "mode: ephemeral needs a template {ray_version, image, head, worker_groups}",
                    ));
                };
                if !self.cluster_selector.is_empty() {
                    return Err(ConfigError::new(
                        "cluster_selector",
                        "only mode: shared uses a cluster_selector",
                    ));
                }
                template.validate()
            }
            Mode::Shared => {
                if self.cluster_selector.is_empty() {
                    return Err(ConfigError::new(
                        "cluster_selector",
                        "mode: shared needs the labels of the RayCluster, e.g. {ray.io/cluster: shared}",
                    ));
                }
                check_labels("cluster_selector", &self.cluster_selector)?;
                if self.cancel == CancelMode::Suspend {
                    return Err(ConfigError::new(
                        "cancel",
                        "KubeRay cannot suspend a clusterSelector RayJob: use cancel: delete in mode: shared",
                    ));
                }
                match &self.template {
                    Some(template) if !template.worker_groups.is_empty() => template.validate(),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The GPU model of a node label value, per the template's worker groups.
    pub fn model_of_label(&self, value: &str) -> Option<GpuModel> {
        let template = self.template.as_ref()?;
        template
            .worker_groups
            .iter()
            .find(|g| g.label_value == value)
            .map(|g| g.gpu_model.clone())
    }
}

#[cfg(test)]
pub(crate) mod tests;
