//! The simulated cluster itself: nodes with total and free resources, and
//! jobs with the allocation they hold.
//!
//! A job asks for its per-node shape on `nodes` distinct nodes and starts
//! only when all of them fit at once (a gang, all or nothing); until then it
//! is pending. Pending jobs are tried in submission order whenever capacity
//! frees up, and a later job that fits starts even if an earlier one still
//! waits (FIFO with backfill, no reservations). Among the nodes that fit, the
//! tightest are taken (fewest GPUs, then CPUs, left over), as placement does.
//! That scheduler lives in `cluster/schedule.rs`; this file is the cluster's
//! calls.
//!
//! GPUs are tracked per device (see [`node`]), and a job's log names the
//! devices it got as `CUDA_VISIBLE_DEVICES` would.
//!
//! The model is pure and synchronous; every call names the time it happens
//! at, and first plays everything up to then ([`Cluster::advance_to`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use raybroker_adapter::{
    AdapterError, Capabilities, CapacitySnapshot, ErrorKind, LogChunk, OwnedJob, RemoteState,
    RemoteStatus, SubmitAck, SubmitRequest,
};
use raybroker_core::{JobId, Quantity, Resources};

use crate::config::SimClusterConfig;
use crate::program::{interpret, Program};

pub mod node;
mod schedule;

use node::Node;
pub use node::NodeAllocation;

/// One job on the cluster.
#[derive(Clone, Debug)]
struct SimJob {
    /// Submission order: pending jobs are tried oldest first.
    seq: u64,
    /// The broker that submitted it; `list_owned` filters on it.
    origin: String,
    /// The broker's job, as tagged.
    job_id: JobId,
    /// The broker's attempt number, as tagged.
    attempt: u32,
    /// The per-node shape and node count it needs.
    resources: Resources,
    /// As submitted, for messages.
    entrypoint: String,
    /// What the entrypoint does once started.
    program: Program,
    state: RemoteState,
    started_at_ms: Option<u64>,
    /// When a running job will end by itself.
    ends_at_ms: Option<u64>,
    ended_at_ms: Option<u64>,
    exit_code: Option<i32>,
    /// What it holds while running; empty otherwise.
    allocation: Vec<NodeAllocation>,
    /// Log text and when it becomes visible; times never decrease.
    log: Vec<(u64, String)>,
}

/// The cluster's state at the time it was last played to.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Node>,
    /// Every job the cluster knows, by submission id.
    jobs: BTreeMap<String, SimJob>,
    /// What the backend honours: refused shapes are rejected at submit.
    capabilities: Capabilities,
    /// How long an entrypoint the simulator does not interpret runs.
    default_duration: Duration,
    /// Pending jobs by submission order (`seq`), so a start pass tries the
    /// oldest first without scanning finished jobs.
    pending: BTreeMap<u64, String>,
    /// Running jobs by the time they end by themselves, then `seq`: the next
    /// event to play is the first entry.
    ends: BTreeSet<(u64, u64, String)>,
    /// How many times each submission id started running; outlives cleanup
    /// and forget, for exactly-once checks.
    starts: HashMap<String, u32>,
    next_seq: u64,
    /// The time the model has been played to; never decreases.
    now_ms: u64,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> AdapterError {
    AdapterError::new(kind, message)
}

impl Cluster {
    /// A cluster of the configured nodes, empty of jobs, at `now_ms`.
    pub fn new(config: &SimClusterConfig, now_ms: u64) -> Cluster {
        let mut nodes = Vec::new();
        for shape in &config.nodes {
            for _ in 0..shape.count {
                nodes.push(Node::new(
                    format!("{}-{}", shape.prefix, nodes.len()),
                    shape,
                ));
            }
        }
        Cluster {
            nodes,
            jobs: BTreeMap::new(),
            capabilities: config.capabilities.clone(),
            default_duration: config.default_duration,
            pending: BTreeMap::new(),
            ends: BTreeSet::new(),
            starts: HashMap::new(),
            next_seq: 0,
            now_ms,
        }
    }

    /// Accepts a job tagged with `origin`; a known submission id is adopted,
    /// never run twice. A shape no set of nodes could ever hold, or one the
    /// backend cannot honour, is rejected.
    pub fn submit(
        &mut self,
        request: &SubmitRequest,
        origin: &str,
        now_ms: u64,
    ) -> Result<SubmitAck, AdapterError> {
        self.advance_to(now_ms);
        if self.jobs.contains_key(&request.submission_id) {
            return Ok(SubmitAck::AlreadyExists);
        }
        let resources = &request.spec.resources;
        if let Some(why) = self.capabilities.refuses(resources) {
            return Err(error(ErrorKind::Rejected, why));
        }
        if resources.gpus > Quantity::whole(1) && !resources.gpus.is_whole() {
            return Err(error(
                ErrorKind::Rejected,
                format!("{} GPUs: above one, GPUs must be whole", resources.gpus),
            ));
        }
        if resources.nodes == 0 {
            return Err(error(ErrorKind::Rejected, "a job needs at least one node"));
        }
        let could_hold = self
            .nodes
            .iter()
            .filter(|node| {
                node.fits(resources, self.capabilities.gpu_models, true)
                    .is_some()
            })
            .count();
        if could_hold < resources.nodes as usize {
            return Err(error(
                ErrorKind::Rejected,
                format!(
                    "only {could_hold} node(s) could ever hold the job's per-node shape; it needs {}",
                    resources.nodes
                ),
            ));
        }
        let job = SimJob {
            seq: self.next_seq,
            origin: origin.to_string(),
            job_id: request.job_id.clone(),
            attempt: request.attempt,
            resources: resources.clone(),
            entrypoint: request.spec.entrypoint.clone(),
            program: interpret(&request.spec.entrypoint, self.default_duration),
            state: RemoteState::Pending,
            started_at_ms: None,
            ends_at_ms: None,
            ended_at_ms: None,
            exit_code: None,
            allocation: Vec::new(),
            log: Vec::new(),
        };
        self.pending.insert(job.seq, request.submission_id.clone());
        self.next_seq += 1;
        self.jobs.insert(request.submission_id.clone(), job);
        self.advance_to(now_ms);
        Ok(SubmitAck::Created)
    }

    /// The job's status; an unknown id is [`RemoteState::NotFound`].
    pub fn status(&mut self, submission_id: &str, now_ms: u64) -> RemoteStatus {
        self.advance_to(now_ms);
        let Some(job) = self.jobs.get(submission_id) else {
            return RemoteStatus::not_found();
        };
        let nodes: Vec<&str> = job.allocation.iter().map(|a| a.node.as_str()).collect();
        let message = match (job.state, job.exit_code) {
            (RemoteState::Pending, _) => "waiting for resources".to_string(),
            (RemoteState::Running, _) => format!("running on {}", nodes.join(", ")),
            (RemoteState::Succeeded, _) => "succeeded".to_string(),
            (RemoteState::Failed, Some(code)) => {
                format!("`{}` exited with code {code}", job.entrypoint)
            }
            (RemoteState::Stopped, _) => "stopped on request".to_string(),
            (state, _) => format!("{state:?}"),
        };
        RemoteStatus {
            state: job.state,
            message,
            exit_code: job.exit_code,
            started_at_ms: job.started_at_ms,
            ended_at_ms: job.ended_at_ms,
            failure: match (job.state, job.exit_code) {
                (RemoteState::Failed, Some(code)) if code != 0 => {
                    Some(raybroker_core::FailureClass::JobError)
                }
                _ => None,
            },
        }
    }

    /// Log text from byte `cursor` on, as far as it has been written by now.
    pub fn logs(
        &mut self,
        submission_id: &str,
        cursor: u64,
        now_ms: u64,
    ) -> Result<LogChunk, AdapterError> {
        self.advance_to(now_ms);
        let job = self.jobs.get(submission_id).ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                format!("no job {submission_id} on this cluster"),
            )
        })?;
        let written: String = job
            .log
            .iter()
            .take_while(|(at, _)| *at <= self.now_ms)
            .map(|(_, text)| text.as_str())
            .collect();
        let from = usize::try_from(cursor).unwrap_or(usize::MAX);
        if from >= written.len() {
            return Ok(LogChunk {
                text: String::new(),
                next_cursor: cursor,
            });
        }
        let text = written.get(from..).ok_or_else(|| {
            error(
                ErrorKind::Rejected,
                format!("log cursor {cursor} is inside a character"),
            )
        })?;
        Ok(LogChunk {
            text: text.to_string(),
            next_cursor: written.len() as u64,
        })
    }

    /// Stops a pending or running job; a finished or unknown one is left alone.
    pub fn cancel(&mut self, submission_id: &str, now_ms: u64) {
        self.advance_to(now_ms);
        let now = self.now_ms;
        let Some(job) = self.jobs.get_mut(submission_id) else {
            return;
        };
        if job.state.is_final() {
            return;
        }
        let (seq, ends_at) = (job.seq, job.ends_at_ms);
        job.log.retain(|(at, _)| *at <= now);
        job.log
            .push((now, "[sim] stopped on request\n".to_string()));
        job.state = RemoteState::Stopped;
        job.ends_at_ms = None;
        job.ended_at_ms = Some(now);
        let held = std::mem::take(&mut job.allocation);
        let resources = job.resources.clone();
        self.unschedule(submission_id, seq, ends_at);
        self.release(&held, &resources);
        self.advance_to(now);
    }

    /// Forgets a finished job; a job still pending or running is refused
    /// (stop it first), an unknown one is fine.
    pub fn cleanup(&mut self, submission_id: &str, now_ms: u64) -> Result<(), AdapterError> {
        self.advance_to(now_ms);
        match self.jobs.get(submission_id) {
            Some(job) if !job.state.is_final() => Err(error(
                ErrorKind::Rejected,
                format!(
                    "job {submission_id} is {:?}; stop it before cleaning it up",
                    job.state
                ),
            )),
            _ => {
                self.jobs.remove(submission_id);
                Ok(())
            }
        }
    }

    /// Every job tagged with `origin`.
    pub fn owned_by(&mut self, origin: &str, now_ms: u64) -> Vec<OwnedJob> {
        self.advance_to(now_ms);
        self.jobs
            .iter()
            .filter(|(_, job)| job.origin == origin)
            .map(|(id, job)| OwnedJob {
                submission_id: id.clone(),
                job_id: Some(job.job_id.clone()),
                attempt: Some(job.attempt),
                state: job.state,
            })
            .collect()
    }

    /// Every node with what is free on it, and the pending jobs.
    pub fn snapshot(&mut self, version: &str, now_ms: u64) -> CapacitySnapshot {
        self.advance_to(now_ms);
        let nodes = self.nodes.iter().map(Node::capacity).collect();
        let pending = self.pending.len();
        CapacitySnapshot {
            taken_at_ms: self.now_ms,
            nodes,
            pending_jobs: u32::try_from(pending).unwrap_or(u32::MAX),
            version: version.to_string(),
        }
    }

    /// Loses a job as a crashed head would: its record and its allocation
    /// are gone. Returns whether the cluster knew it.
    pub fn forget(&mut self, submission_id: &str, now_ms: u64) -> bool {
        self.advance_to(now_ms);
        let Some(job) = self.jobs.remove(submission_id) else {
            return false;
        };
        self.unschedule(submission_id, job.seq, job.ends_at_ms);
        self.release(&job.allocation, &job.resources);
        self.advance_to(now_ms);
        true
    }

    /// How many times this submission id started running.
    pub fn starts_of(&self, submission_id: &str) -> u32 {
        self.starts.get(submission_id).copied().unwrap_or(0)
    }

    /// Submission ids in `state` now, in submission order.
    pub fn in_state(&mut self, state: RemoteState, now_ms: u64) -> Vec<String> {
        self.advance_to(now_ms);
        let mut ids: Vec<(u64, String)> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.state == state)
            .map(|(id, job)| (job.seq, id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// What the job holds now (empty unless running), or `None` if unknown.
    pub fn allocation(&mut self, submission_id: &str, now_ms: u64) -> Option<Vec<NodeAllocation>> {
        self.advance_to(now_ms);
        self.jobs
            .get(submission_id)
            .map(|job| job.allocation.clone())
    }
}

#[cfg(test)]
mod tests;
