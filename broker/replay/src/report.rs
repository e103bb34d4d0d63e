//! Tables for the terminal and CSV text for files. Everything here returns
//! strings; the binary writes them.

use std::fmt::Write as _;

use comfy_table::{presets, Table};

use crate::fill::FillRun;
use crate::queueing::QueueRun;
use crate::summary::{FillSummary, QueueSummary};

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::ASCII_MARKDOWN)
        .set_header(header.to_vec());
    table
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A compact duration for waits: `0s`, `45s`, `12.3m`, `4.2h`.
pub fn span(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.0}s")
    } else if seconds < 3600.0 {
        format!("{:.1}m", seconds / 60.0)
    } else {
        format!("{:.1}h", seconds / 3600.0)
    }
}

/// The queueing comparison at every load, one row per policy and load.
pub fn queue_table(rows: &[QueueSummary]) -> String {
    let mut t = table(&[
        "load",
        "policy",
        "sent-never",
        "rejected",
        "refused starts",
        "wait mean",
        "incl. stranded",
        "wait p95",
        "GPU alloc (arrivals)",
        "alloc while waiting",
        "makespan",
        "burst share",
        "cost",
        "Jain (slowdown)",
    ]);
    for r in rows {
        t.add_row(vec![
            format!("{:.1}", r.load),
            r.policy.clone(),
            r.sent_never.to_string(),
            r.rejected.to_string(),
            r.refused_starts.to_string(),
            span(r.wait_mean_s),
            span(r.wait_mean_all_s),
            span(r.wait_p95_s),
            pct(r.alloc_arrivals),
            pct(r.alloc_while_waiting),
            format!("{:.1}h", r.makespan_h),
            pct(r.burst_share),
            format!("{:.0}", r.cost),
            format!("{:.3}", r.jain_slowdown),
        ]);
    }
    t.to_string()
}

/// The fill comparison, one row per policy.
pub fn fill_table(rows: &[FillSummary]) -> String {
    let mut t = table(&[
        "policy",
        "alloc at 100% demand",
        "unallocated GPUs",
        "alloc at end",
        "placed / arrived",
        "sent-never",
    ]);
    for r in rows {
        t.add_row(vec![
            r.policy.clone(),
            pct(r.alloc_at_full),
            format!("{:.0} of {:.0}", r.unallocated_gpus_at_full, r.gpus_total),
            format!("{} at {} demand", pct(r.alloc_at_end), pct(r.demand_at_end)),
            format!("{} / {}", r.placed, r.arrived),
            r.sent_never.to_string(),
        ]);
    }
    t.to_string()
}

/// Header of [`queue_csv_rows`].
pub const QUEUE_CSV_HEADER: &str = "workload,load,policy,compression,jobs,started,sent_never,rejected,never_started,\
refused_starts,wait_mean_s,wait_mean_all_s,wait_p95_s,alloc_mean,alloc_arrivals,alloc_while_waiting,makespan_h,burst_share,gpu_hours,\
cost,jain_slowdown\n";

/// One CSV line per summary.
pub fn queue_csv_rows(workload: &str, rows: &[QueueSummary]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{workload},{},{},{:.6},{},{},{},{},{},{},{:.1},{:.1},{:.1},{:.6},{:.6},{:.6},{:.4},{:.6},{:.1},{:.1},{:.6}",
            r.load,
            r.policy,
            r.compression,
            r.jobs,
            r.started,
            r.sent_never,
            r.rejected,
            r.never_started,
            r.refused_starts,
            r.wait_mean_s,
            r.wait_mean_all_s,
            r.wait_p95_s,
            r.alloc_mean,
            r.alloc_arrivals,
            r.alloc_while_waiting,
            r.makespan_h,
            r.burst_share,
            r.gpu_hours,
            r.cost,
            r.jain_slowdown
        );
    }
    out
}

/// Header of [`tenant_csv_rows`].
pub const TENANT_CSV_HEADER: &str = "workload,load,policy,tenant,wait_mean_s,slowdown_mean\n";

/// Per tenant mean waits and slowdowns.
pub fn tenant_csv_rows(workload: &str, rows: &[QueueSummary]) -> String {
    let mut out = String::new();
    for r in rows {
        for (tenant, (wait, slowdown)) in &r.tenants {
            let _ = writeln!(
                out,
                "{workload},{},{},{tenant},{wait:.1},{slowdown:.4}",
                r.load, r.policy
            );
        }
    }
    out
}

/// Header of [`fill_csv_rows`].
pub const FILL_CSV_HEADER: &str = "workload,policy,gpus_total,alloc_at_full,unallocated_share_at_full,\
unallocated_gpus_at_full,demand_at_end,alloc_at_end,arrived,placed,sent_never,never,refused_starts\n";

/// One CSV line per fill summary.
pub fn fill_csv_rows(workload: &str, rows: &[FillSummary]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{workload},{},{:.0},{:.6},{:.6},{:.1},{:.6},{:.6},{},{},{},{},{}",
            r.policy,
            r.gpus_total,
            r.alloc_at_full,
            1.0 - r.alloc_at_full,
            r.unallocated_gpus_at_full,
            r.demand_at_end,
            r.alloc_at_end,
            r.arrived,
            r.placed,
            r.sent_never,
            r.never,
            r.refused_starts
        );
    }
    out
}

/// The fill curves: `policy,arrived_demand,alloc_ratio`.
pub fn fill_curves_csv(runs: &[FillRun]) -> String {
    let mut out = String::from("policy,arrived_demand,alloc_ratio\n");
    for run in runs {
        for (demand, alloc) in &run.curve {
            let _ = writeln!(out, "{},{demand:.4},{alloc:.4}", run.policy);
        }
    }
    out
}

/// Points per policy in time-series files and plots.
pub const SAMPLES: usize = 400;

/// Time series of every run, sampled at [`SAMPLES`] times over the longest
/// makespan of the same load: `load,policy,t_h,gpu_alloc_ratio,queued,runnable`.
pub fn timeseries_csv(runs: &[QueueRun]) -> String {
    let mut out = String::from("load,policy,t_h,gpu_alloc_ratio,queued,runnable\n");
    for run in runs {
        let end = horizon(runs, run.pace.load);
        let queued = run.queued.sample(0, end, SAMPLES);
        let runnable = run.runnable.sample(0, end, SAMPLES);
        for (((t, alloc), (_, q)), (_, r)) in run
            .allocated
            .sample(0, end, SAMPLES)
            .into_iter()
            .zip(queued)
            .zip(runnable)
        {
            let _ = writeln!(
                out,
                "{},{},{:.4},{alloc:.4},{q},{r}",
                run.pace.load,
                run.policy,
                t as f64 / 3_600_000.0
            );
        }
    }
    out
}

/// The longest makespan among runs at `load`, ms.
pub fn horizon(runs: &[QueueRun], load: f64) -> u64 {
    runs.iter()
        .filter(|r| r.pace.load == load)
        .map(|r| r.makespan_ms)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_pick_a_readable_unit() {
        assert_eq!(span(5.4), "5s");
        assert_eq!(span(90.0), "1.5m");
        assert_eq!(span(5400.0), "1.5h");
    }

    fn queue_row() -> QueueSummary {
        QueueSummary {
            policy: "first-fit".into(),
            load: 1.0,
            compression: 0.01,
            jobs: 10,
            started: 10,
            sent_never: 0,
            rejected: 0,
            never_started: 0,
            refused_starts: 0,
            wait_mean_s: 90.0,
            wait_mean_all_s: 90.0,
            wait_p95_s: 600.0,
            alloc_mean: 0.5,
            alloc_arrivals: 0.6,
            alloc_while_waiting: 0.9,
            makespan_h: 2.0,
            burst_share: 0.1,
            gpu_hours: 100.0,
            cost: 120.0,
            jain_slowdown: 0.95,
            tenants: Default::default(),
        }
    }

    #[test]
    fn queue_table_and_csv_have_a_cell_per_column() {
        let table = queue_table(&[queue_row()]);
        let bars: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
        assert!(bars.iter().all(|b| *b == bars[0]), "{table}");
        assert!(
            table.contains("| 1.5m") && table.contains("| 10.0m"),
            "{table}"
        );
        let line = queue_csv_rows("default", &[queue_row()]);
        assert_eq!(line.split(',').count(), QUEUE_CSV_HEADER.split(',').count());
    }

    #[test]
    fn csv_rows_match_their_headers() {
        let fill = FillSummary {
            policy: "raybroker".into(),
            gpus_total: 4.0,
            alloc_at_full: 0.75,
            unallocated_gpus_at_full: 1.0,
            alloc_at_end: 0.75,
            demand_at_end: 1.025,
            arrived: 7,
            placed: 5,
            sent_never: 0,
            never: 0,
            refused_starts: 0,
        };
        let line = fill_csv_rows("default", std::slice::from_ref(&fill));
        assert_eq!(line.split(',').count(), FILL_CSV_HEADER.split(',').count());
        assert!(
            line.starts_with("default,raybroker,4,0.750000,0.250000,1.0,"),
            "{line}"
        );
        let table = fill_table(&[fill]);
        assert!(
            table.contains("1 of 4") && table.contains("5 / 7"),
            "{table}"
        );
    }
}
