//! Leaderboard, best trial, CSV and the SVG plot.

use raybroker_tuning::{best, leaderboard, plot_svg, to_csv, Mode, ParamValue, Params, TrialRow};

fn row(trial: u32, objective: Option<f64>, state: &str) -> TrialRow {
    TrialRow {
        trial,
        params: Params::from([(
            "lr".to_string(),
            ParamValue::Float(0.001 * f64::from(trial + 1)),
        )]),
        objective,
        state: state.to_string(),
        cluster: Some(format!("ray-{}", trial % 2)),
    }
}

fn rows() -> Vec<TrialRow> {
    vec![
        row(0, Some(1.0), "succeeded"),
        row(1, None, "failed"),
        row(2, Some(3.0), "succeeded"),
        row(3, Some(f64::NAN), "succeeded"),
        row(4, Some(3.0), "stopped_early"),
        row(5, Some(-2.0), "succeeded"),
    ]
}

fn order(rows: &[TrialRow]) -> Vec<u32> {
    rows.iter().map(|r| r.trial).collect()
}

#[test]
fn leaderboard_is_best_first_with_missing_objectives_last() {
    assert_eq!(order(&leaderboard(&rows(), Mode::Max)), [2, 4, 0, 5, 1, 3]);
    assert_eq!(order(&leaderboard(&rows(), Mode::Min)), [5, 0, 2, 4, 1, 3]);
    assert_eq!(
        best(&rows(), Mode::Max).map(|r| r.trial),
        Some(2),
        "ties: lowest index"
    );
    assert_eq!(best(&rows(), Mode::Min).map(|r| r.trial), Some(5));
    assert_eq!(best(&[row(0, None, "running")], Mode::Max), None);
    assert_eq!(best(&[], Mode::Max), None);
}

#[test]
fn csv_has_a_header_and_quotes_what_needs_it() {
    let mut rows = rows();
    rows.truncate(2);
    rows[1]
        .params
        .insert("act".into(), ParamValue::String("a,\"b\"".into()));
    rows[1].cluster = None;
    let csv = to_csv(&rows);
    assert_eq!(
        csv,
        "trial,state,cluster,objective,act,lr\r\n\
         0,succeeded,ray-0,1,,0.001\r\n\
         1,failed,,,\"a,\"\"b\"\"\",0.002\r\n"
    );
}

#[test]
fn plot_is_a_standalone_svg_with_a_point_per_objective() {
    let mut rows = rows();
    rows[0].cluster = Some("<evil>".into());
    let svg = plot_svg(&rows, Mode::Max);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    // Trials 0, 2, 4, 5 have numeric objectives; 1 (none) and 3 (NaN) do not.
    assert_eq!(svg.matches("<title>trial").count(), 4, "{svg}");
    assert!(svg.contains("<title>trial 4: 3 (stopped_early, on ray-0)</title>"));
    assert!(svg.contains("on &lt;evil&gt;"), "cluster names are escaped");
    assert!(!svg.contains("<evil>"));
    // Best so far improves at trial 2 only (trial 4 ties): one rise.
    let path = svg
        .split("<path d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(path.matches(" V").count(), 1, "{path}");
    assert!(svg.contains("higher is better"));
    assert!(plot_svg(&rows, Mode::Min).contains("lower is better"));
}

#[test]
fn plot_without_objectives_says_so() {
    let svg = plot_svg(&[row(0, None, "running")], Mode::Max);
    assert!(svg.contains("no trial has reported an objective yet"));
    assert!(svg.trim_end().ends_with("</svg>"));
}
