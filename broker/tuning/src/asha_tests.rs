use super::*;

fn asha() -> Asha {
    Asha {
        grace_steps: 10,
        reduction_factor: 3,
        max_steps: 100,
    }
}

fn trial(id: &str, points: &[(u64, f64)]) -> TrialProgress {
    TrialProgress {
        id: id.to_string(),
        points: points.to_vec(),
    }
}

/// Trials that each reported one value at step 10.
fn at_first_rung(values: &[f64]) -> Vec<TrialProgress> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| trial(&format!("t{i}"), &[(5, 0.0), (10, *v)]))
        .collect()
}

#[test]
fn rungs_grow_by_the_factor_below_max_steps() {
    assert_eq!(asha().rungs(), vec![10, 30, 90]);
    let exact = Asha {
        grace_steps: 1,
        reduction_factor: 2,
        max_steps: 8,
    };
    assert_eq!(exact.rungs(), vec![1, 2, 4], "no rung at max_steps itself");
}

#[test]
fn invalid_settings_are_named() {
    let mut bad = asha();
    bad.reduction_factor = 1;
    assert_eq!(bad.validate(), Err(AshaError::Factor(1)));
    assert!(bad.rungs().is_empty());
    bad = asha();
    bad.grace_steps = 0;
    assert_eq!(bad.validate(), Err(AshaError::ZeroGrace));
    bad = asha();
    bad.max_steps = 10;
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("asha.max_steps"));
}

#[test]
fn before_the_first_rung_everyone_continues() {
    let others = at_first_rung(&[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]);
    let early = trial("new", &[(3, -100.0), (9, -100.0)]);
    assert_eq!(
        asha().decide(&early, &others, Mode::Max),
        AshaDecision::Continue
    );
}

#[test]
fn too_few_trials_at_a_rung_continue() {
    let others = at_first_rung(&[9.0]);
    let worst = trial("new", &[(10, 1.0)]);
    assert_eq!(
        asha().decide(&worst, &others, Mode::Max),
        AshaDecision::Continue,
        "2 < factor 3"
    );
}

/// The decision for a new trial reporting `value` at step 10, among trials
/// that reported `values` there.
fn judge(values: &[f64], value: f64, mode: Mode) -> AshaDecision {
    asha().decide(&trial("new", &[(10, value)]), &at_first_rung(values), mode)
}

#[test]
fn only_the_top_third_continues_at_a_rung() {
    // Six trials at step 10 → the best two continue.
    let five = [9.0, 8.0, 7.0, 6.0, 5.0];
    assert_eq!(judge(&five, 8.5, Mode::Max), AshaDecision::Continue);
    let AshaDecision::Stop { rung, reason } = judge(&five, 7.5, Mode::Max) else {
        panic!("7.5 is third of six");
    };
    assert_eq!(rung, 10);
    assert!(reason.contains("best 1/3 of the 6 trials"), "{reason}");
    assert!(reason.contains("cutoff 8)"), "{reason}");
}

#[test]
fn min_mode_keeps_the_smallest() {
    let five = [9.0, 8.0, 7.0, 6.0, 5.0];
    assert_eq!(judge(&five, 5.5, Mode::Min), AshaDecision::Continue);
    assert!(matches!(
        judge(&five, 8.5, Mode::Min),
        AshaDecision::Stop { rung: 10, .. }
    ));
}

#[test]
fn ties_with_the_cutoff_continue() {
    let others = at_first_rung(&[9.0, 9.0, 1.0, 1.0, 1.0]);
    let tied = trial("new", &[(10, 9.0)]);
    assert_eq!(
        asha().decide(&tied, &others, Mode::Max),
        AshaDecision::Continue
    );
}

#[test]
fn the_trial_itself_among_others_is_not_counted_twice() {
    let mut others = at_first_rung(&[9.0, 1.0]);
    let me = trial("me", &[(10, 5.0)]);
    others.push(me.clone());
    // Three distinct trials: keep one (9.0); 5.0 is stopped.
    assert!(matches!(
        asha().decide(&me, &others, Mode::Max),
        AshaDecision::Stop { .. }
    ));
    others.truncate(1);
    others.push(me.clone());
    assert_eq!(
        asha().decide(&me, &others, Mode::Max),
        AshaDecision::Continue,
        "only two trials"
    );
}

#[test]
fn judged_at_the_highest_rung_reached_with_the_first_report_there() {
    // At rung 30 three trials: 50, 40, and ours. Rung 10 values do not matter.
    let others = vec![
        trial("a", &[(10, 1.0), (30, 50.0)]),
        trial("b", &[(10, 1.0), (31, 40.0), (32, 99.0)]),
        trial("c", &[(10, 100.0)]),
    ];
    let ours = trial("me", &[(10, 100.0), (35, 45.0)]);
    assert!(matches!(
        asha().decide(&ours, &others, Mode::Max),
        AshaDecision::Stop { rung: 30, .. }
    ));
    let leader = trial("me", &[(10, 0.0), (30, 60.0)]);
    assert_eq!(
        asha().decide(&leader, &others, Mode::Max),
        AshaDecision::Continue
    );
}

#[test]
fn points_out_of_order_use_the_earliest_step_past_the_rung() {
    let others = at_first_rung(&[9.0, 8.0]);
    let shuffled = trial("me", &[(20, 1.0), (12, 9.5), (3, 0.0)]);
    assert_eq!(
        asha().decide(&shuffled, &others, Mode::Max),
        AshaDecision::Continue,
        "12 → 9.5 is best"
    );
}

#[test]
fn nan_is_worse_than_everything() {
    let others = at_first_rung(&[1.0, 2.0]);
    let nan = trial("me", &[(10, f64::NAN)]);
    assert!(matches!(
        asha().decide(&nan, &others, Mode::Max),
        AshaDecision::Stop { .. }
    ));
    assert!(matches!(
        asha().decide(&nan, &others, Mode::Min),
        AshaDecision::Stop { .. }
    ));
    let others_nan = at_first_rung(&[f64::NAN, f64::NAN]);
    let number = trial("me", &[(10, -1e9)]);
    assert_eq!(
        asha().decide(&number, &others_nan, Mode::Max),
        AshaDecision::Continue
    );
}

#[test]
fn decision_serialises_with_a_tag() {
    let stop = AshaDecision::Stop {
        rung: 10,
        reason: "x".into(),
    };
    let json = serde_json::to_string(&stop).unwrap();
    assert_eq!(json, r#"{"decision":"stop","rung":10,"reason":"x"}"#);
}
