//! The figures a replay writes: the fill curves, and GPU allocation and
//! queue length over time at each load.

use crate::fill::FillRun;
use crate::metrics::Step;
use crate::queueing::QueueRun;
use crate::report::{horizon, SAMPLES};
use crate::svg::{figure, Panel, Series};

/// Allocation ratio against arrived demand, one line per policy, with the
/// "everything placed" diagonal.
pub fn fill(workload: &str, fills: &[FillRun]) -> String {
    let panel = Panel {
        title: "GPU allocation ratio as arrived GPU demand grows (nothing departs)".into(),
        x_label: "arrived GPU demand / GPU capacity".into(),
        y_label: "allocated GPUs / all GPUs".into(),
        series: fills
            .iter()
            .map(|f| Series {
                name: f.policy.clone(),
                points: f.curve.clone(),
            })
            .collect(),
        y_range: Some((0.0, 1.0)),
        diagonal: true,
    };
    figure(&format!("fill protocol, workload {workload}"), &[panel], 1)
}

/// One row per load: GPU allocation ratio and jobs queued over time.
pub fn queueing(workload: &str, loads: &[f64], runs: &[QueueRun]) -> String {
    let mut panels = Vec::new();
    for &load in loads {
        let end = horizon(runs, load);
        let at_load: Vec<&QueueRun> = runs.iter().filter(|r| r.pace.load == load).collect();
        let series = |pick: fn(&QueueRun) -> &Step| -> Vec<Series> {
            at_load
                .iter()
                .map(|r| Series {
                    name: r.policy.clone(),
                    points: pick(r)
                        .sample(0, end, SAMPLES)
                        .into_iter()
                        .map(|(t, v)| (t as f64 / 3_600_000.0, v))
                        .collect(),
                })
                .collect()
        };
        panels.push(Panel {
            title: format!("load {load}: GPU allocation ratio"),
            x_label: "hours".into(),
            y_label: "allocated / all GPUs".into(),
            series: series(|r| &r.allocated),
            y_range: Some((0.0, 1.0)),
            diagonal: false,
        });
        panels.push(Panel {
            title: format!("load {load}: jobs queued"),
            x_label: "hours".into(),
            y_label: "jobs waiting".into(),
            series: series(|r| &r.queued),
            y_range: None,
            diagonal: false,
        });
    }
    figure(
        &format!("queueing under pressure, workload {workload}"),
        &panels,
        2,
    )
}
