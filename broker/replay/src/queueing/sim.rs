//! The replay's state and what happens at one event time: arrivals, starts
//! from job-by-job queues, and plans of the whole queue.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use raybroker_placement::{MAX_HEAD_PER_SHAPE, MAX_HEAD_PER_TENANT};

use super::shape_queue::ShapeQueue;
use super::{Outcome, Pace};
use crate::federation::{Allocation, Federation};
use crate::policy::{Arrival, Choice, Queued, Scheduler, Started};
use crate::trace::Task;

/// Who decides for a queue.
#[derive(Clone, Copy)]
pub(super) enum Decider {
    /// The broker, through the policy.
    Broker,
    /// A cluster's own scheduler: its tightest node.
    Cluster(usize),
}

/// A replay in progress.
pub(super) struct Sim<'a> {
    pub(super) tasks: &'a [Task],
    pub(super) fed: Federation,
    pub(super) durations_ms: Vec<u64>,
    pub(super) outcomes: Vec<Outcome>,
    pub(super) held: Vec<Option<Allocation>>,
    pub(super) ends: BinaryHeap<Reverse<(u64, usize)>>,
    /// The broker's queue, for policies that decide job by job.
    pub(super) broker: ShapeQueue,
    /// The broker's queue, for policies that plan it at once.
    pub(super) planned: Vec<Queued>,
    /// Clusters' own queues (round-robin).
    pub(super) local: Vec<ShapeQueue>,
    /// Nodes freed since the broker last decided.
    pub(super) freed_for_broker: Vec<(usize, usize)>,
    /// Times the broker decides at: ticks and policies' wake-ups.
    pub(super) dispatches: BinaryHeap<Reverse<u64>>,
    /// Wake-ups a plan asked for, not yet due.
    pub(super) wakes: BinaryHeap<Reverse<u64>>,
    /// Shapes in the planned queue: one job of each, and how many.
    pub(super) planned_shapes: HashMap<u32, (usize, usize)>,
    /// The last plan did not see everything: a job joined the planned
    /// queue, or the devices refused a start it decided.
    pub(super) replan: bool,
    pub(super) plan_calls: u64,
    pub(super) pace: Pace,
    pub(super) stuck: usize,
    pub(super) refused: u64,
}

impl Sim<'_> {
    pub(super) fn arrive(&mut self, policy: &mut dyn Scheduler, arrival: u64, job: usize) {
        let task = &self.tasks[job];
        match policy.on_arrival(arrival, task, &self.fed) {
            Arrival::Hold if policy.plans_queue() => {
                self.planned.push(Queued {
                    job,
                    enqueued_ms: self.outcomes[job].arrival_ms,
                });
                self.planned_shapes.entry(task.shape).or_insert((job, 0)).1 += 1;
                self.replan = true;
            }
            Arrival::Hold => self.broker.push(task.shape, job),
            Arrival::Send(cluster) => {
                if !self.fed.could_ever_run(cluster, &task.resources) {
                    self.outcomes[job].sent_never = true;
                    self.stuck += 1;
                }
                self.local[cluster].push(task.shape, job);
            }
        }
    }

    /// Starts the job on the node if its devices take it; counts a refusal otherwise.
    pub(super) fn start(
        &mut self,
        policy: &mut dyn Scheduler,
        job: usize,
        cluster: usize,
        node: usize,
        now: u64,
    ) -> bool {
        let Some(held) = self.fed.start(&self.tasks[job].resources, cluster, node) else {
            self.refused += 1;
            return false;
        };
        let start = Started {
            job,
            cluster,
            node,
            tier: self.fed.clusters[cluster].tier,
            at_ms: now,
        };
        policy.started(&self.tasks[job], &start, &self.fed);
        self.outcomes[job].start_ms = Some(now);
        self.outcomes[job].cluster = Some(cluster);
        self.held[job] = Some(held);
        self.ends.push(Reverse((now + self.durations_ms[job], job)));
        true
    }

    /// Starts what a job-by-job queue can start now, oldest first, with backfill.
    pub(super) fn pass(
        &mut self,
        decider: Decider,
        policy: &mut dyn Scheduler,
        freed: &[(usize, usize)],
        now: u64,
    ) {
        let (tasks, fed) = (self.tasks, &self.fed);
        let queue = match decider {
            Decider::Broker => &mut self.broker,
            Decider::Cluster(c) => &mut self.local[c],
        };
        if queue.len == 0 {
            return;
        }
        // Only nodes this queue can use count: a cluster's own, or any for the broker.
        let usable = |cluster: usize| match decider {
            Decider::Broker => true,
            Decider::Cluster(own) => own == cluster,
        };
        queue.unblock(|job| {
            freed
                .iter()
                .any(|(c, n)| usable(*c) && fed.clusters[*c].nodes[*n].fits(&tasks[job].resources))
        });
        let mut ready = queue.ready();
        while let Some(Reverse((job, shape))) = ready.pop() {
            let choice = match decider {
                Decider::Broker => policy.choose(&tasks[job], &self.fed),
                Decider::Cluster(c) => match self.fed.tightest(c, &tasks[job].resources) {
                    Some((_, node)) => Choice::Start { cluster: c, node },
                    None => Choice::Wait,
                },
            };
            let leaves = match choice {
                Choice::Start { cluster, node } => self.start(policy, job, cluster, node, now),
                Choice::Wait => false,
                Choice::Never => {
                    self.outcomes[job].rejected = true;
                    true
                }
            };
            let queue = match decider {
                Decider::Broker => &mut self.broker,
                Decider::Cluster(c) => &mut self.local[c],
            };
            if !leaves {
                queue.block(shape);
            } else if let Some(next) = queue.pop(shape) {
                ready.push(Reverse((next, shape)));
            }
        }
    }

    /// Lets the policy plan the whole queue, again while it starts jobs and
    /// some were beyond what one plan considers or had their start refused.
    /// A plan is skipped when it could not differ from the last one, which
    /// started nothing: no job arrived, no start was refused, no wake-up is
    /// due, and no queued shape fits a freed node (with equal priorities,
    /// aging keeps queue order; reservations and fair share only choose
    /// among jobs that fit).
    pub(super) fn plan_pass(
        &mut self,
        policy: &mut dyn Scheduler,
        freed: &[(usize, usize)],
        now: u64,
    ) {
        let mut woke = false;
        while self.wakes.peek().is_some_and(|Reverse(at)| *at <= now) {
            self.wakes.pop();
            woke = true;
        }
        if !(woke || std::mem::take(&mut self.replan) || self.freed_fits_queued(freed)) {
            return;
        }
        while !self.planned.is_empty() {
            let considered_all = self.planned.len() <= MAX_HEAD_PER_TENANT;
            self.plan_calls += 1;
            let plan = policy.plan_queue(now, &self.planned, self.tasks, &self.fed);
            if let Some(at) = plan
                .wake_at_ms
                .filter(|at| *at > now)
                .map(|at| self.pace.tick_at(at))
            {
                self.wakes.push(Reverse(at));
                self.dispatches.push(Reverse(at));
            }
            let mut done = HashSet::new();
            let mut refused = false;
            // A plan considers at most MAX_HEAD_PER_SHAPE jobs of one shape
            // of one tenant: when that many started, more of them may.
            let mut per_kind: HashMap<(&str, u32), usize> = HashMap::new();
            for (job, cluster, node) in plan.start {
                if self.start(policy, job, cluster, node, now) {
                    done.insert(job);
                    let task = &self.tasks[job];
                    *per_kind
                        .entry((task.tenant.as_str(), task.shape))
                        .or_default() += 1;
                } else {
                    refused = true;
                }
            }
            let considered_all =
                considered_all && per_kind.values().all(|n| *n < MAX_HEAD_PER_SHAPE);
            let started = done.len();
            for job in plan.never {
                self.outcomes[job].rejected = true;
                done.insert(job);
            }
            if !done.is_empty() {
                self.planned.retain(|q| !done.contains(&q.job));
                for job in &done {
                    let shape = self.tasks[*job].shape;
                    if let Some((_, count)) = self.planned_shapes.get_mut(&shape) {
                        *count -= 1;
                        if *count == 0 {
                            self.planned_shapes.remove(&shape);
                        }
                    }
                }
            }
            // Again, as the next dispatch round would: for the jobs beyond
            // the heads, and for those whose start the devices refused.
            if started == 0 || (considered_all && !refused) {
                if refused {
                    self.replan = true;
                    self.dispatches.push(Reverse(self.pace.tick_at(now + 1)));
                }
                break;
            }
        }
    }

    /// True when some shape in the planned queue fits one of the freed nodes now.
    pub(super) fn freed_fits_queued(&self, freed: &[(usize, usize)]) -> bool {
        !freed.is_empty()
            && self.planned_shapes.values().any(|(job, _)| {
                let resources = &self.tasks[*job].resources;
                freed
                    .iter()
                    .any(|(c, n)| self.fed.clusters[*c].nodes[*n].fits(resources))
            })
    }
}
