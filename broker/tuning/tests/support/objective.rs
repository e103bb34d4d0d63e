//! The benchmark objective shared by the sample-efficiency test and the
//! `tpe_bench` example; `bench/optuna_bench.py` computes the same function.
//!
//! A made-up "training run" whose reward is a known function of four
//! hyperparameters, maximal (100) at `lr = 3e-3, gamma = 0.97, layers = 3,
//! act = tanh`, observed with Gaussian noise (σ = 1). A trial "reaches the
//! optimum" when its noise-free reward is at least 95 (within 5 %).

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use raybroker_tuning::{ParamValue, Params, SearchSpace};

/// The optimum's reward.
pub const OPTIMUM: f64 = 100.0;
/// Within 5 % of the optimum.
pub const TARGET: f64 = 0.95 * OPTIMUM;

/// The space, as a user would write it.
pub fn space() -> SearchSpace {
    serde_json::from_str(
        r#"{"lr": {"loguniform": [1e-5, 1e-1]},
            "gamma": {"uniform": [0.9, 0.999]},
            "layers": {"int": [1, 8]},
            "act": {"choice": ["relu", "tanh", "elu", "gelu"]}}"#,
    )
    .expect("the benchmark space is valid JSON")
}

/// The noise-free reward.
pub fn reward(params: &Params) -> f64 {
    let num = |name: &str| {
        params
            .get(name)
            .and_then(ParamValue::as_f64)
            .unwrap_or(f64::NAN)
    };
    let lr_term = ((num("lr").log10() - 3e-3f64.log10()) / 1.0).powi(2);
    let gamma_term = ((num("gamma") - 0.97) / 0.04).powi(2);
    let layers = 1.0 - 0.01 * (num("layers") - 3.0).abs();
    let act = match params.get("act") {
        Some(ParamValue::String(a)) if a == "tanh" => 1.0,
        Some(ParamValue::String(a)) if a == "relu" => 0.98,
        Some(ParamValue::String(a)) if a == "elu" => 0.97,
        _ => 0.95,
    };
    OPTIMUM * (-0.5 * (lr_term + gamma_term)).exp() * layers * act
}

/// Observation noise for one benchmark run.
pub struct Noise(ChaCha8Rng);

impl Noise {
    /// Noise seeded for one run.
    pub fn new(seed: u64) -> Self {
        Noise(ChaCha8Rng::seed_from_u64(seed ^ 0x006e_6f69_7365))
    }

    /// A standard normal draw (Box-Muller).
    pub fn next(&mut self) -> f64 {
        let unit = |rng: &mut ChaCha8Rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let u1 = 1.0 - unit(&mut self.0);
        let u2 = unit(&mut self.0);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Trials (1-based) until one's noise-free reward reaches [`TARGET`], or
/// `None` within `budget`; the algorithm sees the noisy reward.
pub fn trials_to_target(
    algorithm: raybroker_tuning::Algorithm,
    seed: u64,
    budget: u32,
) -> Option<u32> {
    let space = space();
    let mut noise = Noise::new(seed);
    let mut history = Vec::new();
    for trial in 0..budget {
        let params = raybroker_tuning::suggest(
            algorithm,
            &space,
            seed,
            trial,
            &history,
            raybroker_tuning::Mode::Max,
        )?;
        let truth = reward(&params);
        if truth >= TARGET {
            return Some(trial + 1);
        }
        history.push(raybroker_tuning::Observation {
            params,
            objective: Some(truth + noise.next()),
        });
    }
    None
}
