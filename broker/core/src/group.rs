//! Job groups: many jobs submitted as one, run in parallel (at most
//! `max_concurrency` at a time, across all clusters) or in series (the next
//! starts when the previous succeeded). Sweeps are groups whose members a
//! search algorithm generates; their spec lives with the service, which owns
//! the search crate.
//!
//! Everything here is pure: the group controller loop reads the members'
//! states, asks [`plan`] what to do, and acts on the answer. Member `i` of
//! group `g` is always submitted under [`member_idempotency_key`]`(g, i)`, so
//! a replay after a crash finds the job it created before.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::BadJobId;
use crate::spec::JobSpec;
use crate::state::JobState;
use crate::validate::FieldError;

/// The job label that names the group a job belongs to; results are
/// aggregated by it.
pub const GROUP_LABEL: &str = "raybroker.group";

/// Most members one group may have.
pub const MAX_MEMBERS: usize = 10_000;

/// A group's (or sweep's) id: a ULID, so ids sort by creation time.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, example = "01JDQ3ZK8V6X9T2M4N5P7R8S9A")]
pub struct GroupId(String);

impl GroupId {
    /// A fresh id for a group created at `now_ms`.
    pub fn generate(now_ms: u64) -> GroupId {
        let ulid = ulid::Ulid::from_parts(now_ms, ulid::Ulid::new().random());
        GroupId(ulid.to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GroupId {
    type Err = BadJobId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s)
            .map(|u| GroupId(u.to_string()))
            .map_err(|_| BadJobId(s.to_string()))
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The idempotency key member `index` of `group` is submitted under: the
/// same on every replay, so a crash between the submit and recording the
/// member never creates a second job.
pub fn member_idempotency_key(group: &GroupId, index: usize) -> String {
    format!(
        "raybroker-group-{}-{index}",
        group.as_str().to_ascii_lowercase()
    )
}

/// How a group's members run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// All at once, at most `max_concurrency` unfinished at any time.
    #[default]
    Parallel,
    /// One after the other, in the order given.
    Series,
}

/// What a series group does when a member fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop: the rest never start and the group fails.
    #[default]
    Stop,
    /// Go on with the next member.
    Continue,
}

/// A group as submitted (JSON or YAML).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// A human name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `parallel` (default) or `series`.
    #[serde(default)]
    pub mode: GroupMode,
    /// Parallel groups: most members unfinished at once, across all clusters
    /// (default: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Series groups: `stop` (default) or `continue` after a failed member.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Fields every member starts from (a job spec, possibly partial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub template: Option<Value>,
    /// The members: whole job specs, or overrides merged into `template`
    /// (mappings merge key by key, anything else replaces).
    #[schema(value_type = Vec<Object>)]
    pub jobs: Vec<Value>,
}

impl GroupSpec {
    /// Reads a JSON or YAML document, naming the offending field on error.
    pub fn parse(body: &[u8], yaml: bool) -> Result<GroupSpec, FieldError> {
        parse_document(body, yaml)
    }

    /// Checks the group's own fields and builds every member's job spec
    /// (template merged with the member's overrides); errors name fields
    /// such as `jobs[2].resources.gpus`. The members still need
    /// [`crate::validate`] against the deployment.
    pub fn members(&self) -> Result<Vec<JobSpec>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.jobs.is_empty() {
            errors.push(FieldError::new("jobs", "a group needs at least one job"));
        }
        if self.jobs.len() > MAX_MEMBERS {
            errors.push(FieldError::new(
                "jobs",
                format!("at most {MAX_MEMBERS} jobs per group"),
            ));
        }
        if self.name.len() > 200 {
            errors.push(FieldError::new("name", "at most 200 characters"));
        }
        match (self.mode, self.max_concurrency) {
            (GroupMode::Parallel, Some(0)) => errors.push(FieldError::new(
                "max_concurrency",
                "must be at least 1 (leave it out for no limit)",
            )),
            (GroupMode::Series, Some(_)) => errors.push(FieldError::new(
                "max_concurrency",
                "only parallel groups take it: a series group runs one job at a time",
            )),
            _ => {}
        }
        if self.mode == GroupMode::Parallel && self.on_failure != OnFailure::Stop {
            errors.push(FieldError::new(
                "on_failure",
                "only series groups take it: parallel members run independently",
            ));
        }
        if let Some(template) = &self.template {
            if !template.is_object() {
                errors.push(FieldError::new(
                    "template",
                    "must be a mapping of job fields",
                ));
            }
        }
        let mut specs = Vec::with_capacity(self.jobs.len());
        for (i, overrides) in self.jobs.iter().enumerate() {
            let mut merged = self.template.clone().unwrap_or(Value::Null);
            merge(&mut merged, overrides);
            match member_spec(merged, &format!("jobs[{i}]")) {
                Ok(spec) => specs.push(spec),
                Err(err) => errors.push(err),
            }
        }
        if errors.is_empty() {
            Ok(specs)
        } else {
            Err(errors)
        }
    }

    /// Most members that may be unfinished at once.
    pub fn concurrency(&self) -> usize {
        match self.mode {
            GroupMode::Series => 1,
            GroupMode::Parallel => self
                .max_concurrency
                .map_or(usize::MAX, |n| n.max(1) as usize),
        }
    }
}

/// Reads a JSON or YAML document into `T`, naming the offending field.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    body: &[u8],
    yaml: bool,
) -> Result<T, FieldError> {
    let named = |path: String, message: String| {
        let path = if path == "." { String::new() } else { path };
        FieldError::new(path, message)
    };
    if yaml {
        let text = std::str::from_utf8(body)
            .map_err(|_| FieldError::new("", "the YAML document is not UTF-8"))?;
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de)
            .map_err(|err| named(err.path().to_string(), err.into_inner().to_string()))
    } else {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = inner.to_string();
            let message = match message.rfind(" at line ") {
                Some(at) => message[..at].to_string(),
                None => message,
            };
            if inner.is_syntax() || inner.is_eof() {
                FieldError::new("", format!("malformed JSON: {message}"))
            } else {
                named(path, message)
            }
        })
    }
}

/// A member's job spec from its merged document; errors are prefixed with
/// `at` (e.g. `jobs[3]`). The group owns the member's idempotency key.
pub fn member_spec(merged: Value, at: &str) -> Result<JobSpec, FieldError> {
    if merged.get("idempotency_key").is_some() {
        return Err(FieldError::new(
            format!("{at}.idempotency_key"),
            "members of a group get their idempotency key from the group; remove it",
        ));
    }
    let text = serde_json::to_vec(&merged)
        .map_err(|e| FieldError::new(at, format!("cannot be read: {e}")))?;
    JobSpec::from_json(&text).map_err(|err| {
        let err = err.0;
        let field = match (err.field.as_str(), unknown_or_missing(&err.message)) {
            ("", Some(name)) => format!("{at}.{name}"),
            ("", None) => at.to_string(),
            (path, _) => format!("{at}.{path}"),
        };
        FieldError::new(field, err.message)
    })
}

/// The field serde names in "unknown field `x`" or "missing field `x`".
fn unknown_or_missing(message: &str) -> Option<&str> {
    ["unknown field `", "missing field `"]
        .iter()
        .find_map(|marker| {
            let start = message.find(marker)? + marker.len();
            let len = message[start..].find('`')?;
            Some(&message[start..start + len])
        })
}

/// Merges `overrides` into `base`: mappings merge key by key (a `null`
/// removes the key), anything else replaces.
pub fn merge(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(key);
                } else {
                    merge(base.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// Where a group is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// Members are running or waiting to be released.
    Running,
    /// Every member ran and succeeded (a sweep: every trial ended).
    Succeeded,
    /// A member failed (parallel, or series with `continue`), or a series
    /// group stopped at its first failure.
    Failed,
    /// Cancelled by a user; unfinished members were cancelled.
    Cancelled,
}

impl GroupState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupState::Running => "running",
            GroupState::Succeeded => "succeeded",
            GroupState::Failed => "failed",
            GroupState::Cancelled => "cancelled",
        }
    }

    /// True once the group can never change again.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, GroupState::Running)
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            GroupState::Running,
            GroupState::Succeeded,
            GroupState::Failed,
            GroupState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| {
            format!("unknown group state '{s}'; expected running, succeeded, failed or cancelled")
        })
    }
}

/// What the controller should do next with a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    /// Members to submit now, by index (in order).
    pub release: Vec<usize>,
    /// The group is over: its final state and why.
    pub finish: Option<(GroupState, String)>,
}

/// Decides which members to release and whether the group is over, from the
/// state of each member (`None`: not released yet). Members are released in
/// order; a parallel group keeps at most `concurrency` released members
/// unfinished; a series group releases member `i + 1` only once member `i`
/// succeeded (or, with `continue`, ended in any way).
pub fn plan(spec: &GroupSpec, members: &[Option<JobState>]) -> GroupPlan {
    let unfinished = members
        .iter()
        .filter(|s| s.is_some_and(|s| !s.is_terminal()))
        .count();
    let released = members.iter().take_while(|s| s.is_some()).count();
    let bad = |s: &Option<JobState>| matches!(s, Some(JobState::Failed | JobState::Cancelled));
    if spec.mode == GroupMode::Series && spec.on_failure == OnFailure::Stop {
        if let Some(at) = members.iter().position(bad) {
            let finish = (unfinished == 0).then(|| {
                let skipped = members.len() - released;
                (
                    GroupState::Failed,
                    format!("stopped at the first failure: job {at} did not succeed; {skipped} never started"),
                )
            });
            return GroupPlan {
                release: Vec::new(),
                finish,
            };
        }
    }
    if released == members.len() {
        if unfinished > 0 {
            return GroupPlan {
                release: Vec::new(),
                finish: None,
            };
        }
        let failed = members.iter().filter(|s| bad(s)).count();
        let finish = if failed == 0 {
            (
                GroupState::Succeeded,
                format!("all {} jobs succeeded", members.len()),
            )
        } else {
            (
                GroupState::Failed,
                format!("{failed} of {} jobs did not succeed", members.len()),
            )
        };
        return GroupPlan {
            release: Vec::new(),
            finish: Some(finish),
        };
    }
    let room = spec.concurrency().saturating_sub(unfinished);
    GroupPlan {
        release: (released..members.len()).take(room).collect(),
        finish: None,
    }
}

#[cfg(test)]
mod tests;
