//! Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), with
//! Optuna's `TPESampler` defaults as the reference for its behaviour.
//!
//! Until `n_startup_trials` trials have an objective, suggestions are
//! random. Then (joint over all parameters, like Optuna's default
//! multivariate TPE since v5):
//!
//! 1. the completed trials are ranked by objective and split: the best
//!    `gamma(n) = min(ceil(0.1 n), 25)` are "good", the rest "bad";
//!    trials without an objective (running or failed) count as bad, so
//!    concurrent suggestions avoid what is already being tried (Optuna's
//!    "constant liar");
//! 2. a Parzen estimator is fitted to each group, `l(x)` to the good and
//!    `g(x)` to the bad trials: one kernel per trial (a product over the
//!    parameters) plus the space's own distribution as a prior kernel,
//!    older trials weighted down once a group holds more than 25;
//! 3. `n_ei_candidates` values are drawn from `l(x)` and the one with the
//!    largest `l(x) / g(x)` (which maximises expected improvement) wins.
//!
//! `loguniform` parameters are modelled in log space; `int` parameters as
//! reals on `[low - 0.5, high + 0.5]` rounded to the nearest integer;
//! `choice` and `grid` parameters as categories.

use crate::parzen::{Dim, Mixture};
use crate::rng::{purpose, Stream};
use crate::space::{Param, ParamValue, Params, SearchSpace};
use crate::suggest::{random_point, Mode, Observation};

/// TPE's knobs; the defaults follow Optuna's `TPESampler`.
#[derive(Clone, Debug, PartialEq)]
pub struct TpeSettings {
    /// Completed trials before TPE takes over from random search.
    pub n_startup_trials: usize,
    /// Candidates drawn from the good trials' model per suggestion.
    pub n_ei_candidates: usize,
    /// Weight of the prior (the parameter's own distribution) in each model.
    pub prior_weight: f64,
    /// Count trials without an objective (running, failed) as bad ones.
    pub constant_liar: bool,
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
            constant_liar: true,
        }
    }
}

/// How many of `n` completed trials are "good".
fn n_good(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Recency weights for a group of `n` trials in creation order: 1 for the
/// newest 25, a linear ramp from `1/n` up to 1 for the older ones.
fn recency_weights(n: usize) -> Vec<f64> {
    if n <= 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut weights: Vec<f64> = (0..ramp)
        .map(|i| {
            let start = 1.0 / n as f64;
            if ramp == 1 {
                start
            } else {
                start + (1.0 - start) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    weights.extend(std::iter::repeat_n(1.0, 25));
    weights
}

/// [`Algorithm::Tpe`](crate::Algorithm::Tpe)'s suggestion for trial
/// `trial_index` with `settings` ([`crate::suggest`] uses the defaults);
/// `history` in the order the trials were created.
pub fn suggest_tpe(
    space: &SearchSpace,
    seed: u64,
    trial_index: u32,
    history: &[Observation],
    mode: Mode,
    settings: &TpeSettings,
) -> Params {
    let mut ranked: Vec<(usize, f64)> = history
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            o.objective
                .filter(|v| v.is_finite())
                .map(|v| (i, mode.loss(v)))
        })
        .collect();
    if ranked.is_empty() || ranked.len() < settings.n_startup_trials {
        return random_point(space, seed, trial_index);
    }
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let split = n_good(ranked.len());
    let mut good: Vec<usize> = ranked[..split].iter().map(|(i, _)| *i).collect();
    let mut bad: Vec<usize> = ranked[split..].iter().map(|(i, _)| *i).collect();
    if settings.constant_liar {
        bad.extend(
            (0..history.len()).filter(|&i| !history[i].objective.is_some_and(f64::is_finite)),
        );
    }
    good.sort_unstable();
    bad.sort_unstable();

    let scales: Vec<Scale> = space.iter().map(|(_, param)| Scale::of(param)).collect();
    let dims: Vec<Dim> = scales.iter().map(Scale::dim).collect();
    let fit = |group: &[usize]| {
        let points: Vec<Vec<f64>> = group
            .iter()
            .filter_map(|&i| model_point(space, &scales, &history[i].params))
            .collect();
        let weights = recency_weights(points.len());
        Mixture::new(&dims, &points, &weights, settings.prior_weight)
    };
    let (l, g) = (fit(&good), fit(&bad));

    let mut stream = Stream::new(seed, trial_index, purpose::TPE);
    let mut best = l.sample(&mut stream);
    let mut best_score = l.log_pdf(&best) - g.log_pdf(&best);
    for _ in 1..settings.n_ei_candidates {
        let candidate = l.sample(&mut stream);
        let score = l.log_pdf(&candidate) - g.log_pdf(&candidate);
        if score > best_score {
            (best, best_score) = (candidate, score);
        }
    }
    space
        .iter()
        .zip(&scales)
        .zip(best)
        .map(|(((name, _), scale), x)| (name.to_string(), scale.to_value(x)))
        .collect()
}

/// A trial's parameters in model space, or `None` when one is missing or
/// could not come from the space (e.g. the space changed since).
fn model_point(space: &SearchSpace, scales: &[Scale], params: &Params) -> Option<Vec<f64>> {
    space
        .iter()
        .zip(scales)
        .map(|((name, _), scale)| scale.to_model(params.get(name)?))
        .collect()
}

/// Where a parameter is modelled.
enum Scale {
    /// `uniform`: as is.
    Linear { low: f64, high: f64 },
    /// `loguniform`: its logarithm.
    Log { low: f64, high: f64 },
    /// `int`: as a real, half a step beyond each bound, rounded.
    Int { low: i64, high: i64 },
    /// `choice` / `grid`: the index in the list.
    Category(Vec<ParamValue>),
}

impl Scale {
    fn of(param: &Param) -> Scale {
        match param {
            Param::Uniform(low, high) => Scale::Linear {
                low: *low,
                high: *high,
            },
            Param::LogUniform(low, high) => Scale::Log {
                low: *low,
                high: *high,
            },
            Param::Int(low, high) => Scale::Int {
                low: *low,
                high: *high,
            },
            Param::Choice(values) | Param::Grid(values) => Scale::Category(values.clone()),
        }
    }

    fn dim(&self) -> Dim {
        match self {
            Scale::Linear { low, high } => Dim::Numeric {
                low: *low,
                high: *high,
                discrete: false,
            },
            Scale::Log { low, high } => Dim::Numeric {
                low: low.ln(),
                high: high.ln(),
                discrete: false,
            },
            Scale::Int { low, high } => Dim::Numeric {
                low: *low as f64 - 0.5,
                high: *high as f64 + 0.5,
                discrete: true,
            },
            Scale::Category(values) => Dim::Categorical { n: values.len() },
        }
    }

    /// An observed value in model space; `None` when this parameter could
    /// not have produced it.
    fn to_model(&self, value: &ParamValue) -> Option<f64> {
        let inside = |x: f64, low: f64, high: f64| (x >= low && x <= high).then_some(x);
        match self {
            Scale::Linear { low, high } => inside(value.as_f64()?, *low, *high),
            Scale::Log { low, high } => inside(value.as_f64()?, *low, *high).map(f64::ln),
            Scale::Int { low, high } => match value {
                ParamValue::Int(v) if (low..=high).contains(&v) => Some(*v as f64),
                _ => None,
            },
            Scale::Category(values) => values.iter().position(|c| c == value).map(|i| i as f64),
        }
    }

    /// A model-space draw as the parameter's value.
    fn to_value(&self, x: f64) -> ParamValue {
        match self {
            Scale::Linear { low, high } => ParamValue::Float(x.clamp(*low, *high)),
            Scale::Log { low, high } => ParamValue::Float(x.exp().clamp(*low, *high)),
            Scale::Int { low, high } => ParamValue::Int((x.round() as i64).clamp(*low, *high)),
            Scale::Category(values) => {
                let last = values.len().saturating_sub(1);
                values
                    .get((x.max(0.0) as usize).min(last))
                    .cloned()
                    .unwrap_or(ParamValue::Bool(false))
            }
        }
    }
}
