//! Properties over generated inputs: grid exhaustiveness for any grid,
//! ASHA's keep-the-top-fraction rule, Isaac Lab lines round-tripping.

use std::collections::BTreeSet;

use proptest::prelude::*;
use raybroker_tuning::{
    grid_size, parse_isaaclab_clusters, suggest, Algorithm, Asha, AshaDecision, Mode, Param,
    ParamValue, SearchSpace, TrialProgress,
};

/// A space of 1-3 grid/choice parameters with 1-4 values each, plus a range
/// parameter that grid sweeps draw per trial.
fn grid_space() -> impl Strategy<Value = SearchSpace> {
    prop::collection::vec((any::<bool>(), 1usize..=4), 1..=3).prop_map(|dims| {
        let mut params: Vec<(String, Param)> = dims
            .into_iter()
            .enumerate()
            .map(|(i, (is_grid, n))| {
                let values = (0..n).map(|v| ParamValue::Int(v as i64)).collect();
                let param = if is_grid {
                    Param::Grid(values)
                } else {
                    Param::Choice(values)
                };
                (format!("p{i}"), param)
            })
            .collect();
        params.push(("x".into(), Param::Uniform(0.0, 1.0)));
        SearchSpace::new(params)
    })
}

fn combination(params: &raybroker_tuning::Params) -> Vec<String> {
    params
        .iter()
        .filter(|(name, _)| name.as_str() != "x")
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_grid_combination_exactly_once(space in grid_space(), seed in any::<u64>()) {
        let size = grid_size(&space);
        let expected: u64 = space.iter().filter_map(|(_, p)| p.values()).map(|v| v.len() as u64).product();
        prop_assert_eq!(size, expected);
        let mut seen = BTreeSet::new();
        for t in 0..size as u32 {
            let params = suggest(Algorithm::Grid, &space, seed, t, &[], Mode::Max).unwrap();
            let x = params["x"].as_f64().unwrap();
            prop_assert!((0.0..=1.0).contains(&x));
            prop_assert!(seen.insert(combination(&params)), "trial {} repeats", t);
        }
        prop_assert_eq!(seen.len() as u64, size);
        prop_assert_eq!(suggest(Algorithm::Grid, &space, seed, size as u32, &[], Mode::Max), None);
    }

    /// With n distinct values at the first rung, exactly floor(n / rf)
    /// trials continue when n >= rf, and all of them when n < rf.
    #[test]
    fn asha_keeps_the_top_fraction(
        values in prop::collection::btree_set(-1000i32..1000, 1..30),
        factor in 2u32..5,
        max_mode in any::<bool>(),
    ) {
        let asha = Asha { grace_steps: 5, reduction_factor: factor, max_steps: 1000 };
        let mode = if max_mode { Mode::Max } else { Mode::Min };
        let trials: Vec<TrialProgress> = values
            .iter()
            .map(|v| TrialProgress { id: format!("t{v}"), points: vec![(5, f64::from(*v))] })
            .collect();
        let continuing: Vec<f64> = trials
            .iter()
            .filter(|t| asha.decide(t, &trials, mode) == AshaDecision::Continue)
            .map(|t| t.points[0].1)
            .collect();
        let n = trials.len();
        let keep = if n < factor as usize { n } else { n / factor as usize };
        prop_assert_eq!(continuing.len(), keep);
        // And they are the best ones.
        let mut sorted: Vec<f64> = values.iter().map(|v| f64::from(*v)).collect();
        if max_mode {
            sorted.reverse();
        }
        let best: BTreeSet<i64> = sorted[..keep].iter().map(|v| *v as i64).collect();
        let kept: BTreeSet<i64> = continuing.iter().map(|v| *v as i64).collect();
        prop_assert_eq!(kept, best);
    }

    #[test]
    fn isaaclab_lines_round_trip(
        clusters in prop::collection::btree_map("[a-z][a-z0-9-]{0,20}[a-z0-9]", (any::<[u8; 4]>(), 1u16..), 1..8),
        comment_every in 1usize..4,
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (i, (name, (ip, port))) in clusters.iter().enumerate() {
            if i % comment_every == 0 {
                text.push_str("# a comment\n\n");
            }
            let address = format!("http://{}.{}.{}.{}:{port}", ip[0], ip[1], ip[2], ip[3]);
            text.push_str(&format!("name: {name} address: {address}\n"));
            expected.push((name.clone(), address));
        }
        prop_assert_eq!(parse_isaaclab_clusters(&text).unwrap(), expected);
    }
}
