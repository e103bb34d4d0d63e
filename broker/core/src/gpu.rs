//! GPU models and the catalog of models the organisation runs.
//!
//! Users write models in any case (`a100`, `H100`); the canonical form is upper
//! case so that `A100` on a job and on a cluster compare equal. A job naming a
//! model no cluster could ever have is almost always a typo, so submissions are
//! checked against a [`GpuCatalog`]: built-in common models plus any the config
//! adds.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A GPU model, e.g. `A100` or `H100`, in canonical upper case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[schema(value_type = String, example = "A100")]
pub struct GpuModel(String);

/// Why a GPU model name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a GPU model name: use letters, digits, '-' and '_' (e.g. A100, H100, V100M32)"
)]
pub struct GpuModelError(pub String);

impl GpuModel {
    /// Canonicalises and checks a model name.
    pub fn parse(name: &str) -> Result<GpuModel, GpuModelError> {
        let name = name.trim();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(GpuModel(name.to_ascii_uppercase()))
        } else {
            Err(GpuModelError(name.to_string()))
        }
    }

    /// The canonical name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses `A100|H100` or `A100,H100` into a list of accepted models.
    pub fn parse_list(text: &str) -> Result<Vec<GpuModel>, GpuModelError> {
        text.split(['|', ','])
            .filter(|part| !part.trim().is_empty())
            .map(GpuModel::parse)
            .collect()
    }
}

impl fmt::Display for GpuModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GpuModel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GpuModel::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Models known out of the box; the config's `gpu_models` adds site-specific ones.
pub const BUILTIN_GPU_MODELS: &[&str] = &[
    "A10",
    "A10G",
    "A30",
    "A40",
    "A100",
    "A100-40GB",
    "A100-80GB",
    "B200",
    "GH200",
    "H100",
    "H100-80GB",
    "H200",
    "L4",
    "L40",
    "L40S",
    "MI250X",
    "MI300X",
    "P100",
    "P4",
    "RTX6000",
    "RTX-A6000",
    "T4",
    "V100",
    "V100M16",
    "V100M32",
];

/// The GPU models a submission may name.
#[derive(Clone, Debug)]
pub struct GpuCatalog {
    models: BTreeSet<GpuModel>,
}

impl GpuCatalog {
    /// The built-in models plus `extra`.
    pub fn with_extra(extra: impl IntoIterator<Item = GpuModel>) -> GpuCatalog {
        let mut models: BTreeSet<GpuModel> = BUILTIN_GPU_MODELS
            .iter()
            .map(|name| GpuModel(name.to_string()))
            .collect();
        models.extend(extra);
        GpuCatalog { models }
    }

    /// True when the model is known.
    pub fn contains(&self, model: &GpuModel) -> bool {
        self.models.contains(model)
    }

    /// Every known model, sorted.
    pub fn models(&self) -> impl Iterator<Item = &GpuModel> {
        self.models.iter()
    }
}

impl Default for GpuCatalog {
    fn default() -> Self {
        GpuCatalog::with_extra([])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_case_insensitive() {
        assert_eq!(
            GpuModel::parse("a100").unwrap(),
            GpuModel::parse("A100").unwrap()
        );
        assert_eq!(GpuModel::parse(" h100 ").unwrap().as_str(), "H100");
    }

    #[test]
    fn lists_split_on_bar_or_comma() {
        let list = GpuModel::parse_list("A100|h100,L4").unwrap();
        let names: Vec<_> = list.iter().map(GpuModel::as_str).collect();
        assert_eq!(names, ["A100", "H100", "L4"]);
        assert!(GpuModel::parse_list("A100|H 100").is_err());
    }

    #[test]
    fn catalog_knows_builtins_and_extras() {
        let catalog = GpuCatalog::with_extra([GpuModel::parse("G2").unwrap()]);
        assert!(catalog.contains(&GpuModel::parse("t4").unwrap()));
        assert!(catalog.contains(&GpuModel::parse("G2").unwrap()));
        assert!(!catalog.contains(&GpuModel::parse("A1000").unwrap()));
    }
}
