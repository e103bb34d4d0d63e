//! The simulated cluster's scheduler: plays time forward, starting pending
//! jobs as a gang on the tightest nodes that fit (FIFO with backfill, no
//! reservations) and ending running jobs at their time.

use raybroker_adapter::RemoteState;
use raybroker_core::{Quantity, Resources};

use super::node::{start_line, NodeAllocation};
use super::Cluster;

impl Cluster {
    /// Plays everything up to `now_ms`: running jobs end at their time, and
    /// pending jobs start as soon as what they need is free.
    pub fn advance_to(&mut self, now_ms: u64) {
        let target = now_ms.max(self.now_ms);
        loop {
            self.start_pending(self.now_ms);
            let Some(at) = self.ends.first().map(|(at, _, _)| *at) else {
                break;
            };
            if at > target {
                break;
            }
            self.now_ms = self.now_ms.max(at);
            while let Some(entry) = self.ends.first().filter(|(end, _, _)| *end == at).cloned() {
                self.ends.remove(&entry);
                self.finish(&entry.2, at);
            }
        }
        self.now_ms = target;
    }

    /// Starts every pending job that fits now, oldest first.
    fn start_pending(&mut self, at: u64) {
        let pending: Vec<(u64, String)> = self
            .pending
            .iter()
            .map(|(seq, id)| (*seq, id.clone()))
            .collect();
        for (_, id) in pending {
            let Some(resources) = self.jobs.get(&id).map(|job| job.resources.clone()) else {
                continue;
            };
            if let Some(allocation) = self.choose(&resources) {
                self.start(&id, allocation, at);
            }
        }
    }

    /// The tightest `nodes` nodes that can hold one node of the job each now.
    fn choose(&self, resources: &Resources) -> Option<Vec<NodeAllocation>> {
        let mut fits: Vec<(Quantity, Quantity, NodeAllocation)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| {
                let gpus = node.fits(resources, self.capabilities.gpu_models, false)?;
                let gpus_left = node
                    .gpus_free()
                    .checked_sub(resources.gpus)
                    .unwrap_or_default();
                let cpus_left = node
                    .cpus_free()
                    .checked_sub(resources.cpus)
                    .unwrap_or_default();
                let allocation = NodeAllocation {
                    node: node.id.clone(),
                    gpus,
                    index,
                };
                Some((gpus_left, cpus_left, allocation))
            })
            .collect();
        if fits.len() < resources.nodes as usize {
            return None;
        }
        fits.sort_by_key(|(gpus, cpus, allocation)| (*gpus, *cpus, allocation.index));
        Some(
            fits.into_iter()
                .take(resources.nodes as usize)
                .map(|(_, _, allocation)| allocation)
                .collect(),
        )
    }

    /// Starts a pending job on the nodes chosen for it: takes what it needs,
    /// writes its start lines and schedules its end.
    fn start(&mut self, id: &str, allocation: Vec<NodeAllocation>, at: u64) {
        let Some(resources) = self.jobs.get(id).map(|job| job.resources.clone()) else {
            return;
        };
        for held in &allocation {
            self.nodes[held.index].take(&resources, &held.gpus);
        }
        *self.starts.entry(id.to_string()).or_default() += 1;
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let mut log: Vec<(u64, String)> = allocation
            .iter()
            .map(|held| (at, start_line(held)))
            .collect();
        log.extend(
            job.program
                .output
                .iter()
                .map(|(offset, text)| (at.saturating_add(*offset), text.clone())),
        );
        job.log = log;
        job.state = RemoteState::Running;
        job.started_at_ms = Some(at);
        let ends_at = at.saturating_add(job.program.duration_ms);
        job.ends_at_ms = Some(ends_at);
        job.allocation = allocation;
        self.pending.remove(&job.seq);
        self.ends.insert((ends_at, job.seq, id.to_string()));
    }

    /// Ends a running job by itself, with its program's exit code, and frees
    /// what it held.
    fn finish(&mut self, id: &str, at: u64) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let code = job.program.exit_code;
        job.state = if code == 0 {
            RemoteState::Succeeded
        } else {
            RemoteState::Failed
        };
        job.exit_code = Some(code);
        job.ends_at_ms = None;
        job.ended_at_ms = Some(at);
        job.log
            .push((at, format!("[sim] exited with code {code}\n")));
        let held = std::mem::take(&mut job.allocation);
        let resources = job.resources.clone();
        self.release(&held, &resources);
    }

    /// Takes a job out of the pending order and the schedule of endings.
    pub(super) fn unschedule(&mut self, id: &str, seq: u64, ends_at_ms: Option<u64>) {
        self.pending.remove(&seq);
        if let Some(at) = ends_at_ms {
            self.ends.remove(&(at, seq, id.to_string()));
        }
    }

    /// Gives what a job held back to its nodes.
    pub(super) fn release(&mut self, allocation: &[NodeAllocation], resources: &Resources) {
        for held in allocation {
            self.nodes[held.index].give_back(resources, &held.gpus);
        }
    }
}
