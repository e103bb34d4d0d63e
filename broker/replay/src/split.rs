//! How the trace's nodes are split into clusters: a small, strict YAML file.
//!
//! ```yaml
//! version: 1
//! clusters:
//!   - name: dc-east            # unique, [a-z0-9-]
//!     tier: 0                  # 0 = on-prem, higher = burst
//!     cost_per_gpu_hour: 1.0
//!     nodes:                   # a node joins if any rule matches it
//!       - models: [G2]         # GPU models, or `cpu` for CPU-only nodes; absent = any node
//!         slice: [0.0, 0.4]    # deterministic slice of matching nodes, by a hash of `sn`
//! ```
//!
//! Every node must land in exactly one cluster: a node two clusters claim,
//! a node no cluster claims, and a cluster with no node are errors, so a
//! typo in a split cannot silently drop capacity.

use std::collections::BTreeSet;

use raybroker_core::GpuModel;
use serde::Deserialize;

use crate::trace::{unit_hash, TraceNode};

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFile {
    /// Format version; only 1 exists.
    pub version: u32,
    /// The clusters, in the order first-fit tries them.
    pub clusters: Vec<ClusterRule>,
}

/// One cluster of the split.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRule {
    /// The cluster's name.
    pub name: String,
    /// 0 = on-prem; higher tiers are burst capacity.
    pub tier: u32,
    /// Price of one GPU-hour, for reports and placement ties.
    pub cost_per_gpu_hour: f64,
    /// Which nodes belong to it.
    pub nodes: Vec<NodeRule>,
}

/// A set of nodes: by GPU model, then a deterministic slice of those.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRule {
    /// GPU models, or `cpu` for CPU-only nodes; empty means every node.
    #[serde(default)]
    pub models: Vec<String>,
    /// `[from, to)` of the node's hash position in [0, 1).
    #[serde(default = "whole_range")]
    pub slice: [f64; 2],
}

fn whole_range() -> [f64; 2] {
    [0.0, 1.0]
}

/// One cluster with its nodes.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The cluster's name.
    pub name: String,
    /// Its tier.
    pub tier: u32,
    /// Its price per GPU-hour.
    pub cost_per_gpu_hour: f64,
    /// Its nodes, in trace order.
    pub nodes: Vec<TraceNode>,
}

/// Why a split cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Not valid YAML for the format.
    #[error("split file: {0}")]
    Parse(String),
    /// Valid YAML, unusable content.
    #[error("split file: {0}")]
    Invalid(String),
}

/// A node kind a rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    CpuOnly,
    Gpu(GpuModel),
}

impl SplitFile {
    /// Reads and checks the file's own content (not yet against nodes).
    pub fn parse(text: &str) -> Result<SplitFile, SplitError> {
        let file: SplitFile =
            serde_norway::from_str(text).map_err(|e| SplitError::Parse(e.to_string()))?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), SplitError> {
        let invalid = |msg: String| Err(SplitError::Invalid(msg));
        if self.version != 1 {
            return invalid(format!("version {} is unknown (only 1)", self.version));
        }
        if self.clusters.is_empty() {
            return invalid("clusters: at least one cluster is needed".into());
        }
        let mut names = BTreeSet::new();
        for (i, cluster) in self.clusters.iter().enumerate() {
            let ok_name = !cluster.name.is_empty()
                && cluster.name.len() <= 63
                && cluster
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_name {
                return invalid(format!(
                    "clusters[{i}].name `{}`: use a-z, 0-9 and '-'",
                    cluster.name
                ));
            }
            if !names.insert(cluster.name.as_str()) {
                return invalid(format!(
                    "clusters[{i}].name `{}` is used twice",
                    cluster.name
                ));
            }
            if !(cluster.cost_per_gpu_hour.is_finite() && cluster.cost_per_gpu_hour >= 0.0) {
                return invalid(format!("clusters[{i}].cost_per_gpu_hour must be >= 0"));
            }
            if cluster.nodes.is_empty() {
                return invalid(format!("clusters[{i}].nodes: at least one rule is needed"));
            }
            for (j, rule) in cluster.nodes.iter().enumerate() {
                let [from, to] = rule.slice;
                if !(0.0..=1.0).contains(&from) || !(0.0..=1.0).contains(&to) || from >= to {
                    return invalid(format!(
                        "clusters[{i}].nodes[{j}].slice [{from}, {to}]: need 0 <= from < to <= 1"
                    ));
                }
                rule.kinds().map_err(|e| {
                    SplitError::Invalid(format!("clusters[{i}].nodes[{j}].models: {e}"))
                })?;
            }
        }
        Ok(())
    }

    /// Assigns every node to its one cluster.
    pub fn assign(&self, nodes: &[TraceNode]) -> Result<Vec<ClusterSpec>, SplitError> {
        let mut clusters: Vec<ClusterSpec> = self
            .clusters
            .iter()
            .map(|c| ClusterSpec {
                name: c.name.clone(),
                tier: c.tier,
                cost_per_gpu_hour: c.cost_per_gpu_hour,
                nodes: Vec::new(),
            })
            .collect();
        let mut unclaimed = Vec::new();
        for node in nodes {
            let position = unit_hash(&node.name);
            let claims: Vec<usize> = self
                .clusters
                .iter()
                .enumerate()
                .filter(|(_, c)| c.nodes.iter().any(|r| r.matches(node, position)))
                .map(|(i, _)| i)
                .collect();
            match claims.as_slice() {
                [] => unclaimed.push(node.name.as_str()),
                [one] => clusters[*one].nodes.push(node.clone()),
                [a, b, ..] => {
                    return Err(SplitError::Invalid(format!(
                        "node {} is claimed by both {} and {}",
                        node.name, self.clusters[*a].name, self.clusters[*b].name
                    )))
                }
            }
        }
        if !unclaimed.is_empty() {
            return Err(SplitError::Invalid(format!(
                "{} node(s) belong to no cluster, e.g. {}",
                unclaimed.len(),
                unclaimed[..unclaimed.len().min(3)].join(", ")
            )));
        }
        if let Some(empty) = clusters.iter().find(|c| c.nodes.is_empty()) {
            return Err(SplitError::Invalid(format!(
                "cluster {} gets no node",
                empty.name
            )));
        }
        Ok(clusters)
    }
}

impl NodeRule {
    fn kinds(&self) -> Result<Vec<Kind>, String> {
        self.models
            .iter()
            .map(|m| {
                if m.eq_ignore_ascii_case("cpu") {
                    Ok(Kind::CpuOnly)
                } else {
                    GpuModel::parse(m).map(Kind::Gpu).map_err(|e| e.to_string())
                }
            })
            .collect()
    }

    fn matches(&self, node: &TraceNode, position: f64) -> bool {
        let kind = match &node.gpu_model {
            Some(model) => Kind::Gpu(model.clone()),
            None => Kind::CpuOnly,
        };
        // Checked by validate; an unreadable list matches nothing.
        let kinds = self.kinds().unwrap_or_default();
        let [from, to] = self.slice;
        (self.models.is_empty() || kinds.contains(&kind)) && position >= from && position < to
    }
}

#[cfg(test)]
mod tests;
