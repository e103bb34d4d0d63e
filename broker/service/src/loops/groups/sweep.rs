//! One step of a sweep: follow its trials (state, cluster, objective from
//! the metrics their jobs report), stop the ones ASHA says fell behind,
//! create the next trials from the search algorithm, end the sweep when
//! every trial has.
//!
//! A trial's parameters are written to Redis (once) before its job is
//! submitted; a trial stopped early is marked `stopped_early` before its job
//! is cancelled. A replay after a crash at any point redoes the same steps.

use std::collections::BTreeMap;

use raybroker_core::group::GroupState;
use raybroker_core::{Job, JobId, JobState};
use raybroker_queue::GroupRecord;
use raybroker_tuning::{suggest, AshaDecision, Observation, TrialProgress};

use super::sweep_spec::{SweepSpec, Trial, TrialState};
use super::{GroupController, GroupError};

/// A trial's job (`None` once it is gone) and its `(step, objective)` points.
pub(crate) type Followed = (Option<Job>, Vec<(u64, f64)>);

impl GroupController {
    /// One step of a sweep (see the module's doc).
    pub(crate) async fn step_sweep(
        &self,
        record: &GroupRecord,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let spec: SweepSpec =
            serde_json::from_str(&record.spec).map_err(|e| GroupError::BadSpec(e.to_string()))?;
        let mut trials = BTreeMap::new();
        for (index, text) in &record.trials {
            let trial: Trial = serde_json::from_str(text)
                .map_err(|e| GroupError::BadSpec(format!("trial {index}: {e}")))?;
            trials.insert(*index, trial);
        }
        let started: Vec<JobId> = trials
            .keys()
            .filter_map(|index| record.members.get(index).cloned())
            .collect();
        let mut followed = self.follow_trials(&spec, &started).await?.into_iter();
        let mut progress = BTreeMap::new();
        for (index, trial) in trials.iter_mut() {
            if !record.members.contains_key(index) {
                continue;
            }
            let Some((job, points)) = followed.next() else {
                continue;
            };
            let before = trial.clone();
            refresh(trial, job.as_ref(), &points);
            if *trial != before {
                self.save_trial(record, trial, now_ms).await?;
            }
            progress.insert(*index, (job, points));
        }

        if record.cancel_requested {
            let reason = format!("sweep {} cancelled: {}", record.id, record.cancel_reason);
            let mut unfinished = 0;
            for (index, (job, _)) in &progress {
                if let Some(job) = job.as_ref().filter(|j| !j.state.is_terminal()) {
                    unfinished += 1;
                    self.cancel_member(&job.id, &reason, now_ms).await?;
                }
                let _ = index;
            }
            if unfinished == 0 {
                self.end(record, GroupState::Cancelled, &record.cancel_reason, now_ms)
                    .await?;
            }
            return Ok(());
        }

        if let Some(asha) = &spec.early_stopping {
            let all: Vec<TrialProgress> = progress
                .iter()
                .map(|(index, (_, points))| TrialProgress {
                    id: index.to_string(),
                    points: points.clone(),
                })
                .collect();
            for (index, trial) in trials.iter_mut() {
                let Some((Some(job), _)) = progress.get(index) else {
                    continue;
                };
                if trial.state == TrialState::StoppedEarly {
                    // Decided before (maybe before a crash): make sure the job ends.
                    if !job.state.is_terminal() {
                        self.cancel_member(&job.id, &trial.reason, now_ms).await?;
                    }
                    continue;
                }
                if job.state.is_terminal() {
                    continue;
                }
                let Some(mine) = all.iter().find(|p| p.id == index.to_string()) else {
                    continue;
                };
                if let AshaDecision::Stop { rung, reason } =
                    asha.decide(mine, &all, spec.objective.mode)
                {
                    trial.state = TrialState::StoppedEarly;
                    trial.stopped_at_rung = Some(rung);
                    trial.reason = format!("stopped early by ASHA at rung {rung}: {reason}");
                    self.save_trial(record, trial, now_ms).await?;
                    tracing::info!(sweep = %record.id, trial = index, rung, "trial stopped early");
                    self.cancel_member(&job.id, &trial.reason, now_ms).await?;
                }
            }
        }

        // Trials decided before a crash whose job was never submitted.
        for (index, trial) in &trials {
            if !record.members.contains_key(index) {
                self.submit_trial(record, &spec, trial, now_ms).await?;
            }
        }

        let total = spec.total_trials();
        let mut unfinished = trials.values().filter(|t| !t.state.is_final()).count();
        let mut exhausted = false;
        while unfinished < spec.max_concurrent_trials as usize && trials.len() < total {
            let index = trials.len();
            let Some(trial) = self.next_trial(&spec, index, &trials) else {
                exhausted = true;
                break;
            };
            let text = serde_json::to_string(&trial)
                .map_err(|e| GroupError::BadSpec(format!("trial {index}: {e}")))?;
            let stored = self.queue.create_trial(&record.id, index, &text).await?;
            let trial: Trial = serde_json::from_str(&stored)
                .map_err(|e| GroupError::BadSpec(format!("trial {index}: {e}")))?;
            self.submit_trial(record, &spec, &trial, now_ms).await?;
            trials.insert(index, trial);
            unfinished += 1;
        }

        let all_created = exhausted || trials.len() >= total;
        if all_created && trials.values().all(|t| t.state.is_final()) {
            let reason = summary(&spec, &trials);
            self.end(record, GroupState::Succeeded, &reason, now_ms)
                .await?;
        }
        Ok(())
    }

    /// Each trial job's job and its `(step, objective)` points of the
    /// current attempt, in order. A job that ended is read once (its log was
    /// read to the end before it ended, so its points are complete); the
    /// others are read together: the jobs in one round trip, the objective's
    /// series in another.
    async fn follow_trials(
        &self,
        spec: &SweepSpec,
        jobs: &[JobId],
    ) -> Result<Vec<Followed>, GroupError> {
        let (known, unknown) = super::from_cache(&self.finished_trials, jobs);
        let read = self.queue.get_many(&unknown).await?;
        let series = self
            .queue
            .metric_series_of(&unknown, &spec.objective.metric)
            .await?;
        let mut fresh = unknown.iter().zip(read.into_iter().zip(series));
        let mut out = Vec::with_capacity(jobs.len());
        for known in known {
            if let Some(followed) = known {
                out.push(followed);
                continue;
            }
            let Some((id, (job, series))) = fresh.next() else {
                break; // one per unknown job: cannot happen
            };
            let Some(job) = job else {
                out.push((None, Vec::new()));
                continue;
            };
            let points = series
                .iter()
                .filter(|p| p.attempt == job.attempt)
                .enumerate()
                .map(|(i, p)| (p.step.unwrap_or(i as u64 + 1), p.value))
                .collect();
            let ended = job.state.is_terminal();
            let followed = (Some(job), points);
            if ended {
                if let Ok(mut cache) = self.finished_trials.lock() {
                    cache.insert(id.clone(), followed.clone());
                }
            }
            out.push(followed);
        }
        Ok(out)
    }

    /// The next trial: a new parameter set from the algorithm (its first
    /// run), or the parameters of its set for a repeat. `None` when a grid
    /// has no more points.
    fn next_trial(
        &self,
        spec: &SweepSpec,
        index: usize,
        trials: &BTreeMap<usize, Trial>,
    ) -> Option<Trial> {
        let repeats = spec.repeats.max(1) as usize;
        let config = u32::try_from(index / repeats).ok()?;
        let repeat = (index % repeats) as u32;
        let params = if repeat == 0 {
            let history: Vec<Observation> = trials
                .values()
                .map(|t| Observation {
                    params: t.params.clone(),
                    // Failed and cancelled trials tell nothing about their parameters.
                    objective: t.objective.filter(|_| {
                        matches!(t.state, TrialState::Succeeded | TrialState::StoppedEarly)
                    }),
                })
                .collect();
            suggest(
                spec.algorithm,
                &spec.search_space,
                spec.seed,
                config,
                &history,
                spec.objective.mode,
            )?
        } else {
            trials.get(&(index - repeat as usize))?.params.clone()
        };
        Some(Trial {
            index,
            config,
            repeat,
            seed: spec.trial_seed(config, repeat),
            params,
            state: TrialState::Created,
            objective: None,
            step: None,
            reports: 0,
            stopped_at_rung: None,
            reason: "created".into(),
            cluster: None,
        })
    }

    /// Submits the trial's job as member `index` of the sweep.
    async fn submit_trial(
        &self,
        record: &GroupRecord,
        spec: &SweepSpec,
        trial: &Trial,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let job = spec
            .trial_job(
                &record.id,
                trial.index,
                trial.config,
                trial.repeat,
                &trial.params,
            )
            .map_err(|e| GroupError::BadSpec(format!("trial {}: {e}", trial.index)))?;
        self.release(&record.id, &record.tenant, trial.index, job, now_ms)
            .await?;
        Ok(())
    }

    async fn save_trial(
        &self,
        record: &GroupRecord,
        trial: &Trial,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let text = serde_json::to_string(trial)
            .map_err(|e| GroupError::BadSpec(format!("trial {}: {e}", trial.index)))?;
        self.queue
            .update_trial(&record.id, trial.index, &text, now_ms)
            .await?;
        Ok(())
    }
}

/// Brings a trial in line with its job and reported points. A trial
/// stopped early stays so whatever its job ends as.
fn refresh(trial: &mut Trial, job: Option<&Job>, points: &[(u64, f64)]) {
    if let Some(&(step, value)) = points.last() {
        trial.objective = Some(value);
        trial.step = Some(step);
        trial.reports = points.len();
    }
    let Some(job) = job else {
        if !trial.state.is_final() {
            trial.state = TrialState::Failed;
            trial.reason = "its job is gone".into();
        }
        return;
    };
    if job.cluster.is_some() {
        trial.cluster = job.cluster.clone();
    }
    if trial.state == TrialState::StoppedEarly || trial.state.is_final() {
        return;
    }
    let state = TrialState::of_job(job.state);
    if state != trial.state {
        trial.state = state;
        trial.reason = match job.state {
            JobState::Succeeded if trial.objective.is_none() => {
                "succeeded without reporting the objective metric".into()
            }
            _ => job.reason.clone(),
        };
    }
}

/// The sweep's closing line: trials by outcome and the best one.
fn summary(spec: &SweepSpec, trials: &BTreeMap<usize, Trial>) -> String {
    let count = |s: TrialState| trials.values().filter(|t| t.state == s).count();
    let mode = spec.objective.mode;
    let best = trials
        .values()
        .filter_map(|t| t.objective.map(|o| (t.index, o)))
        .filter(|(_, o)| o.is_finite())
        .reduce(|a, b| if mode.better(b.1, a.1) { b } else { a });
    let best = best.map_or("no trial reported the objective".to_string(), |(i, o)| {
        format!("best: trial {i} with {} {o}", spec.objective.metric)
    });
    format!(
        "{} trials: {} succeeded, {} stopped early, {} failed, {} cancelled; {best}",
        trials.len(),
        count(TrialState::Succeeded),
        count(TrialState::StoppedEarly),
        count(TrialState::Failed),
        count(TrialState::Cancelled),
    )
}

#[cfg(test)]
mod tests {
    use raybroker_core::{JobSpec, JobState, MetricPoint, TenantId};
    use raybroker_queue::testing::{now_ms, queue};

    use super::*;
    use crate::loops::groups::GroupSettings;

    #[tokio::test]
    async fn trials_are_followed_together_with_their_objective_and_ended_ones_once() {
        let queue = queue("sweep-follow");
        let tenant = TenantId::new("robotics").unwrap();
        let now = now_ms();
        let job = || JobSpec::from_yaml("entrypoint: python train.py\n").unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                queue
                    .submit(&tenant, job(), now)
                    .await
                    .unwrap()
                    .job()
                    .id
                    .clone(),
            );
        }
        let point = |name: &str, value: f64, step: u64| MetricPoint {
            name: name.into(),
            value,
            step: Some(step),
            at_ms: now + step,
            attempt: 0,
        };
        // Trial 0 reports the objective and another metric; trial 2 ends.
        queue
            .record_metrics(&ids[0], &[point("reward", 1.0, 1), point("loss", 9.0, 1)])
            .await
            .unwrap();
        queue
            .record_metrics(&ids[0], &[point("reward", 2.5, 2)])
            .await
            .unwrap();
        queue
            .record_metrics(&ids[2], &[point("reward", 7.0, 5)])
            .await
            .unwrap();
        queue.cancel(&ids[2], "stopped", now).await.unwrap();
        let gone = JobId::generate(now);
        let spec: SweepSpec = serde_json::from_value(serde_json::json!({
            "template": {"entrypoint": "python train.py --lr {{lr}}", "resources": {"cpus": 1}},
            "search_space": {"lr": {"loguniform": [0.0001, 0.1]}},
            "algorithm": "random",
            "num_trials": 4,
            "objective": {"metric": "reward", "mode": "max"},
        }))
        .unwrap();
        let controller = GroupController::new(queue.clone(), GroupSettings::default());
        let trials = [ids[0].clone(), ids[1].clone(), gone, ids[2].clone()];
        let followed = controller.follow_trials(&spec, &trials).await.unwrap();
        let summary: Vec<_> = followed
            .iter()
            .map(|(job, points)| (job.as_ref().map(|j| j.state), points.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (Some(JobState::Queued), vec![(1, 1.0), (2, 2.5)]),
                (Some(JobState::Queued), vec![]),
                (None, vec![]),
                (Some(JobState::Cancelled), vec![(5, 7.0)]),
            ]
        );
        // The ended trial is kept: later points (none can come) are not read.
        queue
            .record_metrics(&ids[2], &[point("reward", 8.0, 6)])
            .await
            .unwrap();
        queue
            .record_metrics(&ids[1], &[point("reward", 0.5, 1)])
            .await
            .unwrap();
        let again = controller.follow_trials(&spec, &trials).await.unwrap();
        assert_eq!(again[3].1, vec![(5, 7.0)]);
        assert_eq!(again[1].1, vec![(1, 0.5)], "a running trial is read again");
        assert!(controller
            .follow_trials(&spec, &[])
            .await
            .unwrap()
            .is_empty());
    }
}
