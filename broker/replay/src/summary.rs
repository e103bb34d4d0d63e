//! The numbers each policy is compared on, from a replay's raw record.

use std::collections::BTreeMap;

use crate::federation::Federation;
use crate::fill::FillRun;
use crate::metrics::{jain, mean, percentile};
use crate::queueing::QueueRun;
use crate::trace::Task;

/// One policy's queueing replay at one load.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSummary {
    /// The policy.
    pub policy: String,
    /// Offered load aimed at.
    pub load: f64,
    /// Arrival-time factor used.
    pub compression: f64,
    /// Jobs replayed.
    pub jobs: usize,
    /// Jobs that started.
    pub started: usize,
    /// Jobs sent to a cluster that could never run them.
    pub sent_never: usize,
    /// Jobs refused because no cluster could ever run them.
    pub rejected: usize,
    /// Jobs that never started (sent where they could never run, or rejected).
    pub never_started: usize,
    /// Placement chose a node the job did not fit on.
    pub refused_starts: u64,
    /// Mean wait from arrival to start over started jobs, seconds.
    pub wait_mean_s: f64,
    /// Mean wait over every job the broker did not refuse, a job that never
    /// started counting as waiting until the replay ended (a lower bound).
    pub wait_mean_all_s: f64,
    /// 95th percentile of that wait, seconds.
    pub wait_p95_s: f64,
    /// Time-averaged GPU allocation ratio from the first arrival to the last end.
    pub alloc_mean: f64,
    /// Time-averaged GPU allocation ratio from the first arrival to the last.
    pub alloc_arrivals: f64,
    /// Time-averaged GPU allocation ratio while some job that could start waits.
    pub alloc_while_waiting: f64,
    /// When the last job ended, hours after the first arrival.
    pub makespan_h: f64,
    /// Share of started GPU-hours run on tier > 0 clusters.
    pub burst_share: f64,
    /// GPU-hours started.
    pub gpu_hours: f64,
    /// Sum of GPU-hours x each cluster's price.
    pub cost: f64,
    /// Jain's index over tenants of their mean bounded slowdown (1 = every
    /// tenant slowed down alike).
    pub jain_slowdown: f64,
    /// Per tenant: mean wait (seconds) and mean bounded slowdown.
    pub tenants: BTreeMap<String, (f64, f64)>,
}

/// Run times below this count as this in a bounded slowdown, so a job of a
/// few seconds that waits a little does not dominate the mean.
pub const SLOWDOWN_FLOOR_S: f64 = 10.0;

/// `(wait + run) / run`, with run floored at [`SLOWDOWN_FLOOR_S`].
pub fn bounded_slowdown(wait_s: f64, run_s: f64) -> f64 {
    let run = run_s.max(SLOWDOWN_FLOOR_S);
    (wait_s + run) / run
}

/// Summarises a queueing run; `tasks` in the order the run was given.
pub fn queue_summary(run: &QueueRun, tasks: &[Task], fed: &Federation) -> QueueSummary {
    let mut waits = Vec::new();
    let mut stranded = Vec::new();
    let mut by_tenant: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let (mut gpu_hours, mut burst_hours, mut cost) = (0.0, 0.0, 0.0);
    for (task, outcome) in tasks.iter().zip(&run.outcomes) {
        let (Some(start), Some(cluster)) = (outcome.start_ms, outcome.cluster) else {
            if !outcome.rejected {
                stranded.push(run.makespan_ms.saturating_sub(outcome.arrival_ms) as f64 / 1000.0);
            }
            continue;
        };
        let wait = (start - outcome.arrival_ms) as f64 / 1000.0;
        let run_s = task.timing.map_or(0, |t| t.duration_s) as f64;
        waits.push(wait);
        let tenant = by_tenant.entry(task.tenant.clone()).or_default();
        tenant.0.push(wait);
        tenant.1.push(bounded_slowdown(wait, run_s));
        let hours = task.resources.gpus.as_f64() * run_s / 3600.0;
        gpu_hours += hours;
        cost += hours * fed.clusters[cluster].cost_per_gpu_hour;
        if fed.clusters[cluster].tier > 0 {
            burst_hours += hours;
        }
    }
    let tenants: BTreeMap<String, (f64, f64)> = by_tenant
        .iter()
        .map(|(t, (w, s))| (t.clone(), (mean(w), mean(s))))
        .collect();
    let slowdowns: Vec<f64> = tenants.values().map(|(_, s)| *s).collect();
    let span = run.makespan_ms;
    let window = run.last_arrival_ms;
    let (busy_area, busy_time) = run.allocated.integral_while(&run.runnable, 0, span);
    let count =
        |f: fn(&crate::queueing::Outcome) -> bool| run.outcomes.iter().filter(|o| f(o)).count();
    QueueSummary {
        policy: run.policy.clone(),
        load: run.pace.load,
        compression: run.pace.factor,
        jobs: run.outcomes.len(),
        started: waits.len(),
        sent_never: count(|o| o.sent_never),
        rejected: count(|o| o.rejected),
        never_started: count(|o| o.start_ms.is_none()),
        refused_starts: run.refused_starts,
        wait_mean_s: mean(&waits),
        wait_mean_all_s: mean(&[waits.as_slice(), stranded.as_slice()].concat()),
        wait_p95_s: percentile(&waits, 95.0),
        alloc_mean: if span == 0 {
            0.0
        } else {
            run.allocated.integral(0, span) / span as f64
        },
        alloc_arrivals: if window == 0 {
            0.0
        } else {
            run.allocated.integral(0, window) / window as f64
        },
        alloc_while_waiting: if busy_time == 0 {
            0.0
        } else {
            busy_area / busy_time as f64
        },
        makespan_h: span as f64 / 3_600_000.0,
        burst_share: if gpu_hours > 0.0 {
            burst_hours / gpu_hours
        } else {
            0.0
        },
        gpu_hours,
        cost,
        jain_slowdown: jain(&slowdowns),
        tenants,
    }
}

/// One policy's fill.
#[derive(Clone, Debug, PartialEq)]
pub struct FillSummary {
    /// The policy.
    pub policy: String,
    /// GPUs of the federation.
    pub gpus_total: f64,
    /// Allocation ratio when arrived demand reached 100 % of capacity.
    pub alloc_at_full: f64,
    /// GPUs left unallocated then.
    pub unallocated_gpus_at_full: f64,
    /// Allocation ratio at the end of the fill.
    pub alloc_at_end: f64,
    /// Arrived demand at the end, as a share of capacity.
    pub demand_at_end: f64,
    /// Tasks that arrived / were placed.
    pub arrived: u64,
    /// Tasks placed.
    pub placed: u64,
    /// Tasks sent to a cluster that could never run them.
    pub sent_never: u64,
    /// Tasks no cluster could ever run.
    pub never: u64,
    /// Placement chose a node the task did not fit on.
    pub refused_starts: u64,
}

/// Summarises a fill.
pub fn fill_summary(run: &FillRun) -> FillSummary {
    let gpus_total = run.gpu_units_total as f64 / 10_000.0;
    let alloc_at_full = run.allocated_at_full.unwrap_or(f64::NAN);
    let (demand_at_end, alloc_at_end) = run.curve.last().copied().unwrap_or_default();
    FillSummary {
        policy: run.policy.clone(),
        gpus_total,
        alloc_at_full,
        unallocated_gpus_at_full: (1.0 - alloc_at_full) * gpus_total,
        alloc_at_end,
        demand_at_end,
        arrived: run.arrived,
        placed: run.placed,
        sent_never: run.sent_never,
        never: run.never,
        refused_starts: run.refused_starts,
    }
}

#[cfg(test)]
mod tests {
    use raybroker_core::Quantity;

    use super::*;
    use crate::policy::{FirstFit, RoundRobin};
    use crate::queueing::{run_paced, Pace};
    use crate::testkit::{fed, job, spec, task};

    const PACE: Pace = Pace {
        load: 1.0,
        factor: 1.0,
        dispatch_ms: 0,
    };

    #[test]
    fn bounded_slowdown_by_hand() {
        assert_eq!(bounded_slowdown(0.0, 100.0), 1.0);
        assert_eq!(bounded_slowdown(50.0, 100.0), 1.5);
        // A 2 s job that waited 10 s counts as a 10 s one: 2, not 6.
        assert_eq!(bounded_slowdown(10.0, 2.0), 2.0);
    }

    #[test]
    fn queue_summary_by_hand() {
        let fed = fed(&[
            spec("a", 0, &[("a0", Some("G2"), 2)]),
            spec("b", 1, &[("b0", Some("G2"), 2)]),
        ]);
        let two = || job(Quantity::whole(2), "");
        let mut tasks = vec![
            task(0, two(), 0, 20),
            task(1, two(), 0, 10),
            task(2, two(), 1, 5),
        ];
        tasks[2].tenant = "t1".to_string();
        let ff = queue_summary(
            &run_paced(&tasks, fed.clone(), &mut FirstFit, PACE),
            &tasks,
            &fed,
        );
        assert_eq!((ff.started, ff.sent_never, ff.never_started), (3, 0, 0));
        // Waits 0, 0, 9 s: mean 3, p95 9.
        assert_eq!((ff.wait_mean_s, ff.wait_p95_s), (3.0, 9.0));
        // 17.5 GPU-ratio-seconds over 20 s; full while job 2 waits.
        assert_eq!((ff.alloc_mean, ff.alloc_while_waiting), (0.875, 1.0));
        // GPU-hours: 2 x (20 + 10 + 5) s; jobs 1 and 2 (30 GPU-s of 70) on tier 1.
        assert!((ff.gpu_hours - 70.0 / 3600.0).abs() < 1e-12);
        assert!((ff.burst_share - 30.0 / 70.0).abs() < 1e-12);
        assert!((ff.cost - (40.0 * 1.0 + 30.0 * 2.0) / 3600.0).abs() < 1e-12);
        // Slowdowns: t0 1 (no wait), t1 (9 + 10) / 10 = 1.9.
        // Jain = 2.9^2 / (2 x (1 + 3.61)) = 8.41 / 9.22.
        assert_eq!(ff.tenants["t1"], (9.0, 1.9));
        assert!((ff.jain_slowdown - 8.41 / 9.22).abs() < 1e-12);
        // Arrivals end at 1 s, with every GPU allocated until then.
        assert_eq!(ff.alloc_arrivals, 1.0);
        let rr = queue_summary(
            &run_paced(&tasks, fed.clone(), &mut RoundRobin, PACE),
            &tasks,
            &fed,
        );
        // Job 2 waits 19 s on a; makespan 25 s; 17.5 / 25.
        assert_eq!((rr.wait_mean_s, rr.alloc_mean), (19.0 / 3.0, 0.7));
        assert!((rr.burst_share - 20.0 / 70.0).abs() < 1e-12);
        // While job 2 waits (1-20 s): full for 9 s, half for 10 s.
        assert!((rr.alloc_while_waiting - 14.0 / 19.0).abs() < 1e-12);
    }
}
