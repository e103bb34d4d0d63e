//! What a simulated cluster looks like: its nodes, what the backend can
//! honour, and the origin it tags jobs with.
//!
//! Read strictly (unknown fields are errors) and checked by
//! [`SimClusterConfig::validate`] before a cluster is built, like every
//! adapter's entry in the broker's cluster list.

use std::collections::BTreeMap;
use std::time::Duration;

use raybroker_adapter::Capabilities;
use raybroker_core::{Bytes, GpuModel, Quantity};
use serde::{Deserialize, Deserializer};

/// One simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimClusterConfig {
    /// The cluster's nodes, as groups of identical ones.
    pub nodes: Vec<NodeShape>,
    /// What the simulated backend honours; everything by default.
    #[serde(default = "every_capability")]
    pub capabilities: Capabilities,
    /// The broker's origin tag: every job submitted through the adapter
    /// carries it, and `list_owned` shows only jobs that carry it.
    pub origin: String,
    /// How long an entrypoint the simulator does not interpret runs before it
    /// succeeds (e.g. `python train.py`), e.g. `10m`.
    #[serde(default = "default_duration", deserialize_with = "duration_text")]
    pub default_duration: Duration,
    /// The version the snapshot reports.
    #[serde(default = "default_version")]
    pub version: String,
}

/// `count` identical nodes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeShape {
    /// How many nodes of this shape.
    #[serde(default = "one")]
    pub count: u32,
    /// Node ids are `<prefix>-<n>`, with `n` counting over the whole cluster.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// CPUs per node.
    pub cpus: Quantity,
    /// Memory per node.
    #[serde(default)]
    pub memory: Bytes,
    /// Whole GPUs per node.
    #[serde(default)]
    pub gpus: Quantity,
    /// The model of the node's GPUs.
    #[serde(default)]
    pub gpu_model: Option<GpuModel>,
    /// Custom resources per node.
    #[serde(default)]
    pub custom: BTreeMap<String, Quantity>,
}

/// Why a simulated cluster cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `origin` is unusable as a tag.
    #[error("origin '{0}' must be 1-128 characters without whitespace")]
    BadOrigin(String),
    /// The cluster would have no node.
    #[error("a simulated cluster needs at least one node")]
    NoNodes,
    /// One node shape is not acceptable.
    #[error("nodes[{index}]: {reason}")]
    BadShape {
        /// The shape's position in `nodes`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// `default_duration` is zero.
    #[error("default_duration must be positive")]
    ZeroDuration,
}

fn every_capability() -> Capabilities {
    Capabilities {
        fractional_gpus: true,
        multi_node: true,
        gpu_models: true,
        custom_resources: true,
    }
}

fn default_duration() -> Duration {
    Duration::from_secs(60)
}

fn default_version() -> String {
    concat!("sim ", env!("CARGO_PKG_VERSION")).to_string()
}

fn one() -> u32 {
    1
}

fn default_prefix() -> String {
    "node".to_string()
}

fn duration_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("'{text}' is not a duration ({e}); write e.g. 10m"))
    })
}

impl SimClusterConfig {
    /// A cluster tagging jobs with `origin`, with these nodes and defaults
    /// for the rest.
    pub fn new(origin: impl Into<String>, nodes: Vec<NodeShape>) -> SimClusterConfig {
        SimClusterConfig {
            nodes,
            capabilities: every_capability(),
            origin: origin.into(),
            default_duration: default_duration(),
            version: default_version(),
        }
    }

    /// Checks what parsing cannot: the origin, and that every shape is a
    /// node a cluster could have.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.origin.is_empty()
            || self.origin.len() > 128
            || self.origin.chars().any(char::is_whitespace)
        {
            return Err(ConfigError::BadOrigin(self.origin.clone()));
        }
        if self.nodes.iter().all(|shape| shape.count == 0) {
            return Err(ConfigError::NoNodes);
        }
        if self.default_duration.is_zero() {
            return Err(ConfigError::ZeroDuration);
        }
        for (index, shape) in self.nodes.iter().enumerate() {
            let bad = |reason: &str| ConfigError::BadShape {
                index,
                reason: reason.to_string(),
            };
            if !shape.gpus.is_whole() {
                return Err(bad(
                    "gpus must be a whole number (jobs may share a GPU, nodes have whole ones)",
                ));
            }
            if shape.gpus.is_zero() && shape.gpu_model.is_some() {
                return Err(bad("gpu_model is set but the node has no GPUs"));
            }
            if shape.prefix.is_empty() || shape.prefix.chars().any(char::is_whitespace) {
                return Err(bad("prefix must be non-empty without whitespace"));
            }
        }
        Ok(())
    }
}

impl NodeShape {
    /// `count` CPU-only nodes.
    pub fn cpu(count: u32, cpus: u64, memory: Bytes) -> NodeShape {
        NodeShape {
            count,
            prefix: "cpu".to_string(),
            cpus: Quantity::whole(cpus),
            memory,
            gpus: Quantity::ZERO,
            gpu_model: None,
            custom: BTreeMap::new(),
        }
    }

    /// `count` nodes with `gpus` GPUs of `model` each; ids start with the
    /// model in lower case.
    pub fn gpu(count: u32, cpus: u64, memory: Bytes, gpus: u64, model: GpuModel) -> NodeShape {
        NodeShape {
            count,
            prefix: model.as_str().to_ascii_lowercase(),
            cpus: Quantity::whole(cpus),
            memory,
            gpus: Quantity::whole(gpus),
            gpu_model: Some(model),
            custom: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_with_defaults_parses_and_validates() {
        let config: SimClusterConfig = serde_norway::from_str(
            "origin: test\nnodes:\n  - {count: 2, cpus: 16, memory: 64GiB, gpus: 4, gpu_model: a100}\n  - {cpus: 8}\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.nodes[0].count, 2);
        assert_eq!(
            config.nodes[0].gpu_model,
            Some(GpuModel::parse("A100").unwrap())
        );
        assert_eq!(config.nodes[0].memory.0, 64 << 30);
        assert_eq!(config.nodes[1].count, 1);
        assert_eq!(config.default_duration, Duration::from_secs(60));
        assert!(config.capabilities.fractional_gpus);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let err = serde_norway::from_str::<SimClusterConfig>("origin: o\nnodes: []\nspeed: 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `speed`"), "{err}");
        let mut config = SimClusterConfig::new("o", vec![NodeShape::cpu(1, 4, Bytes(0))]);
        config.validate().unwrap();
        config.nodes[0].gpus = Quantity::from_units(5_000);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BadShape { index: 0, .. })
        ));
        config.nodes.clear();
        assert_eq!(config.validate(), Err(ConfigError::NoNodes));
        let config = SimClusterConfig::new("has space", vec![NodeShape::cpu(1, 4, Bytes(0))]);
        assert!(matches!(config.validate(), Err(ConfigError::BadOrigin(_))));
    }
}
