//! The group controller: releases the members of job groups into the queue
//! (parallel up to a concurrency, or in series), runs sweeps (asks the search
//! algorithm for each trial's parameters, applies early stopping), carries
//! group cancels to the members, and ends groups.
//!
//! Crash safety: everything it decides is in Redis before it acts on it, and
//! every action is idempotent. Member `i` is submitted under a deterministic
//! idempotency key ([`member_idempotency_key`]), so a replay after a crash
//! between the submit and recording the member finds the same job; a sweep
//! trial's parameters are written (once) before its job is submitted.

pub mod sweep;
pub mod sweep_spec;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use raybroker_core::group::{
    member_idempotency_key, plan, GroupId, GroupSpec, GroupState, GROUP_LABEL,
};
use raybroker_core::{JobId, JobSpec, JobState, TenantId};
use raybroker_queue::{GroupKind, GroupRecord, JobQueue, QueueError};

/// The job label carrying a member's index in its group.
pub const MEMBER_LABEL: &str = "raybroker.member";

/// How the group controller behaves.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// Pause between passes over the running groups.
    pub tick: Duration,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            tick: Duration::from_millis(500),
        }
    }
}

/// What can stop one group's step (the next pass tries again).
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The stored spec cannot be read (it was checked at submit: a bug or
    /// a hand-edited record); the group is ended as failed.
    #[error("the stored spec cannot be used: {0}")]
    BadSpec(String),
}

/// The controller's state.
pub struct GroupController {
    pub(crate) queue: JobQueue,
    settings: GroupSettings,
    /// Final states of member jobs already seen (final states never change,
    /// so they need not be read again); dropped when the group ends.
    finished: Mutex<HashMap<JobId, JobState>>,
    /// Finished sweep trials' jobs and objective points, read once (ASHA
    /// compares running trials with them on every pass); dropped when the
    /// sweep ends.
    pub(crate) finished_trials: Mutex<HashMap<JobId, sweep::Followed>>,
}

impl GroupController {
    /// A controller over the queue.
    pub fn new(queue: JobQueue, settings: GroupSettings) -> GroupController {
        GroupController {
            queue,
            settings,
            finished: Mutex::new(HashMap::new()),
            finished_trials: Mutex::new(HashMap::new()),
        }
    }

    /// Runs passes until `shutdown` turns true.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.pass(super::now_ms()).await {
                tracing::warn!(error = %err, "group pass failed");
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(self.settings.tick) => {}
            }
        }
    }

    /// One step of every running group and sweep.
    pub async fn pass(&self, now_ms: u64) -> Result<(), QueueError> {
        for id in self.queue.active_groups().await? {
            let Some(record) = self.queue.group(&id).await? else {
                continue;
            };
            let result = match record.kind {
                GroupKind::Group => self.step_group(&record, now_ms).await,
                GroupKind::Sweep => self.step_sweep(&record, now_ms).await,
            };
            match result {
                Ok(()) => {}
                Err(GroupError::BadSpec(why)) => {
                    tracing::error!(group = %id, error = %why, "group cannot run");
                    let reason = format!("the stored spec cannot be used: {why}");
                    self.queue
                        .finish_group(&id, GroupState::Failed, &reason, now_ms)
                        .await?;
                }
                Err(GroupError::Queue(err)) => {
                    tracing::warn!(group = %id, error = %err, "group step failed");
                }
            }
        }
        Ok(())
    }

    /// One step of a plain group: read the members' states, release what
    /// the plan says, end the group when it is over.
    async fn step_group(&self, record: &GroupRecord, now_ms: u64) -> Result<(), GroupError> {
        let spec: GroupSpec =
            serde_json::from_str(&record.spec).map_err(|e| GroupError::BadSpec(e.to_string()))?;
        let members = spec.members().map_err(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            GroupError::BadSpec(text.join("; "))
        })?;
        let released: Vec<(usize, JobId)> = (0..members.len())
            .filter_map(|index| Some((index, record.members.get(&index)?.clone())))
            .collect();
        let ids: Vec<JobId> = released.iter().map(|(_, id)| id.clone()).collect();
        let mut states: Vec<Option<JobState>> = vec![None; members.len()];
        for ((index, _), state) in released.iter().zip(self.job_states(&ids).await?) {
            states[*index] = Some(state);
        }
        if record.cancel_requested {
            return self.carry_cancel(record, &states, now_ms).await;
        }
        let plan = plan(&spec, &states);
        for index in plan.release {
            let member = members[index].clone();
            self.release(&record.id, &record.tenant, index, member, now_ms)
                .await?;
        }
        if let Some((state, reason)) = plan.finish {
            self.end(record, state, &reason, now_ms).await?;
        }
        Ok(())
    }

    /// Cancels every unfinished released member; ends the group once none
    /// is left. Unreleased members are never released.
    async fn carry_cancel(
        &self,
        record: &GroupRecord,
        states: &[Option<JobState>],
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let reason = format!("group {} cancelled: {}", record.id, record.cancel_reason);
        let mut unfinished = 0;
        for (index, state) in states.iter().enumerate() {
            let (Some(state), Some(job)) = (state, record.members.get(&index)) else {
                continue;
            };
            if !state.is_terminal() {
                unfinished += 1;
                self.cancel_member(job, &reason, now_ms).await?;
            }
        }
        if unfinished == 0 {
            self.end(record, GroupState::Cancelled, &record.cancel_reason, now_ms)
                .await?;
        }
        Ok(())
    }

    /// Asks the queue to cancel a member job (idempotent).
    pub(crate) async fn cancel_member(
        &self,
        job: &JobId,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        match self.queue.cancel(job, reason, now_ms).await {
            Ok(_) | Err(QueueError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Submits member `index` (labelled with its group, under its
    /// deterministic idempotency key) and records its job.
    pub(crate) async fn release(
        &self,
        group: &GroupId,
        tenant: &TenantId,
        index: usize,
        spec: JobSpec,
        now_ms: u64,
    ) -> Result<JobId, QueueError> {
        let spec = member_job(group, index, spec);
        let outcome = self.queue.submit(tenant, spec, now_ms).await?;
        let job = self
            .queue
            .record_group_member(group, index, &outcome.job().id)
            .await?;
        if outcome.created() {
            tracing::info!(group = %group, member = index, job_id = %job, "group member released");
        }
        Ok(job)
    }

    /// Ends the group and forgets its members' cached states.
    pub(crate) async fn end(
        &self,
        record: &GroupRecord,
        state: GroupState,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        if self
            .queue
            .finish_group(&record.id, state, reason, now_ms)
            .await?
        {
            tracing::info!(group = %record.id, state = %state, reason, "group ended");
        }
        if let Ok(mut finished) = self.finished.lock() {
            for job in record.members.values() {
                finished.remove(job);
            }
        }
        if let Ok(mut finished) = self.finished_trials.lock() {
            for job in record.members.values() {
                finished.remove(job);
            }
        }
        Ok(())
    }

    /// Member jobs' states, in order; a job that vanished counts as failed.
    /// Final states are remembered; the others are read in one round trip.
    pub(crate) async fn job_states(&self, jobs: &[JobId]) -> Result<Vec<JobState>, QueueError> {
        let (known, unknown) = from_cache(&self.finished, jobs);
        let mut read = self.queue.get_many(&unknown).await?.into_iter();
        let mut states = Vec::with_capacity(jobs.len());
        for (job, known) in jobs.iter().zip(known) {
            let state = match known {
                Some(state) => state,
                None => match read.next().flatten() {
                    Some(found) => found.state,
                    None => {
                        tracing::warn!(job_id = %job, "a group member's job is gone; counting it as failed");
                        JobState::Failed
                    }
                },
            };
            if state.is_terminal() {
                if let Ok(mut finished) = self.finished.lock() {
                    finished.insert(job.clone(), state);
                }
            }
            states.push(state);
        }
        Ok(states)
    }
}

/// What `cache` holds for each of `jobs` (in order), and the jobs it lacks.
pub(crate) fn from_cache<T: Clone>(
    cache: &Mutex<HashMap<JobId, T>>,
    jobs: &[JobId],
) -> (Vec<Option<T>>, Vec<JobId>) {
    let known: Vec<Option<T>> = {
        let cache = cache.lock().ok();
        jobs.iter()
            .map(|job| cache.as_ref().and_then(|c| c.get(job).cloned()))
            .collect()
    };
    let unknown = jobs
        .iter()
        .zip(&known)
        .filter(|(_, k)| k.is_none())
        .map(|(job, _)| job.clone())
        .collect();
    (known, unknown)
}

/// A member's job spec as submitted: labelled with its group and index,
/// under the group's idempotency key for it.
pub fn member_job(group: &GroupId, index: usize, mut spec: JobSpec) -> JobSpec {
    spec.labels
        .insert(GROUP_LABEL.to_string(), group.as_str().to_string());
    spec.labels
        .insert(MEMBER_LABEL.to_string(), index.to_string());
    spec.idempotency_key = Some(member_idempotency_key(group, index));
    spec
}

#[cfg(test)]
mod tests {
    use raybroker_core::JobSpec;
    use raybroker_queue::testing::{now_ms, queue};

    use super::*;

    #[tokio::test]
    async fn member_states_come_in_order_gone_ones_failed_and_final_ones_remembered() {
        let queue = queue("group-states");
        let tenant = TenantId::new("robotics").unwrap();
        let spec = || JobSpec::from_yaml("entrypoint: python train.py\n").unwrap();
        let now = now_ms();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                queue
                    .submit(&tenant, spec(), now)
                    .await
                    .unwrap()
                    .job()
                    .id
                    .clone(),
            );
        }
        queue.cancel(&ids[1], "not needed", now).await.unwrap();
        let gone = JobId::generate(now);
        let members = [ids[0].clone(), ids[1].clone(), gone.clone(), ids[2].clone()];
        let controller = GroupController::new(queue.clone(), GroupSettings::default());
        let states = controller.job_states(&members).await.unwrap();
        use JobState::*;
        assert_eq!(states, [Queued, Cancelled, Failed, Queued]);
        let finished = controller.finished.lock().unwrap().clone();
        assert_eq!(finished.len(), 2, "{finished:?}");
        assert_eq!(finished.get(&ids[1]), Some(&Cancelled));
        assert_eq!(finished.get(&gone), Some(&Failed));
        // A remembered final state is not read again; the others are.
        queue.cancel(&ids[0], "not needed", now).await.unwrap();
        let states = controller.job_states(&members).await.unwrap();
        assert_eq!(states, [Cancelled, Cancelled, Failed, Queued]);
        assert!(controller.job_states(&[]).await.unwrap().is_empty());
    }
}
