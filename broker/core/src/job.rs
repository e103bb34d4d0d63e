//! A job as the broker stores and reports it: its spec, owner, state, attempts
//! and the recorded reason of every state change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::failure::FailureClass;
use crate::spec::JobSpec;
use crate::state::JobState;

/// A job's id: a ULID, so ids sort by creation time.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, example = "01JDQ3ZK8V6X9T2M4N5P7R8S9A")]
pub struct JobId(String);

/// Not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a job id (expected a 26-character ULID)")]
pub struct BadJobId(pub String);

impl JobId {
    /// A fresh id for a job created at `now_ms`.
    pub fn generate(now_ms: u64) -> JobId {
        let ulid = ulid::Ulid::from_parts(now_ms, rand_bits());
        JobId(ulid.to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 80 random bits for a ULID, from the OS via a fresh ULID (keeps the core free of a rand dependency).
fn rand_bits() -> u128 {
    ulid::Ulid::new().random()
}

impl FromStr for JobId {
    type Err = BadJobId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s)
            .map(|u| JobId(u.to_string()))
            .map_err(|_| BadJobId(s.to_string()))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant (research group) name: lower-case letters, digits, `-` and `_`.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "robotics")]
pub struct TenantId(String);

/// Not a tenant name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a tenant name: use 1-64 lower-case letters, digits, '-' or '_'")]
pub struct BadTenantId(pub String);

impl TenantId {
    /// Checks a tenant name.
    pub fn new(name: &str) -> Result<TenantId, BadTenantId> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(TenantId(name.to_string()))
        } else {
            Err(BadTenantId(name.to_string()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = BadTenantId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TenantId::new(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One recorded state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transition {
    /// The state before (absent for the creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<JobState>,
    /// The state after.
    pub to: JobState,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The attempt this change belongs to (0 before the first dispatch).
    pub attempt: u32,
    /// Why, in words.
    pub reason: String,
}

/// One try at running the job on a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first try, 2 for the first retry, ...
    pub number: u32,
    /// The cluster it was sent to.
    pub cluster: String,
    /// The id the cluster knows it by, chosen by the broker before submitting.
    pub submission_id: String,
    /// When the broker recorded it, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When the cluster accepted it; absent while the submit is unconfirmed
    /// (after a crash, the dispatcher re-sends the same submission id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at_ms: Option<u64>,
}

impl Attempt {
    /// The id an attempt is submitted under: deterministic, so a replayed submit
    /// after a crash is recognised by the cluster as the same one.
    pub fn submission_id(job: &JobId, number: u32) -> String {
        format!("rb-{}-{}", job.as_str().to_ascii_lowercase(), number)
    }
}

/// A job as stored and reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The owning tenant, from the submitter's token.
    pub tenant: TenantId,
    /// The name shown to people.
    pub name: String,
    /// Where the job is in its life.
    pub state: JobState,
    /// Why it is in that state.
    pub reason: String,
    /// The current attempt (0 until first dispatched).
    pub attempt: u32,
    /// The cluster of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A cancel was asked for and is being carried to the cluster.
    pub cancel_requested: bool,
    /// The exit code of the entrypoint, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the latest attempt failed (absent while none has, and once the
    /// job succeeded); a cancelled job's class is `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureClass>,
    /// Where and when the next attempt may go after a failed one.
    #[serde(default, skip_serializing_if = "Failover::is_empty")]
    pub failover: Failover,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// What was submitted.
    pub spec: JobSpec,
    /// Every try so far.
    pub attempts: Vec<Attempt>,
    /// Every state change, oldest first.
    pub history: Vec<Transition>,
}

/// The retry state a failed attempt leaves for the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failover {
    /// Clusters earlier attempts failed on that the next one avoids while
    /// another cluster can run it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_clusters: Vec<String>,
    /// The next attempt starts no earlier (the retry's backoff), ms since
    /// the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
}

impl Failover {
    /// True when nothing holds the next attempt back.
    pub fn is_empty(&self) -> bool {
        self.excluded_clusters.is_empty() && self.not_before_ms.is_none()
    }
}

/// A state change as published on the event stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    /// The stream position; pass it back to resume after this event.
    pub cursor: String,
    /// The job.
    pub job_id: JobId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The change.
    #[serde(flatten)]
    pub transition: Transition,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let a = JobId::generate(1_700_000_000_000);
        let b = JobId::generate(1_700_000_000_001);
        assert!(a < b);
        assert_eq!(a.as_str().parse::<JobId>().unwrap(), a);
        assert!("not-an-id".parse::<JobId>().is_err());
    }

    #[test]
    fn tenant_names_are_checked() {
        assert!(TenantId::new("robotics-lab_2").is_ok());
        assert!(TenantId::new("Robotics").is_err());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("a:b").is_err());
        assert!(serde_json::from_str::<TenantId>("\"UPPER\"").is_err());
    }

    #[test]
    fn jobs_stored_before_failure_classes_still_read() {
        let id = JobId::generate(1);
        let old = serde_json::json!({
            "id": id, "tenant": "robotics", "name": "x", "state": "failed",
            "reason": "lost", "attempt": 1, "cancel_requested": false,
            "created_at_ms": 1, "updated_at_ms": 2, "spec": {"entrypoint": "x"},
            "attempts": [], "history": []
        });
        let job: Job = serde_json::from_value(old).unwrap();
        assert_eq!(job.failure, None);
        assert!(job.failover.is_empty());
    }

    #[test]
    fn submission_ids_are_deterministic() {
        let id: JobId = "01JDQ3ZK8V6X9T2M4N5P7R8S9A".parse().unwrap();
        assert_eq!(
            Attempt::submission_id(&id, 2),
            "rb-01jdq3zk8v6x9t2m4n5p7r8s9a-2"
        );
    }
}
