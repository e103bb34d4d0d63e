//! The search space of a sweep and the values its parameters take.
//!
//! In a sweep spec (YAML or JSON) a search space is a map from parameter
//! name to one distribution:
//!
//! ```yaml
//! lr: {loguniform: [1.0e-5, 1.0e-2]}
//! gamma: {uniform: [0.9, 0.999]}
//! layers: {int: [1, 4]}
//! act: {choice: [relu, tanh]}
//! seed_bias: {grid: [0, 1, 2]}
//! ```
//!
//! Parameters are kept sorted by name ([`BTreeMap`]), whatever order the
//! file used: the order is then the same after any round trip through JSON,
//! which the deterministic suggestions rely on.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One parameter value, as a trial receives it.
///
/// Untagged: `3` is an int, `3.0` and `3e-4` floats, `true` a bool, anything
/// else a string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number (from `int` ranges, or listed in `choice`/`grid`).
    Int(i64),
    /// A real number (from `uniform`/`loguniform`, or listed).
    Float(f64),
    /// Text (usually a `choice`, e.g. an activation name).
    String(String),
}

impl ParamValue {
    /// The value as a number, if it is one (ints widen to `f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(v) => Some(*v as f64),
            ParamValue::Float(v) => Some(*v),
            ParamValue::Bool(_) | ParamValue::String(_) => None,
        }
    }
}

/// How a value is written into an entrypoint, override or env var: floats
/// always carry a `.` or an exponent (`1.0`, not `1`), so a consumer that
/// infers types (Hydra, YAML) reads back a float.
impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::String(v) => f.write_str(v),
            ParamValue::Float(v) => {
                let text = format!("{v:?}");
                f.write_str(&text)
            }
        }
    }
}

/// One trial's parameters, by name.
pub type Params = BTreeMap<String, ParamValue>;

/// The distribution of one parameter, written as a one-key map:
/// `{uniform: [LOW, HIGH]}`, `{loguniform: [LOW, HIGH]}`,
/// `{int: [LOW, HIGH]}`, `{choice: [A, B, ...]}` or `{grid: [A, B, ...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ParamRepr", into = "ParamRepr")]
pub enum Param {
    /// A real number drawn uniformly from `[low, high]`.
    Uniform(f64, f64),
    /// A positive real number whose logarithm is uniform in
    /// `[ln low, ln high]` (learning rates, regularisation weights).
    LogUniform(f64, f64),
    /// A whole number from `low` to `high`, both included.
    Int(i64, i64),
    /// One of the listed values. A grid sweep enumerates every choice; the
    /// other algorithms pick among them.
    Choice(Vec<ParamValue>),
    /// The listed values, every one of which a grid sweep tries. The other
    /// algorithms treat a grid like a `choice`.
    Grid(Vec<ParamValue>),
}

/// The wire form of [`Param`]: a map with exactly one key. (A plain
/// externally tagged enum would read YAML tags such as `!uniform`, not the
/// maps users write.)
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uniform: Option<(f64, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loguniform: Option<(f64, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int: Option<(i64, i64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    choice: Option<Vec<ParamValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grid: Option<Vec<ParamValue>>,
}

impl TryFrom<ParamRepr> for Param {
    type Error = String;

    fn try_from(repr: ParamRepr) -> Result<Self, Self::Error> {
        let found: Vec<Param> = [
            repr.uniform.map(|(l, h)| Param::Uniform(l, h)),
            repr.loguniform.map(|(l, h)| Param::LogUniform(l, h)),
            repr.int.map(|(l, h)| Param::Int(l, h)),
            repr.choice.map(Param::Choice),
            repr.grid.map(Param::Grid),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[Param; 1]>::try_from(found) {
            Ok([param]) => Ok(param),
            Err(_) => Err(
                "a parameter needs exactly one of uniform, loguniform, int, choice, grid".into(),
            ),
        }
    }
}

impl From<Param> for ParamRepr {
    fn from(param: Param) -> Self {
        let mut repr = ParamRepr::default();
        match param {
            Param::Uniform(l, h) => repr.uniform = Some((l, h)),
            Param::LogUniform(l, h) => repr.loguniform = Some((l, h)),
            Param::Int(l, h) => repr.int = Some((l, h)),
            Param::Choice(values) => repr.choice = Some(values),
            Param::Grid(values) => repr.grid = Some(values),
        }
        repr
    }
}

impl Param {
    /// The listed values of a `choice` or `grid` parameter.
    pub fn values(&self) -> Option<&[ParamValue]> {
        match self {
            Param::Choice(values) | Param::Grid(values) => Some(values),
            Param::Uniform(..) | Param::LogUniform(..) | Param::Int(..) => None,
        }
    }
}

/// Ints and floats beyond this lose precision as `f64`; ranges must stay
/// inside it.
const MAX_EXACT: i64 = 1 << 53;

/// A search space that failed validation. The message names the parameter
/// in the spec's terms, e.g. `search_space.lr: low must be > 0 for loguniform`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("search_space.{param}: {reason}")]
pub struct SpaceError {
    /// The offending parameter's name.
    pub param: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

/// Parameter name to distribution, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SearchSpace {
    params: BTreeMap<String, Param>,
}

impl SearchSpace {
    /// A space from parameters in any order (they are kept sorted by name).
    pub fn new(params: impl IntoIterator<Item = (String, Param)>) -> Self {
        SearchSpace {
            params: params.into_iter().collect(),
        }
    }

    /// The parameters, sorted by name.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &Param)> + ExactSizeIterator {
        self.params
            .iter()
            .map(|(name, param)| (name.as_str(), param))
    }

    /// One parameter's distribution.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.get(name)
    }

    /// How many parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when the space has no parameters (a sweep of repeats only).
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Checks names, bounds and lists; the first problem found is returned.
    ///
    /// Names are letters, digits, `_`, `.` and `-`, starting with a letter or
    /// `_`, and must stay distinct as env var names ([`crate::env_var_name`]).
    pub fn validate(&self) -> Result<(), SpaceError> {
        let mut env_names: BTreeMap<String, &str> = BTreeMap::new();
        for (name, param) in self.iter() {
            let fail = |reason: String| SpaceError {
                param: name.to_string(),
                reason,
            };
            validate_name(name).map_err(fail)?;
            let env = crate::render::env_var_name(name);
            if let Some(other) = env_names.insert(env.clone(), name) {
                return Err(fail(format!(
                    "same env var name {env} as parameter {other}; rename one of them"
                )));
            }
            validate_param(param).map_err(fail)?;
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(
            "name must start with a letter or _ and contain only letters, digits, _, . and -"
                .into(),
        )
    }
}

fn validate_param(param: &Param) -> Result<(), String> {
    match param {
        Param::Uniform(low, high) => validate_range("uniform", *low, *high),
        Param::LogUniform(low, high) => {
            validate_range("loguniform", *low, *high)?;
            if *low <= 0.0 {
                return Err("low must be > 0 for loguniform".into());
            }
            Ok(())
        }
        Param::Int(low, high) => {
            if low > high {
                return Err(format!("int low {low} must be <= high {high}"));
            }
            if *low < -MAX_EXACT || *high > MAX_EXACT {
                return Err(format!("int bounds must lie within ±{MAX_EXACT}"));
            }
            Ok(())
        }
        Param::Choice(values) => validate_values("choice", values),
        Param::Grid(values) => validate_values("grid", values),
    }
}

fn validate_range(kind: &str, low: f64, high: f64) -> Result<(), String> {
    if !low.is_finite() || !high.is_finite() {
        return Err(format!("{kind} bounds must be finite numbers"));
    }
    if low >= high {
        return Err(format!("{kind} low {low} must be < high {high}"));
    }
    Ok(())
}

fn validate_values(kind: &str, values: &[ParamValue]) -> Result<(), String> {
    if values.is_empty() {
        return Err(format!("{kind} needs at least one value"));
    }
    for (i, value) in values.iter().enumerate() {
        if matches!(value, ParamValue::Float(v) if !v.is_finite()) {
            return Err(format!("{kind} value {i} must be a finite number"));
        }
        if values[..i].contains(value) {
            return Err(format!("{kind} lists {value} twice"));
        }
    }
    Ok(())
}
