//! Submitting jobs: one script call queues a batch of one tenant's jobs, and
//! a group commit gathers concurrent single submits (the API's requests)
//! into such batches.
//!
//! Group commit: with AOF `appendfsync always`, Redis fsyncs once per event
//! loop round, and most of a script call's cost is per call, not per job. So
//! a submit does not call the script itself: it joins a waiting list, and a
//! committer task (at most `submit_batches_in_flight` at a time) takes
//! everything waiting, up to `submit_batch_max` jobs, and queues it with one
//! call per tenant. Nothing waits for a timer: a lone submit is committed at
//! once; under load, requests that arrive while a batch is in flight form the
//! next one. Each request still gets its own answer: its own job (created, or
//! the existing one for an idempotency key used before, even earlier in the
//! same batch), or its own copy of the error that stopped its batch. A
//! request answered `Created` was fsynced like any other write.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use raybroker_core::{Failover, Job, JobId, JobSpec, JobState, TenantId, Transition};
use tokio::sync::oneshot;

use super::{JobQueue, QueueError, SubmitOutcome};

/// One job's place in a submit call: the spec and when it was submitted.
type Submission = (JobSpec, u64);

/// The result of each job of a batch, in the batch's order.
type BatchResults = Vec<Result<SubmitOutcome, QueueError>>;

/// How many batches and jobs the group commit has sent (for tests, the
/// benchmark and metrics: jobs / batches is the mean batch size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Script calls the group commit made (one per tenant per round).
    pub batches: u64,
    /// Jobs those calls carried.
    pub jobs: u64,
}

/// The waiting list shared by every clone of a queue.
#[derive(Default)]
pub(crate) struct GroupCommit {
    gather: Mutex<Gather>,
    batches: AtomicU64,
    jobs: AtomicU64,
}

#[derive(Default)]
struct Gather {
    waiting: Vec<Waiting>,
    /// Committer tasks running; each runs until it finds the list empty.
    committers: usize,
}

/// A submit waiting for its batch.
struct Waiting {
    tenant: TenantId,
    spec: JobSpec,
    now_ms: u64,
    answer: oneshot::Sender<Result<SubmitOutcome, QueueError>>,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, Gather> {
        // The list stays consistent whatever a panicking holder did (every
        // change under the lock is one push, drain or count).
        self.gather
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Gives a committer's slot back if its task ends without emptying the list
/// (a panic): later submits can start a committer again.
struct CommitterSlot {
    group: Arc<GroupCommit>,
    done: bool,
}

impl Drop for CommitterSlot {
    fn drop(&mut self) {
        if !self.done {
            self.group.lock().committers -= 1;
        }
    }
}

impl JobQueue {
    /// Queues a validated job for `tenant`. With an idempotency key the tenant
    /// used before, returns the existing job and writes nothing. Concurrent
    /// submits share script calls (group commit, see the module doc).
    pub async fn submit(
        &self,
        tenant: &TenantId,
        spec: JobSpec,
        now_ms: u64,
    ) -> Result<SubmitOutcome, QueueError> {
        if self.config.submit_batch_max <= 1 {
            let results = self.submit_batch(tenant, vec![(spec, now_ms)]).await?;
            return results.into_iter().next().unwrap_or_else(|| {
                Err(QueueError::Corrupt {
                    id: String::new(),
                    detail: "submit script returned no result".into(),
                })
            });
        }
        let (answer, answered) = oneshot::channel();
        let start_committer = {
            let mut gather = self.group.lock();
            gather.waiting.push(Waiting {
                tenant: tenant.clone(),
                spec,
                now_ms,
                answer,
            });
            let start = gather.committers < self.config.submit_batches_in_flight.max(1);
            if start {
                gather.committers += 1;
            }
            start
        };
        if start_committer {
            // A task of its own, so a caller that stops waiting (a client
            // that hung up) never strands the others' answers.
            let queue = self.clone();
            tokio::spawn(async move { queue.commit_waiting().await });
        }
        answered.await.map_err(|_| QueueError::CommitLost)?
    }

    /// Queues many jobs of one tenant in one atomic script call (batches,
    /// benchmark). Outcomes are in the order of `specs`; fails on the first
    /// job that failed.
    pub async fn submit_many(
        &self,
        tenant: &TenantId,
        specs: Vec<JobSpec>,
        now_ms: u64,
    ) -> Result<Vec<SubmitOutcome>, QueueError> {
        let jobs = specs.into_iter().map(|spec| (spec, now_ms)).collect();
        self.submit_batch(tenant, jobs).await?.into_iter().collect()
    }

    /// What the group commit has sent so far (shared by every clone).
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.group.batches.load(Ordering::Relaxed),
            jobs: self.group.jobs.load(Ordering::Relaxed),
        }
    }

    /// A committer: takes what is waiting, commits it, and again, until the
    /// list is empty.
    async fn commit_waiting(self) {
        let mut slot = CommitterSlot {
            group: self.group.clone(),
            done: false,
        };
        loop {
            let taken: Vec<Waiting> = {
                let mut gather = self.group.lock();
                if gather.waiting.is_empty() {
                    gather.committers -= 1;
                    slot.done = true;
                    return;
                }
                let n = gather.waiting.len().min(self.config.submit_batch_max);
                gather.waiting.drain(..n).collect()
            };
            // One call per tenant (the script's keys are the tenant's), in
            // the order the tenants' first requests arrived.
            let mut by_tenant: Vec<(TenantId, Vec<Waiting>)> = Vec::new();
            for waiting in taken {
                match by_tenant.iter_mut().find(|(t, _)| *t == waiting.tenant) {
                    Some((_, list)) => list.push(waiting),
                    None => by_tenant.push((waiting.tenant.clone(), vec![waiting])),
                }
            }
            futures::future::join_all(
                by_tenant
                    .into_iter()
                    .map(|(tenant, list)| self.commit_tenant(tenant, list)),
            )
            .await;
        }
    }

    async fn commit_tenant(&self, tenant: TenantId, list: Vec<Waiting>) {
        self.group.batches.fetch_add(1, Ordering::Relaxed);
        self.group
            .jobs
            .fetch_add(list.len() as u64, Ordering::Relaxed);
        let (jobs, answers): (Vec<Submission>, Vec<_>) = list
            .into_iter()
            .map(|w| ((w.spec, w.now_ms), w.answer))
            .unzip();
        match self.submit_batch(&tenant, jobs).await {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    // A caller that stopped waiting is no error: its job is queued.
                    let _ = answer.send(result);
                }
            }
            Err(err) => {
                for answer in answers {
                    let _ = answer.send(Err(err.duplicate()));
                }
            }
        }
    }

    /// Queues `jobs` of one tenant in one script call. The outer error stops
    /// the whole call (nothing was queued, or, for a lost connection, it is
    /// unknown what was); the inner results are each job's own.
    async fn submit_batch(
        &self,
        tenant: &TenantId,
        jobs: Vec<Submission>,
    ) -> Result<BatchResults, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.submit.prepare_invoke();
        invocation
            .key(self.keys.idempotency(tenant))
            .key(self.keys.seq())
            .key(self.keys.all_jobs())
            .key(self.keys.tenant_jobs(tenant))
            .key(self.keys.ready(tenant))
            .key(self.keys.ready_tenants())
            .key(self.keys.events());
        let call_ms = jobs.iter().map(|(_, at)| *at).max().unwrap_or_default();
        self.common_args(&mut invocation, call_ms);
        invocation.arg(tenant.as_str());
        // A job whose spec does not serialise gets its own error and stays
        // out of the call.
        let mut results: Vec<Option<Result<SubmitOutcome, QueueError>>> = Vec::new();
        let mut sent = Vec::with_capacity(jobs.len());
        for (spec, now_ms) in jobs {
            let id = JobId::generate(now_ms);
            match serde_json::to_string(&spec) {
                Ok(spec_json) => {
                    invocation
                        .arg(id.as_str())
                        .arg(spec.idempotency_key.as_deref().unwrap_or(""))
                        .arg(spec.priority)
                        .arg(spec.display_name())
                        .arg(spec_json)
                        .arg(now_ms);
                    sent.push((results.len(), id, spec, now_ms));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(QueueError::Corrupt {
                    id: id.to_string(),
                    detail: format!("spec does not serialise: {e}"),
                }))),
            }
        }
        if !sent.is_empty() {
            let mut conn = self.conn().await?;
            let replies: Vec<(i64, String, u64)> = invocation.invoke_async(&mut conn).await?;
            drop(conn);
            if replies.len() != sent.len() {
                return Err(QueueError::Corrupt {
                    id: String::new(),
                    detail: format!(
                        "submit script answered {} jobs of {}",
                        replies.len(),
                        sent.len()
                    ),
                });
            }
            for ((created, id, _seq), (slot, new_id, spec, now_ms)) in replies.into_iter().zip(sent)
            {
                results[slot] = Some(if created == 1 {
                    Ok(SubmitOutcome::Created(queued_job(
                        new_id,
                        tenant.clone(),
                        spec,
                        now_ms,
                    )))
                } else {
                    self.existing(&id).await.map(SubmitOutcome::Existing)
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(QueueError::Corrupt {
                        id: String::new(),
                        detail: "submit left a job unanswered".into(),
                    })
                })
            })
            .collect())
    }

    /// The job an idempotency key already names.
    async fn existing(&self, id: &str) -> Result<Job, QueueError> {
        let existing = JobId::from_str(id).map_err(|e| QueueError::Corrupt {
            id: id.to_string(),
            detail: e.to_string(),
        })?;
        self.get(&existing)
            .await?
            .ok_or(QueueError::NotFound(existing))
    }
}

/// The job as the submit script wrote it, built without reading it back.
fn queued_job(id: JobId, tenant: TenantId, spec: JobSpec, now_ms: u64) -> Job {
    Job {
        id,
        tenant,
        name: spec.display_name(),
        state: JobState::Queued,
        reason: "submitted".to_string(),
        attempt: 0,
        cluster: None,
        cancel_requested: false,
        exit_code: None,
        failure: None,
        failover: Failover::default(),
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        attempts: Vec::new(),
        history: vec![Transition {
            from: None,
            to: JobState::Queued,
            at_ms: now_ms,
            attempt: 0,
            reason: "submitted".to_string(),
        }],
        spec,
    }
}
