//! Suggestions: determinism, grid exhaustiveness, bounds, seeds.

use std::collections::BTreeSet;

use proptest::prelude::*;
use raybroker_tuning::{
    grid_size, suggest, trial_seed, Algorithm, Mode, Observation, Param, ParamValue, Params,
    SearchSpace,
};

fn space() -> SearchSpace {
    serde_json::from_str(
        r#"{"lr": {"loguniform": [1e-5, 1e-2]},
            "gamma": {"uniform": [0.9, 0.999]},
            "layers": {"int": [1, 4]},
            "act": {"choice": ["relu", "tanh", "elu"]},
            "bias": {"grid": [0, 1]}}"#,
    )
    .unwrap()
}

/// Checks that `params` has exactly the space's names, each inside its
/// distribution.
fn assert_inside(space: &SearchSpace, params: &Params) {
    assert_eq!(params.len(), space.len(), "{params:?}");
    for (name, param) in space.iter() {
        let value = &params[name];
        let ok = match (param, value) {
            (Param::Uniform(lo, hi) | Param::LogUniform(lo, hi), ParamValue::Float(v)) => {
                (lo..=hi).contains(&v)
            }
            (Param::Int(lo, hi), ParamValue::Int(v)) => (lo..=hi).contains(&v),
            (Param::Choice(values) | Param::Grid(values), v) => values.contains(v),
            _ => false,
        };
        assert!(ok, "{name} = {value:?} outside {param:?}");
    }
}

/// A history of `n` trials from random search with a made-up objective;
/// every fourth trial is still running.
fn history(space: &SearchSpace, seed: u64, n: u32) -> Vec<Observation> {
    (0..n)
        .map(|t| {
            let params = suggest(Algorithm::Random, space, seed, t, &[], Mode::Max).unwrap();
            let objective = (t % 4 != 3).then(|| {
                params["gamma"].as_f64().unwrap()
                    - params["lr"].as_f64().unwrap().ln().abs() / 100.0
            });
            Observation { params, objective }
        })
        .collect()
}

#[test]
fn grid_visits_every_combination_exactly_once_then_stops() {
    let space = space();
    assert_eq!(grid_size(&space), 6, "3 choices x 2 grid values");
    let mut seen = BTreeSet::new();
    for t in 0..6 {
        let params = suggest(Algorithm::Grid, &space, 9, t, &[], Mode::Max).unwrap();
        assert_inside(&space, &params);
        let key = format!("{}/{}", params["act"], params["bias"]);
        assert!(seen.insert(key), "trial {t} repeats a combination");
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(suggest(Algorithm::Grid, &space, 9, 6, &[], Mode::Max), None);
    assert_eq!(
        suggest(Algorithm::Grid, &space, 9, u32::MAX, &[], Mode::Max),
        None
    );
}

#[test]
fn grid_order_is_nested_loops_in_name_order() {
    let space = space();
    let order: Vec<String> = (0..6)
        .map(|t| {
            let p = suggest(Algorithm::Grid, &space, 0, t, &[], Mode::Max).unwrap();
            format!("{}/{}", p["act"], p["bias"])
        })
        .collect();
    assert_eq!(
        order,
        ["relu/0", "relu/1", "tanh/0", "tanh/1", "elu/0", "elu/1"]
    );
}

#[test]
fn a_grid_without_grid_parameters_has_one_trial() {
    let space: SearchSpace = serde_json::from_str(r#"{"lr": {"uniform": [0, 1]}}"#).unwrap();
    assert_eq!(grid_size(&space), 1);
    assert!(suggest(Algorithm::Grid, &space, 0, 0, &[], Mode::Max).is_some());
    assert!(suggest(Algorithm::Grid, &space, 0, 1, &[], Mode::Max).is_none());
}

#[test]
fn grid_size_saturates() {
    let big = Param::Grid((0..1000).map(ParamValue::Int).collect());
    let space = SearchSpace::new((0..10).map(|i| (format!("p{i}"), big.clone())));
    assert_eq!(grid_size(&space), u64::MAX);
}

#[test]
fn tpe_uses_the_history_after_the_startup_trials() {
    let space = space();
    let few = history(&space, 1, 5);
    let random = suggest(Algorithm::Random, &space, 1, 5, &few, Mode::Max);
    assert_eq!(
        suggest(Algorithm::Tpe, &space, 1, 5, &few, Mode::Max),
        random,
        "fewer than 10 completed trials: TPE is random search"
    );
    let many = history(&space, 1, 30);
    let tpe = suggest(Algorithm::Tpe, &space, 1, 30, &many, Mode::Max).unwrap();
    assert_ne!(
        Some(tpe.clone()),
        suggest(Algorithm::Random, &space, 1, 30, &many, Mode::Max)
    );
    assert_inside(&space, &tpe);
    let other_mode = suggest(Algorithm::Tpe, &space, 1, 30, &many, Mode::Min).unwrap();
    assert_ne!(tpe, other_mode, "the mode decides which trials are good");
}

#[test]
fn trial_seeds_differ_per_trial_and_repeat() {
    let mut seeds = BTreeSet::new();
    for trial in 0..50 {
        for repeat in 0..4 {
            assert!(seeds.insert(trial_seed(7, trial, repeat)));
        }
    }
    assert_eq!(trial_seed(7, 3, 1), trial_seed(7, 3, 1));
    assert_ne!(trial_seed(7, 3, 1), trial_seed(8, 3, 1));
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Grid),
        Just(Algorithm::Random),
        Just(Algorithm::Tpe)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The controller recomputes after a crash: same inputs, same answer.
    #[test]
    fn suggestions_are_deterministic(algorithm in algorithm(), seed in any::<u64>(), n in 0u32..25) {
        let space = space();
        let past = history(&space, seed, n);
        let first = suggest(algorithm, &space, seed, n, &past, Mode::Max);
        let again = suggest(algorithm, &space.clone(), seed, n, &past.clone(), Mode::Max);
        prop_assert_eq!(first, again);
    }

    #[test]
    fn suggestions_stay_inside_the_space(algorithm in algorithm(), seed in any::<u64>(), n in 0u32..30) {
        let space = space();
        let past = history(&space, seed ^ 1, n);
        if let Some(params) = suggest(algorithm, &space, seed, n, &past, Mode::Max) {
            assert_inside(&space, &params);
        } else {
            prop_assert!(algorithm == Algorithm::Grid && u64::from(n) >= grid_size(&space));
        }
    }

    #[test]
    fn random_bounds_hold_for_arbitrary_ranges(
        lo in -1e6f64..1e6, width in 1e-9f64..1e6, ilo in -1000i64..1000, iw in 0i64..50,
        llo in 1e-12f64..1.0, lw in 1.0f64..1e6, seed in any::<u64>(), trial in any::<u32>(),
    ) {
        let space = SearchSpace::new([
            ("u".to_string(), Param::Uniform(lo, lo + width)),
            ("i".to_string(), Param::Int(ilo, ilo + iw)),
            ("l".to_string(), Param::LogUniform(llo, llo * lw)),
        ]);
        prop_assert!(space.validate().is_ok());
        let params = suggest(Algorithm::Random, &space, seed, trial, &[], Mode::Max).unwrap();
        assert_inside(&space, &params);
    }
}

#[test]
fn tpe_settings_change_when_the_model_takes_over() {
    let space = space();
    let past = history(&space, 2, 6);
    let eager = raybroker_tuning::TpeSettings {
        n_startup_trials: 3,
        ..Default::default()
    };
    let modelled = raybroker_tuning::suggest_tpe(&space, 2, 6, &past, Mode::Max, &eager);
    assert_inside(&space, &modelled);
    assert_ne!(
        Some(modelled),
        suggest(Algorithm::Random, &space, 2, 6, &past, Mode::Max),
        "with 3 startup trials, trial 6 comes from the model"
    );
}

#[test]
fn tpe_ignores_trials_that_no_longer_fit_the_space() {
    let space = space();
    let mut past = history(&space, 4, 20);
    for (i, trial) in past.iter_mut().enumerate() {
        match i % 3 {
            0 => {
                trial.params.remove("lr");
            }
            1 => {
                trial.params.insert("layers".into(), ParamValue::Int(99));
            }
            _ => {
                trial
                    .params
                    .insert("act".into(), ParamValue::String("swish".into()));
            }
        }
    }
    let params = suggest(Algorithm::Tpe, &space, 4, 20, &past, Mode::Max).unwrap();
    assert_inside(&space, &params);
    let empty = SearchSpace::default();
    assert_eq!(
        suggest(Algorithm::Tpe, &empty, 4, 20, &past, Mode::Max),
        Some(Params::new())
    );
}
