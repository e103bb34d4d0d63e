//! Protocol 1, fill (the FGD paper's): tasks arrive one after another in
//! trace order, the list repeated as needed, and nothing departs; each task
//! is placed at once or rejected. The GPU allocation ratio is tracked
//! against the arrived GPU demand, and the unallocated GPU share at 100 %
//! demand measures fragmentation directly.
//!
//! Round-robin sends task i to cluster i % n, which places it on its own
//! tightest node or rejects it; the other policies choose among all
//! clusters, and their `Wait` (nowhere to start now) is a rejection here.

use crate::federation::Federation;
use crate::metrics::allocation_ratio;
use crate::policy::{Arrival, Choice, Scheduler};
use crate::trace::Task;

/// One policy's fill.
#[derive(Clone, Debug, Default)]
pub struct FillRun {
    /// The policy's name.
    pub policy: String,
    /// `(arrived GPU demand / total GPUs, allocated / total)`: the first
    /// task at or past each 1 % step of demand, and the last task.
    pub curve: Vec<(f64, f64)>,
    /// Allocation ratio when arrived demand first reached 100 %.
    pub allocated_at_full: Option<f64>,
    /// Tasks that arrived (repeats counted).
    pub arrived: u64,
    /// Tasks placed.
    pub placed: u64,
    /// Tasks no cluster could ever run (refused by checking policies).
    pub never: u64,
    /// Tasks sent to a cluster that could never run them (round-robin).
    pub sent_never: u64,
    /// Placement chose a node the task did not fit on (should stay 0).
    pub refused_starts: u64,
    /// GPUs of the federation, ten-thousandths.
    pub gpu_units_total: u64,
}

/// Fills `fed` with `tasks` until arrived GPU demand reaches `until` x capacity.
pub fn run(tasks: &[Task], mut fed: Federation, policy: &mut dyn Scheduler, until: f64) -> FillRun {
    let total = fed.gpu_units_total();
    let mut fill = FillRun {
        policy: policy.name().to_string(),
        gpu_units_total: total,
        ..FillRun::default()
    };
    let demand_per_pass: u64 = tasks.iter().map(|t| t.resources.gpus.units()).sum();
    if tasks.is_empty() || demand_per_pass == 0 || total == 0 {
        return fill;
    }
    let target = (until * total as f64).ceil() as u64;
    let mut demand = 0u64;
    let mut next_step = 0u64;
    for (arrival, task) in (0u64..).zip(tasks.iter().cycle()) {
        if demand >= target {
            break;
        }
        demand += task.resources.gpus.units();
        fill.arrived += 1;
        let choice = match policy.on_arrival(arrival, task, &fed) {
            Arrival::Send(cluster) => {
                if !fed.could_ever_run(cluster, &task.resources) {
                    fill.sent_never += 1;
                }
                match fed.tightest(cluster, &task.resources) {
                    Some((_, node)) => Choice::Start { cluster, node },
                    None => Choice::Wait,
                }
            }
            Arrival::Hold => policy.choose(task, &fed),
        };
        match choice {
            Choice::Start { cluster, node } => match fed.start(&task.resources, cluster, node) {
                Some(_) => fill.placed += 1,
                None => fill.refused_starts += 1,
            },
            Choice::Wait => {}
            Choice::Never => fill.never += 1,
        }
        let arrived = allocation_ratio(demand, total);
        let allocated = allocation_ratio(fed.gpu_units_allocated(), total);
        if fill.allocated_at_full.is_none() && demand >= total {
            fill.allocated_at_full = Some(allocated);
        }
        if demand * 100 >= next_step * total || demand >= target {
            fill.curve.push((arrived, allocated));
            next_step = demand * 100 / total + 1;
        }
    }
    fill
}

#[cfg(test)]
mod tests {
    use raybroker_core::Quantity;

    use super::*;
    use crate::policy::{BestFit, EngineConfig, FirstFit, Raybroker, RoundRobin};
    use crate::testkit::{fed, job, spec, task};

    /// Two clusters of one 2-GPU node each (4 GPUs); tasks of 0.6, 0.5,
    /// 0.5, 0.6 and 0.8 of a GPU, repeated.
    fn setup() -> (Federation, Vec<Task>) {
        let fed = fed(&[
            spec("a", 0, &[("a0", Some("G2"), 2)]),
            spec("b", 1, &[("b0", Some("G2"), 2)]),
        ]);
        let tasks = [6_000u64, 5_000, 5_000, 6_000, 8_000]
            .iter()
            .enumerate()
            .map(|(i, units)| task(i, job(Quantity::from_units(*units), ""), 0, 1))
            .collect();
        (fed, tasks)
    }

    #[test]
    fn fragmentation_by_hand() {
        let (fed, tasks) = setup();
        let run = run(&tasks, fed, &mut BestFit, 1.0);
        // a0 takes 0.6 (device 0), 0.5 and 0.5 (device 1); 0.6 and 0.8 go to
        // b0. Then 0.6 and 0.5 fit no device (free: 0.4, 0, 0.4, 0.2) and
        // demand reaches 3.0 + 0.6 + 0.5 = 4.1 GPUs >= 100 %.
        assert_eq!((run.arrived, run.placed), (7, 5));
        assert_eq!(
            run.allocated_at_full,
            Some(0.75),
            "1 GPU of 4 left unallocated"
        );
        assert_eq!(run.curve.last(), Some(&(1.025, 0.75)));
        assert_eq!(run.curve.first(), Some(&(0.15, 0.15)));
        assert_eq!(run.never + run.sent_never + run.refused_starts, 0);
    }

    #[test]
    fn round_robin_rejects_what_its_cluster_cannot_take_now() {
        let (fed, _) = setup();
        // Whole GPUs: 2, 2, 2 (6 GPUs of demand on 4).
        let tasks: Vec<Task> = (0..3)
            .map(|i| task(i, job(Quantity::whole(2), ""), 0, 1))
            .collect();
        let rr = run(&tasks, fed.clone(), &mut RoundRobin, 1.5);
        assert_eq!((rr.arrived, rr.placed), (3, 2));
        // At 100 % (second task) both clusters are full.
        assert_eq!(rr.allocated_at_full, Some(1.0));
        let ff = run(&tasks, fed.clone(), &mut FirstFit, 1.5);
        let rb = run(
            &tasks,
            fed,
            &mut Raybroker::new(EngineConfig::default()),
            1.5,
        );
        assert_eq!((ff.placed, rb.placed), (2, 2));
    }

    #[test]
    fn round_robin_counts_tasks_sent_where_they_never_fit() {
        let fed = fed(&[
            spec("a", 0, &[("a0", Some("G2"), 2)]),
            spec("b", 0, &[("b0", Some("T4"), 2)]),
        ]);
        let tasks: Vec<Task> = (0..4)
            .map(|i| task(i, job(Quantity::whole(1), "G2"), 0, 1))
            .collect();
        let rr = run(&tasks, fed.clone(), &mut RoundRobin, 1.0);
        assert_eq!((rr.arrived, rr.placed, rr.sent_never), (4, 2, 2));
        let bf = run(&tasks, fed, &mut BestFit, 1.0);
        assert_eq!((bf.placed, bf.sent_never), (2, 0));
    }
}
