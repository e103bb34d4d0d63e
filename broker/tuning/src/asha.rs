//! Asynchronous successive halving (ASHA, Li et al., 2020) as a pure
//! decision on the metrics trials have reported.
//!
//! Rungs sit at `grace_steps * reduction_factor^k` steps, below `max_steps`.
//! When a trial has reached a rung, its value there is compared with the
//! values every trial recorded at that rung so far; it continues only if it
//! is among the best `1 / reduction_factor` of them.

use serde::{Deserialize, Serialize};

use crate::suggest::Mode;

/// ASHA's settings for one sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asha {
    /// Steps every trial runs before it can be stopped (the first rung).
    pub grace_steps: u64,
    /// Keep the best `1 / reduction_factor` at each rung; rungs are this
    /// factor apart.
    pub reduction_factor: u32,
    /// A trial's full length; no rung at or beyond it.
    pub max_steps: u64,
}

/// ASHA settings that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AshaError {
    /// `grace_steps` is 0.
    #[error("asha.grace_steps must be at least 1")]
    ZeroGrace,
    /// `reduction_factor` is below 2.
    #[error("asha.reduction_factor must be at least 2, got {0}")]
    Factor(u32),
    /// `max_steps` leaves no rung.
    #[error("asha.max_steps ({max}) must be greater than asha.grace_steps ({grace})")]
    NoRung {
        /// `grace_steps`.
        grace: u64,
        /// `max_steps`.
        max: u64,
    },
}

/// The metrics one trial has reported so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialProgress {
    /// The trial's id (for the caller; not used in the decision).
    pub id: String,
    /// `(step, objective)` in the order reported; steps need not be dense.
    pub points: Vec<(u64, f64)>,
}

/// What to do with a trial now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "decision")]
pub enum AshaDecision {
    /// Let it run.
    Continue,
    /// Cancel it and mark it stopped early.
    Stop {
        /// The rung (in steps) where it fell behind.
        rung: u64,
        /// Why, for the trial's record, e.g. `0.42 at step 100 is not in
        /// the best 1/3 of 9 trials at that rung (cutoff 0.61)`.
        reason: String,
    },
}

impl Asha {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), AshaError> {
        if self.grace_steps == 0 {
            return Err(AshaError::ZeroGrace);
        }
        if self.reduction_factor < 2 {
            return Err(AshaError::Factor(self.reduction_factor));
        }
        if self.max_steps <= self.grace_steps {
            return Err(AshaError::NoRung {
                grace: self.grace_steps,
                max: self.max_steps,
            });
        }
        Ok(())
    }

    /// The rungs in steps, ascending: `grace * rf^k < max_steps`. Empty for
    /// invalid settings.
    pub fn rungs(&self) -> Vec<u64> {
        let mut rungs = Vec::new();
        if self.validate().is_err() {
            return rungs;
        }
        let mut rung = self.grace_steps;
        while rung < self.max_steps {
            rungs.push(rung);
            match rung.checked_mul(u64::from(self.reduction_factor)) {
                Some(next) => rung = next,
                None => break,
            }
        }
        rungs
    }

    /// Whether `trial` continues, judged at the highest rung it has reached.
    ///
    /// `others` are the sweep's other trials (running, finished or stopped);
    /// `trial` itself may be among them (matched by id), it is not counted
    /// twice. A trial's value at a rung is the objective of its first
    /// report at or after the rung's step. With `n` trials at the rung
    /// (this one included) the best `floor(n / reduction_factor)` continue;
    /// edge cases:
    ///
    /// - no rung reached yet, or fewer than `reduction_factor` trials at the
    ///   rung (nobody to compare with): continue;
    /// - ties with the cutoff value continue (only strictly better values
    ///   count against a trial);
    /// - NaN counts as worse than any number;
    /// - the decision is re-evaluated on every call: a trial that passed its
    ///   rung early can still be stopped there when later trials reach that
    ///   rung with better values, until it reaches the next rung.
    pub fn decide(
        &self,
        trial: &TrialProgress,
        others: &[TrialProgress],
        mode: Mode,
    ) -> AshaDecision {
        let reached = self
            .rungs()
            .into_iter()
            .rev()
            .find_map(|rung| value_at(trial, rung).map(|value| (rung, value)));
        let Some((rung, value)) = reached else {
            return AshaDecision::Continue;
        };
        let mut values: Vec<f64> = others
            .iter()
            .filter(|other| other.id != trial.id)
            .filter_map(|other| value_at(other, rung))
            .collect();
        values.push(value);
        let factor = self.reduction_factor as usize;
        let keep = values.len() / factor;
        if keep == 0 {
            return AshaDecision::Continue;
        }
        let ahead = values.iter().filter(|&&v| better(mode, v, value)).count();
        if ahead < keep {
            return AshaDecision::Continue;
        }
        values.sort_by(|a, b| {
            if better(mode, *a, *b) {
                std::cmp::Ordering::Less
            } else if better(mode, *b, *a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        let cutoff = values[keep - 1];
        AshaDecision::Stop {
            rung,
            reason: format!(
                "objective {value} at step {rung} is not in the best 1/{factor} of the {} trials \
                 that reached it (cutoff {cutoff})",
                values.len()
            ),
        }
    }
}

/// The objective of `trial`'s first report at or after step `rung` (the
/// last one reported when several share that step).
fn value_at(trial: &TrialProgress, rung: u64) -> Option<f64> {
    let mut found: Option<(u64, f64)> = None;
    for &(step, value) in &trial.points {
        if step >= rung && found.is_none_or(|(best_step, _)| step <= best_step) {
            found = Some((step, value));
        }
    }
    found.map(|(_, value)| value)
}

/// `a` strictly better than `b`; NaN is worse than any number.
fn better(mode: Mode, a: f64, b: f64) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (false, true) => true,
        (true, _) => false,
        (false, false) => mode.better(a, b),
    }
}

#[cfg(test)]
#[path = "asha_tests.rs"]
mod tests;
