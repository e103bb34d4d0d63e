//! What a job needs from a cluster.
//!
//! The shape is per node: a job with `nodes: 4, gpus: 8` needs four nodes with
//! eight free GPUs each, started together (a gang). `gpus` may be fractional
//! (0.25: four trials share one GPU); above one it must be whole, as in Ray.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::gpu::GpuModel;
use crate::quantity::{Bytes, Quantity};

/// The resources one job asks for, per node, times `nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs per node (fractions allowed, four decimal places).
    #[serde(default = "one_cpu")]
    #[schema(value_type = f64, example = 8)]
    pub cpus: Quantity,
    /// Memory per node, in bytes on output; `32GiB`, `512Mi` or a byte count on input.
    #[serde(default)]
    #[schema(value_type = u64, example = 34359738368_u64)]
    pub memory: Bytes,
    /// GPUs per node; below one means a shared GPU (0.25 = four trials per GPU).
    #[serde(default)]
    #[schema(value_type = f64, example = 1)]
    pub gpus: Quantity,
    /// GPU models the job accepts, any of them; empty means any model.
    /// On input: a list, or one string such as `A100|H100`.
    #[serde(
        default,
        alias = "gpu_type",
        deserialize_with = "gpu_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<String>, example = json!(["A100", "H100"]))]
    pub gpu_types: Vec<GpuModel>,
    /// Nodes the job needs at once (a multi-node run); each gets the shape above.
    #[serde(default = "one_node")]
    pub nodes: u32,
    /// Custom resources per node, e.g. `{"license_matlab": 1}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, f64>)]
    pub custom: BTreeMap<String, Quantity>,
}

fn one_cpu() -> Quantity {
    Quantity::whole(1)
}

fn one_node() -> u32 {
    1
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: one_cpu(),
            memory: Bytes::default(),
            gpus: Quantity::ZERO,
            gpu_types: Vec::new(),
            nodes: one_node(),
            custom: BTreeMap::new(),
        }
    }
}

impl Resources {
    /// True when the job may run on a GPU of this model.
    pub fn accepts_gpu(&self, model: &GpuModel) -> bool {
        self.gpu_types.is_empty() || self.gpu_types.contains(model)
    }

    /// Total GPUs over every node.
    pub fn total_gpus(&self) -> Option<Quantity> {
        self.gpus.checked_mul(u64::from(self.nodes))
    }
}

fn gpu_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<GpuModel>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let names = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => vec![text],
        OneOrMany::Many(list) => list,
    };
    let mut models = Vec::new();
    for name in names {
        for model in GpuModel::parse_list(&name).map_err(serde::de::Error::custom)? {
            if !models.contains(&model) {
                models.push(model);
            }
        }
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_one_cpu_one_node() {
        let r: Resources = serde_json::from_str("{}").unwrap();
        assert_eq!(r.cpus, Quantity::whole(1));
        assert_eq!(r.nodes, 1);
        assert!(r.gpus.is_zero());
    }

    #[test]
    fn gpu_types_from_string_or_list() {
        let a: Resources = serde_json::from_str(r#"{"gpus": 1, "gpu_type": "a100|H100"}"#).unwrap();
        let b: Resources =
            serde_json::from_str(r#"{"gpus": 1, "gpu_types": ["A100", "h100", "A100"]}"#).unwrap();
        assert_eq!(a.gpu_types, b.gpu_types);
        assert_eq!(a.gpu_types.len(), 2);
        assert!(a.accepts_gpu(&GpuModel::parse("H100").unwrap()));
        assert!(!a.accepts_gpu(&GpuModel::parse("T4").unwrap()));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Resources>(r#"{"gpu": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `gpu`"), "{err}");
    }
}
