//! TPE finds a near-optimal configuration in fewer trials than random
//! search on the same budget: a property of the algorithm, seeded, so
//! deterministic (no timing involved).

mod support;

use raybroker_tuning::Algorithm;
use support::objective::trials_to_target;

const BUDGET: u32 = 200;

fn median_trials(algorithm: Algorithm, seeds: std::ops::Range<u64>) -> u32 {
    let mut runs: Vec<u32> = seeds
        .map(|seed| trials_to_target(algorithm, seed, BUDGET).unwrap_or(BUDGET + 1))
        .collect();
    runs.sort_unstable();
    runs[runs.len() / 2]
}

#[test]
fn tpe_reaches_within_5_percent_of_the_optimum_faster_than_random() {
    let tpe = median_trials(Algorithm::Tpe, 0..11);
    let random = median_trials(Algorithm::Random, 0..11);
    assert!(
        tpe <= BUDGET,
        "TPE reached the target in the median run ({tpe})"
    );
    assert!(
        2 * tpe < random,
        "TPE needs at most half the trials random search does: tpe {tpe}, random {random}"
    );
}
