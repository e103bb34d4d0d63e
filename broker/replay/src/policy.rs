//! The policies a replay compares, behind one [`Scheduler`] trait.
//!
//! - [`RoundRobin`]: job i goes to cluster i % n at arrival, with no
//!   resource check (Isaac Lab's `submit_job.py`); the cluster queues it and
//!   starts it on its own tightest node when it fits. A job that cluster
//!   could never run waits there forever.
//! - [`FirstFit`]: the first cluster in split order, and the first node in
//!   it, that can start the job now (MultiKueue's ordered dispatch).
//! - [`BestFit`]: the node, over all clusters, that the job fits tightest
//!   (fewest GPUs, then CPUs, left free), ignoring tiers and cost.
//! - [`Raybroker`]: raybroker's placement engine (`raybroker_placement::plan`)
//!   over the head of each tenant's queue: weighted DRF across tenants, aging,
//!   reservations for jobs that waited too long, the lowest tier that can
//!   start a job (a higher one only after its wait bound), the least GPU
//!   fragmentation, then cost. Alone (the fill protocol) it decides one job
//!   with `place`, a plan of one job that bursts at once.
//!
//! All but round-robin hold jobs in the broker's queue until they can start.

mod raybroker;

pub use raybroker::{EngineConfig, Raybroker, TimeLimits};

use crate::federation::Federation;
use crate::trace::Task;

/// What a policy does with a job the moment it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Keep it in the broker's queue; [`Scheduler::choose`] starts it later.
    Hold,
    /// Send it to this cluster now, whatever that cluster has free.
    Send(usize),
}

/// Where a held job should start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// On this node of this cluster.
    Start {
        /// Cluster index.
        cluster: usize,
        /// Node index in the cluster.
        node: usize,
    },
    /// Some cluster could run it, none can start it now.
    Wait,
    /// No cluster could ever run it.
    Never,
}

/// Where and when a job started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    /// Index of the job in the replay's task list.
    pub job: usize,
    /// Cluster index.
    pub cluster: usize,
    /// Node index in the cluster.
    pub node: usize,
    /// The cluster's tier.
    pub tier: u32,
    /// When, ms of virtual time.
    pub at_ms: u64,
}

/// A job in the broker's queue, for policies that decide the queue at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Index of the job in the replay's task list (arrival order).
    pub job: usize,
    /// When it entered the queue, ms of virtual time.
    pub enqueued_ms: u64,
}

/// A policy's decisions over the whole broker queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuePlan {
    /// `(job, cluster, node)` to start now, in decision order.
    pub start: Vec<(usize, usize, usize)>,
    /// Jobs no cluster could ever run.
    pub never: Vec<usize>,
    /// Decide again then even if nothing else happens (a wait bound ends).
    pub wake_at_ms: Option<u64>,
}

/// A placement policy.
///
/// Contract the replay relies on: `choose` depends only on the job's
/// resources and the federation's free capacity, so a job that got
/// [`Choice::Wait`] keeps getting it until capacity frees on a node where
/// it fits. A policy whose decisions depend on more (tenants, waiting
/// time) decides the whole queue with [`Scheduler::plan_queue`] instead.
pub trait Scheduler {
    /// A short name for tables and files.
    fn name(&self) -> &'static str;

    /// Called once per job as it arrives; `arrival` counts arrivals from 0.
    fn on_arrival(&mut self, _arrival: u64, _job: &Task, _fed: &Federation) -> Arrival {
        Arrival::Hold
    }

    /// Where a held job starts now, decided alone. Policies that send every
    /// job at arrival are never asked.
    fn choose(&mut self, job: &Task, fed: &Federation) -> Choice;

    /// True when the broker queue is decided at once by
    /// [`Scheduler::plan_queue`] rather than job by job.
    fn plans_queue(&self) -> bool {
        false
    }

    /// Decisions for the whole queue (oldest first) at `now_ms`.
    fn plan_queue(
        &mut self,
        _now_ms: u64,
        _queue: &[Queued],
        _tasks: &[Task],
        _fed: &Federation,
    ) -> QueuePlan {
        QueuePlan::default()
    }

    /// A job started (`fed` names its cluster and node).
    fn started(&mut self, _task: &Task, _start: &Started, _fed: &Federation) {}

    /// Job `job` (index in the replay's task list), started on a cluster
    /// of `tier`, ended.
    fn ended(&mut self, _job: usize, _task: &Task, _tier: u32) {}
}

/// `Never` when no cluster could ever run the job, else `Wait`.
fn wait_or_never(job: &Task, fed: &Federation) -> Choice {
    if (0..fed.clusters.len()).any(|c| fed.could_ever_run(c, &job.resources)) {
        Choice::Wait
    } else {
        Choice::Never
    }
}

/// Job i to cluster i % n, unchecked.
#[derive(Debug, Default)]
pub struct RoundRobin;

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn on_arrival(&mut self, arrival: u64, _job: &Task, fed: &Federation) -> Arrival {
        Arrival::Send((arrival % fed.clusters.len() as u64) as usize)
    }

    fn choose(&mut self, _job: &Task, _fed: &Federation) -> Choice {
        Choice::Wait
    }
}

/// First cluster, first node that fits now.
#[derive(Debug, Default)]
pub struct FirstFit;

impl Scheduler for FirstFit {
    fn name(&self) -> &'static str {
        "first-fit"
    }

    fn choose(&mut self, job: &Task, fed: &Federation) -> Choice {
        for cluster in 0..fed.clusters.len() {
            if let Some(node) = fed.first_fit(cluster, &job.resources) {
                return Choice::Start { cluster, node };
            }
        }
        wait_or_never(job, fed)
    }
}

/// Tightest node anywhere, tiers ignored.
#[derive(Debug, Default)]
pub struct BestFit;

impl Scheduler for BestFit {
    fn name(&self) -> &'static str {
        "best-fit"
    }

    fn choose(&mut self, job: &Task, fed: &Federation) -> Choice {
        (0..fed.clusters.len())
            .filter_map(|c| {
                fed.tightest(c, &job.resources)
                    .map(|(key, node)| (key, c, node))
            })
            .min()
            .map(|(_, cluster, node)| Choice::Start { cluster, node })
            .unwrap_or_else(|| wait_or_never(job, fed))
    }
}

/// A fresh policy by name (or short name), or `None`.
pub fn by_name(name: &str, engine: &EngineConfig) -> Option<Box<dyn Scheduler>> {
    match name {
        "round-robin" | "rr" => Some(Box::new(RoundRobin)),
        "first-fit" | "ff" => Some(Box::new(FirstFit)),
        "best-fit" | "bf" => Some(Box::new(BestFit)),
        "raybroker" | "rb" => Some(Box::new(Raybroker::new(engine.clone()))),
        _ => None,
    }
}

/// Every policy, in report order.
pub const ALL: [&str; 4] = ["round-robin", "first-fit", "best-fit", "raybroker"];

#[cfg(test)]
mod tests;
