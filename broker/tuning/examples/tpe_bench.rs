//! Sample efficiency of this crate's TPE and random search: trials until
//! one is within 5 % of the known optimum, per seed and the median.
//! `deploy/local/tuning-bench.sh` runs it beside Optuna's TPE.
//!
//! `cargo run --release -p raybroker-tuning --example tpe_bench -- [SEEDS] [BUDGET] [SVG]`
//!
//! With `SVG`, also writes the plot (`plot_svg`) of a 60-trial TPE run
//! (seed 0) there: what `raybroker sweep status` shows for a sweep.

#[path = "../tests/support/objective.rs"]
mod objective;

use raybroker_tuning::{plot_svg, suggest, Algorithm, Mode, Observation, TrialRow};

fn main() {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let budget: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    for (label, algorithm) in [
        ("raybroker-tpe", Algorithm::Tpe),
        ("raybroker-random", Algorithm::Random),
    ] {
        let runs: Vec<u32> = (0..seeds)
            .map(|seed| objective::trials_to_target(algorithm, seed, budget).unwrap_or(budget + 1))
            .collect();
        let list: Vec<String> = runs.iter().map(u32::to_string).collect();
        println!("{label} median={} runs={}", median(&runs), list.join(","));
    }
    if let Some(path) = args.next() {
        std::fs::write(&path, plot_svg(&example_run(60), Mode::Max))
            .expect("the SVG path is writable");
        println!("plot written to {path}");
    }
}

/// A TPE run of `trials` on the benchmark objective, as leaderboard rows.
fn example_run(trials: u32) -> Vec<TrialRow> {
    let space = objective::space();
    let mut noise = objective::Noise::new(0);
    let mut history: Vec<Observation> = Vec::new();
    let mut rows = Vec::new();
    for trial in 0..trials {
        let Some(params) = suggest(Algorithm::Tpe, &space, 0, trial, &history, Mode::Max) else {
            break;
        };
        let objective = objective::reward(&params) + noise.next();
        rows.push(TrialRow {
            trial,
            params: params.clone(),
            objective: Some(objective),
            state: "succeeded".into(),
            cluster: Some(format!("ray-{}", trial % 2)),
        });
        history.push(Observation {
            params,
            objective: Some(objective),
        });
    }
    rows
}

/// The median (mean of the middle two for an even count).
fn median(runs: &[u32]) -> f64 {
    let mut sorted = runs.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        f64::from(sorted[n / 2])
    } else {
        (f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0
    }
}
