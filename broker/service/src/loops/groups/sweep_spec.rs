//! A sweep as submitted, its checks, the job of each trial, and the record
//! of a trial the controller keeps in Redis.

use std::collections::BTreeMap;

use raybroker_core::group::{member_spec, GroupId, MAX_MEMBERS};
use raybroker_core::{FieldError, JobSpec, JobState};
use raybroker_tuning::{
    env_vars, grid_size, hydra_overrides, render_entrypoint, shell_join, suggest, trial_seed,
    Algorithm, Asha, Mode, ParamValue, Params, SearchSpace,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The job label carrying a trial's index in its sweep.
pub const TRIAL_LABEL: &str = "raybroker.trial";
/// Env var every trial gets: its seed ([`trial_seed`]).
pub const SEED_ENV: &str = "RAYBROKER_TRIAL_SEED";
/// Env var every trial gets: its index in the sweep.
pub const TRIAL_ENV: &str = "RAYBROKER_TRIAL";

/// A sweep as submitted (JSON or YAML).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// A human name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The job every trial runs: a job spec whose entrypoint may hold
    /// `{{param}}` placeholders (and `{{seed}}`, the trial's seed).
    #[schema(value_type = Object)]
    pub template: Value,
    /// Parameter name to distribution: `{loguniform: [1e-5, 1e-2]}`,
    /// `{uniform: [a, b]}`, `{int: [a, b]}`, `{choice: [...]}`, `{grid: [...]}`.
    #[schema(value_type = Object)]
    pub search_space: SearchSpace,
    /// `grid`, `random` or `tpe` (default).
    #[serde(default)]
    #[schema(value_type = String, example = "tpe")]
    pub algorithm: Algorithm,
    /// Seeds the search and every trial's seed.
    #[serde(default)]
    pub seed: u64,
    /// The metric to optimise and its direction.
    pub objective: Objective,
    /// Parameter sets to try (grid: default and most, the grid's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_trials: Option<u32>,
    /// Most trials unfinished at once, across all clusters.
    #[serde(default = "one")]
    pub max_concurrent_trials: u32,
    /// Runs of each parameter set, each with its own seed.
    #[serde(default = "one")]
    pub repeats: u32,
    /// How parameters reach the job besides entrypoint placeholders.
    #[serde(default)]
    pub pass_params: PassParams,
    /// Asynchronous successive halving: stop trials that fall behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub early_stopping: Option<Asha>,
}

fn one() -> u32 {
    1
}

/// The metric a sweep optimises.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The metric's name as the job reports it (`RAYBROKER_METRICS {"reward": ...}`).
    pub metric: String,
    /// `max` (default) or `min`.
    #[serde(default)]
    #[schema(value_type = String, example = "max")]
    pub mode: Mode,
}

/// Ways parameters reach a trial besides `{{name}}` placeholders.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PassParams {
    /// Append Hydra overrides `key=value` to the entrypoint.
    #[serde(default)]
    pub hydra: bool,
    /// Hydra key of a parameter, e.g. `lr: agent.params.config.learning_rate`
    /// (default: the parameter's name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hydra_keys: BTreeMap<String, String>,
    /// Set one env var per parameter (`lr` -> `LR`).
    #[serde(default)]
    pub env: bool,
}

impl SweepSpec {
    /// Parameter sets the sweep tries.
    pub fn configurations(&self) -> u32 {
        let grid = u32::try_from(grid_size(&self.search_space)).unwrap_or(u32::MAX);
        match (self.algorithm, self.num_trials) {
            (Algorithm::Grid, Some(n)) => n.min(grid),
            (Algorithm::Grid, None) => grid,
            (_, n) => n.unwrap_or(0),
        }
    }

    /// The seed of run `repeat` of parameter set `config`, below 2^63 so
    /// every language reads it as a plain integer.
    pub fn trial_seed(&self, config: u32, repeat: u32) -> u64 {
        trial_seed(self.seed, config, repeat) >> 1
    }

    /// Trials in all: every configuration times its repeats.
    pub fn total_trials(&self) -> usize {
        self.configurations() as usize * self.repeats.max(1) as usize
    }

    /// Checks the sweep's own fields and builds the job of a sample trial,
    /// which the caller validates against the deployment. Errors name fields.
    pub fn check(&self) -> Result<JobSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: String| errors.push(FieldError::new(field, message));
        if self.name.len() > 200 {
            bad("name", "at most 200 characters".into());
        }
        if let Err(err) = self.search_space.validate() {
            bad(&format!("search_space.{}", err.param), err.reason);
        }
        let metric = &self.objective.metric;
        if metric.trim().is_empty() || metric.len() > 128 {
            bad(
                "objective.metric",
                "name the metric the job reports, e.g. reward".into(),
            );
        }
        match (self.algorithm, self.num_trials) {
            (Algorithm::Grid, _) if grid_size(&self.search_space) > MAX_MEMBERS as u64 => bad(
                "search_space",
                format!("the grid has more than {MAX_MEMBERS} points"),
            ),
            (Algorithm::Random | Algorithm::Tpe, None) => bad(
                "num_trials",
                "required for random and tpe sweeps (how many parameter sets to try)".into(),
            ),
            (_, Some(0)) => bad("num_trials", "must be at least 1".into()),
            _ => {}
        }
        if self.max_concurrent_trials == 0 || self.max_concurrent_trials > 10_000 {
            bad("max_concurrent_trials", "must be from 1 to 10000".into());
        }
        if self.repeats == 0 || self.repeats > 100 {
            bad("repeats", "must be from 1 to 100".into());
        } else if self.total_trials() > MAX_MEMBERS {
            bad(
                "num_trials",
                format!("num_trials x repeats must be at most {MAX_MEMBERS}"),
            );
        }
        if let Some(asha) = &self.early_stopping {
            if let Err(err) = asha.validate() {
                let text = err.to_string();
                let field = text
                    .split_whitespace()
                    .next()
                    .and_then(|f| f.strip_prefix("asha."))
                    .map_or("early_stopping".to_string(), |f| {
                        format!("early_stopping.{f}")
                    });
                bad(&field, text);
            }
        }
        if !self.template.is_object() {
            bad("template", "must be a job spec (a mapping)".into());
        }
        for (name, key) in &self.pass_params.hydra_keys {
            if self.search_space.get(name).is_none() {
                bad(
                    &format!("pass_params.hydra_keys.{name}"),
                    format!("no parameter '{name}' in search_space (its key was {key})"),
                );
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let sample = suggest(
            Algorithm::Random,
            &self.search_space,
            self.seed,
            0,
            &[],
            self.objective.mode,
        )
        .unwrap_or_default();
        self.trial_job(&GroupId::generate(0), 0, 0, 0, &sample)
            .map_err(|err| vec![err])
    }

    /// The job of trial `index` (parameter set `config`, run `repeat`):
    /// placeholders rendered, Hydra overrides and env vars added as asked,
    /// the trial's seed in `{{seed}}` and [`SEED_ENV`]. Errors name the
    /// template's field.
    pub fn trial_job(
        &self,
        sweep: &GroupId,
        index: usize,
        config: u32,
        repeat: u32,
        params: &Params,
    ) -> Result<JobSpec, FieldError> {
        let seed = self.trial_seed(config, repeat);
        let mut render = params.clone();
        render
            .entry("seed".to_string())
            .or_insert(ParamValue::Int(seed as i64));
        let mut job = self.template.clone();
        let Some(fields) = job.as_object_mut() else {
            return Err(FieldError::new(
                "template",
                "must be a job spec (a mapping)",
            ));
        };
        let template = fields
            .get("entrypoint")
            .and_then(Value::as_str)
            .ok_or_else(|| FieldError::new("template.entrypoint", "a string is required"))?;
        let mut entrypoint = render_entrypoint(template, &render)
            .map_err(|e| FieldError::new("template.entrypoint", e.to_string()))?;
        if self.pass_params.hydra && !params.is_empty() {
            let overrides = hydra_overrides(params, &self.pass_params.hydra_keys);
            entrypoint = format!("{entrypoint} {}", shell_join(&overrides));
        }
        fields.insert("entrypoint".into(), Value::String(entrypoint));
        if fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            let base = if self.name.is_empty() {
                "sweep"
            } else {
                &self.name
            };
            fields.insert("name".into(), Value::String(format!("{base}-t{index}")));
        }
        let mut env = BTreeMap::new();
        if self.pass_params.env {
            env.extend(env_vars(params));
        }
        env.insert(SEED_ENV.to_string(), seed.to_string());
        env.insert(TRIAL_ENV.to_string(), index.to_string());
        let runtime_env = fields
            .entry("runtime_env")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(runtime_env) = runtime_env.as_object_mut() {
            let vars = runtime_env
                .entry("env_vars")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(vars) = vars.as_object_mut() {
                for (key, value) in env {
                    vars.insert(key, Value::String(value));
                }
            }
        }
        let labels = fields
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(TRIAL_LABEL.into(), Value::String(index.to_string()));
        }
        let _ = sweep;
        member_spec(job, "template")
    }
}

/// Where a trial is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Decided, its job not seen yet.
    Created,
    /// Its job waits in the broker's queue.
    Queued,
    /// Its job is on a cluster.
    Running,
    /// Its job succeeded.
    Succeeded,
    /// Its job failed.
    Failed,
    /// Its job was cancelled (by a user, or with the sweep).
    Cancelled,
    /// Stopped by early stopping (ASHA): not a failure.
    StoppedEarly,
}

impl TrialState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TrialState::Created => "created",
            TrialState::Queued => "queued",
            TrialState::Running => "running",
            TrialState::Succeeded => "succeeded",
            TrialState::Failed => "failed",
            TrialState::Cancelled => "cancelled",
            TrialState::StoppedEarly => "stopped_early",
        }
    }

    /// True once the trial's outcome is known.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            TrialState::Succeeded
                | TrialState::Failed
                | TrialState::Cancelled
                | TrialState::StoppedEarly
        )
    }

    /// The trial state a job state means.
    pub fn of_job(state: JobState) -> TrialState {
        match state {
            JobState::Queued | JobState::Dispatching => TrialState::Queued,
            JobState::Submitted | JobState::Running => TrialState::Running,
            JobState::Succeeded => TrialState::Succeeded,
            JobState::Failed => TrialState::Failed,
            JobState::Cancelled => TrialState::Cancelled,
        }
    }
}

/// One trial as the controller records it (`t:<index>` of the sweep's hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trial {
    /// Its index in the sweep.
    pub index: usize,
    /// Its parameter set (trials `config * repeats ..` share one).
    pub config: u32,
    /// Which run of the parameter set (0-based).
    pub repeat: u32,
    /// Its seed.
    pub seed: u64,
    /// Its parameters.
    #[schema(value_type = Object)]
    pub params: Params,
    /// Where it is.
    pub state: TrialState,
    /// Its objective: the last value of the objective metric it reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
    /// The step of that value, when the job gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// Values of the objective reported so far.
    #[serde(default)]
    pub reports: usize,
    /// ASHA rung (in steps) where it was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at_rung: Option<u64>,
    /// Why it is in its state.
    #[serde(default)]
    pub reason: String,
    /// The cluster its job ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}
