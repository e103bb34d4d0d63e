//! The next trial's parameters: grid, random or TPE, as one deterministic,
//! stateless function of the sweep's inputs and history.

use serde::{Deserialize, Serialize};

use crate::rng::{mix, purpose, Stream};
use crate::space::{Param, ParamValue, Params, SearchSpace};
use crate::tpe::{suggest_tpe, TpeSettings};

/// Whether a larger or a smaller objective is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Larger is better (reward, accuracy).
    #[default]
    Max,
    /// Smaller is better (loss, error).
    Min,
}

impl Mode {
    /// True when `a` is strictly better than `b` in this mode.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Mode::Max => a > b,
            Mode::Min => a < b,
        }
    }

    /// The objective turned into a loss (smaller is better in both modes).
    pub(crate) fn loss(self, objective: f64) -> f64 {
        match self {
            Mode::Max => -objective,
            Mode::Min => objective,
        }
    }
}

/// The search algorithm of a sweep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Every combination of the `grid` and `choice` parameters once.
    Grid,
    /// Independent draws from each parameter's distribution.
    Random,
    /// Tree-structured Parzen Estimator: random for the first trials, then
    /// draws concentrated where the best trials so far were.
    #[default]
    Tpe,
}

/// One earlier trial, as the algorithms see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The parameters the trial ran with.
    pub params: Params,
    /// Its final objective; `None` while it runs, or when it failed or was
    /// cancelled without one. Trials stopped early by ASHA should report the
    /// last objective they reached.
    pub objective: Option<f64>,
}

/// The parameters of trial `trial_index` (0-based), or `None` when a grid
/// sweep has tried every combination.
///
/// Deterministic and stateless: the same arguments always give the same
/// answer, so a restarted controller recomputes what it suggested before.
/// `history` holds the sweep's other trials in the order they were created
/// (TPE weighs older trials less once a group holds more than 25); only
/// [`Algorithm::Tpe`] reads it. Trials whose parameters no longer fit the
/// space (it changed, or a value is missing) are left out of TPE's model.
/// `space` must have passed [`SearchSpace::validate`]; an invalid space
/// still gives an answer, but not a meaningful one.
pub fn suggest(
    algorithm: Algorithm,
    space: &SearchSpace,
    seed: u64,
    trial_index: u32,
    history: &[Observation],
    mode: Mode,
) -> Option<Params> {
    match algorithm {
        Algorithm::Grid => grid_point(space, seed, trial_index),
        Algorithm::Random => Some(random_point(space, seed, trial_index)),
        Algorithm::Tpe => Some(suggest_tpe(
            space,
            seed,
            trial_index,
            history,
            mode,
            &TpeSettings::default(),
        )),
    }
}

/// How many trials a grid sweep has: the product of the number of values of
/// every `grid` and `choice` parameter (1 for a space without any),
/// saturating at `u64::MAX`.
pub fn grid_size(space: &SearchSpace) -> u64 {
    space
        .iter()
        .filter_map(|(_, param)| param.values())
        .fold(1u64, |size, values| {
            size.saturating_mul(values.len() as u64)
        })
}

/// The seed of one run of a trial: repeat `repeat` (0-based) of trial
/// `trial_index` in the sweep seeded `sweep_seed`. Distinct inputs give
/// well-spread, stable seeds; pass it to the job (e.g. as `{{seed}}`).
pub fn trial_seed(sweep_seed: u64, trial_index: u32, repeat: u32) -> u64 {
    let slot = (u64::from(trial_index) << 32) | u64::from(repeat);
    mix(sweep_seed ^ mix(slot))
}

/// Grid point `trial_index`: the grid parameters as digits of a mixed-radix
/// number, the last parameter (by name) changing fastest, like nested loops
/// in name order. Range parameters are drawn per trial.
fn grid_point(space: &SearchSpace, seed: u64, trial_index: u32) -> Option<Params> {
    let mut rest = u64::from(trial_index);
    if rest >= grid_size(space) {
        return None;
    }
    let mut params = Params::new();
    for (i, (name, param)) in space.iter().enumerate().rev() {
        let value = match param.values() {
            Some(values) => {
                let n = values.len() as u64;
                let digit = (rest % n) as usize;
                rest /= n;
                values[digit].clone()
            }
            None => sample_prior(param, &mut param_stream(seed, trial_index, i)),
        };
        params.insert(name.to_string(), value);
    }
    Some(params)
}

/// Every parameter drawn independently from its distribution.
pub(crate) fn random_point(space: &SearchSpace, seed: u64, trial_index: u32) -> Params {
    space
        .iter()
        .enumerate()
        .map(|(i, (name, param))| {
            let value = sample_prior(param, &mut param_stream(seed, trial_index, i));
            (name.to_string(), value)
        })
        .collect()
}

fn param_stream(seed: u64, trial_index: u32, param_index: usize) -> Stream {
    Stream::new(seed, trial_index, purpose::PARAM + param_index as u64)
}

/// One draw from a parameter's own distribution.
pub(crate) fn sample_prior(param: &Param, stream: &mut Stream) -> ParamValue {
    match param {
        Param::Uniform(low, high) => {
            ParamValue::Float((low + stream.uniform() * (high - low)).clamp(*low, *high))
        }
        Param::LogUniform(low, high) => {
            let (l, h) = (low.ln(), high.ln());
            ParamValue::Float((l + stream.uniform() * (h - l)).exp().clamp(*low, *high))
        }
        Param::Int(low, high) => {
            let span = high.saturating_sub(*low).max(0) as u64 + 1;
            ParamValue::Int(low.saturating_add(stream.below(span) as i64))
        }
        Param::Choice(values) | Param::Grid(values) => {
            let i = stream.below(values.len() as u64) as usize;
            values
                .get(i)
                .cloned()
                .unwrap_or(ParamValue::String(String::new()))
        }
    }
}
