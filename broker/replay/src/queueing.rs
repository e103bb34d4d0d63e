//! Protocol 2, queueing under pressure: each task keeps its (capped) run
//! time and the order and relative spacing of arrivals, but arrival times
//! are compressed by one factor so that the offered GPU load
//! `sum(GPUs x run time) / (total GPUs x arrival span)` hits a target.
//! The whole trace asks for about as many GPUs as the federation has, so
//! one copy of it, however compressed, barely queues: [`repeat`] plays the
//! list several times back to back first.
//!
//! Event-driven on a virtual clock in milliseconds. Jobs that end give
//! their resources back; arriving jobs go where the policy says (the
//! broker's queue, or a cluster's own queue for round-robin). Clusters
//! start what they can at once; the broker decides at its dispatch ticks
//! (every `dispatch_ms`, as its loop would; 0 = at every event), oldest
//! first with backfill, or by the policy's own plan of the whole queue.
//!
//! To replay in seconds, a job shape (equal resources) that could not start
//! is not asked about again until a node it fits on frees up: per-job
//! policies decide on resources and free capacity alone
//! ([`Scheduler`]'s contract), and capacity elsewhere only shrinks.

mod pace;
mod shape_queue;
mod sim;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

pub use pace::{compression, repeat, Pace};
use shape_queue::ShapeQueue;
use sim::{Decider, Sim};

use crate::federation::Federation;
use crate::metrics::{allocation_ratio, Step};
use crate::policy::Scheduler;
use crate::trace::Task;

/// What happened to one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// When it arrived, ms of virtual time.
    pub arrival_ms: u64,
    /// When it started, if it did.
    pub start_ms: Option<u64>,
    /// The cluster it ran on.
    pub cluster: Option<usize>,
    /// Sent to a cluster that could never run it (round-robin only).
    pub sent_never: bool,
    /// Refused by the broker: no cluster could ever run it.
    pub rejected: bool,
}

/// One policy's replay at one load.
#[derive(Clone, Debug)]
pub struct QueueRun {
    /// The policy's name.
    pub policy: String,
    /// How it was paced.
    pub pace: Pace,
    /// Per job, in the order of the tasks given to [`run`].
    pub outcomes: Vec<Outcome>,
    /// Allocated GPUs / total GPUs over time.
    pub allocated: Step,
    /// Jobs waiting in any queue, including those that never can start.
    pub queued: Step,
    /// Jobs waiting that some queue could still start.
    pub runnable: Step,
    /// Placement chose a node the job did not fit on (should stay 0).
    pub refused_starts: u64,
    /// Times a queue-planning policy was asked for a plan.
    pub plan_calls: u64,
    /// When the last arrival came, ms.
    pub last_arrival_ms: u64,
    /// When the last job ended, ms.
    pub makespan_ms: u64,
}

/// Replays `tasks` (sorted by arrival, all timed) at the offered `load`.
pub fn run(
    tasks: &[Task],
    fed: Federation,
    policy: &mut dyn Scheduler,
    load: f64,
    dispatch_ms: u64,
) -> QueueRun {
    let factor = compression(tasks, fed.gpu_units_total(), load);
    run_paced(
        tasks,
        fed,
        policy,
        Pace {
            load,
            factor,
            dispatch_ms,
        },
    )
}

/// [`run`] with the pace given.
pub fn run_paced(
    tasks: &[Task],
    fed: Federation,
    policy: &mut dyn Scheduler,
    pace: Pace,
) -> QueueRun {
    let first = tasks
        .iter()
        .filter_map(|t| t.timing)
        .map(|t| t.arrival_s)
        .min()
        .unwrap_or(0);
    let arrival_ms = |t: &Task| {
        t.timing.map_or(0, |x| {
            ((x.arrival_s - first) as f64 * pace.factor * 1000.0).round() as u64
        })
    };
    let clusters = fed.clusters.len();
    let mut sim = Sim {
        tasks,
        durations_ms: tasks
            .iter()
            .map(|t| t.timing.map_or(1, |x| x.duration_s) * 1000)
            .collect(),
        fed,
        outcomes: tasks
            .iter()
            .map(|t| Outcome {
                arrival_ms: arrival_ms(t),
                ..Outcome::default()
            })
            .collect(),
        held: vec![None; tasks.len()],
        ends: BinaryHeap::new(),
        broker: ShapeQueue::default(),
        planned: Vec::new(),
        local: (0..clusters).map(|_| ShapeQueue::default()).collect(),
        freed_for_broker: Vec::new(),
        dispatches: BinaryHeap::new(),
        wakes: BinaryHeap::new(),
        planned_shapes: HashMap::new(),
        replan: false,
        plan_calls: 0,
        pace,
        stuck: 0,
        refused: 0,
    };
    let mut result = QueueRun {
        policy: policy.name().to_string(),
        pace,
        outcomes: Vec::new(),
        allocated: Step::default(),
        queued: Step::default(),
        runnable: Step::default(),
        refused_starts: 0,
        plan_calls: 0,
        last_arrival_ms: sim.outcomes.iter().map(|o| o.arrival_ms).max().unwrap_or(0),
        makespan_ms: 0,
    };
    let mut next_arrival = 0;
    loop {
        let arrival_at = sim.outcomes.get(next_arrival).map(|o| o.arrival_ms);
        let end_at = sim.ends.peek().map(|Reverse((at, _))| *at);
        let dispatch_at = sim.dispatches.peek().map(|Reverse(at)| *at);
        let Some(now) = [arrival_at, end_at, dispatch_at]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        let mut freed = Vec::new();
        while let Some(Reverse((_, job))) = sim
            .ends
            .peek()
            .copied()
            .filter(|Reverse((at, _))| *at == now)
        {
            sim.ends.pop();
            if let Some(held) = sim.held[job].take() {
                sim.fed.release(&sim.tasks[job].resources, &held);
                policy.ended(job, &sim.tasks[job], sim.fed.clusters[held.cluster].tier);
                freed.push((held.cluster, held.node));
            }
            result.makespan_ms = now;
        }
        let mut arrived = false;
        while sim
            .outcomes
            .get(next_arrival)
            .is_some_and(|o| o.arrival_ms == now)
        {
            sim.arrive(policy, next_arrival as u64, next_arrival);
            next_arrival += 1;
            arrived = true;
        }
        sim.freed_for_broker.extend_from_slice(&freed);
        if arrived || !freed.is_empty() {
            sim.dispatches.push(Reverse(pace.tick_at(now)));
        }
        if sim.dispatches.peek().is_some_and(|Reverse(at)| *at == now) {
            while sim.dispatches.peek().is_some_and(|Reverse(at)| *at <= now) {
                sim.dispatches.pop();
            }
            let freed = std::mem::take(&mut sim.freed_for_broker);
            if policy.plans_queue() {
                sim.plan_pass(policy, &freed, now);
            } else {
                sim.pass(Decider::Broker, policy, &freed, now);
            }
        }
        for cluster in 0..clusters {
            sim.pass(Decider::Cluster(cluster), policy, &freed, now);
        }
        let queued =
            sim.broker.len + sim.planned.len() + sim.local.iter().map(|q| q.len).sum::<usize>();
        result.allocated.set(
            now,
            allocation_ratio(sim.fed.gpu_units_allocated(), sim.fed.gpu_units_total()),
        );
        result.queued.set(now, queued as f64);
        result.runnable.set(now, (queued - sim.stuck) as f64);
    }
    result.outcomes = sim.outcomes;
    result.refused_starts = sim.refused;
    result.plan_calls = sim.plan_calls;
    result
}

#[cfg(test)]
mod tests;
