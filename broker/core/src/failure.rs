//! Why an attempt ended badly, as one closed set of classes. The retry policy
//! (how often, how long to wait, whether to leave the cluster) is chosen by
//! class, so every adapter maps its backend's own words onto these.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The class of a failed or stopped attempt.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The job's own error: its entrypoint exited non-zero.
    JobError,
    /// The cluster could not be reached, or no longer knows the attempt.
    ClusterUnreachable,
    /// A node the attempt ran on was lost.
    NodeLost,
    /// The backend preempted the attempt for other work.
    Preempted,
    /// The attempt ran out of memory.
    OutOfMemory,
    /// The attempt did not start in time on the cluster.
    StartTimeout,
    /// The cluster has no capacity for the attempt.
    NoCapacity,
    /// The attempt ran past the job's time limit.
    TimeLimit,
    /// A user cancelled the job.
    Cancelled,
}

impl FailureClass {
    /// Every class, in a fixed order (metric labels, docs, tests).
    pub const ALL: [FailureClass; 9] = [
        FailureClass::JobError,
        FailureClass::ClusterUnreachable,
        FailureClass::NodeLost,
        FailureClass::Preempted,
        FailureClass::OutOfMemory,
        FailureClass::StartTimeout,
        FailureClass::NoCapacity,
        FailureClass::TimeLimit,
        FailureClass::Cancelled,
    ];

    /// The class's name as written in config, the API and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::JobError => "job_error",
            FailureClass::ClusterUnreachable => "cluster_unreachable",
            FailureClass::NodeLost => "node_lost",
            FailureClass::Preempted => "preempted",
            FailureClass::OutOfMemory => "out_of_memory",
            FailureClass::StartTimeout => "start_timeout",
            FailureClass::NoCapacity => "no_capacity",
            FailureClass::TimeLimit => "time_limit",
            FailureClass::Cancelled => "cancelled",
        }
    }

    /// True for failures of the infrastructure rather than of the job or its
    /// owner: retrying elsewhere may well succeed.
    pub fn is_infrastructure(self) -> bool {
        matches!(
            self,
            FailureClass::ClusterUnreachable
                | FailureClass::NodeLost
                | FailureClass::Preempted
                | FailureClass::OutOfMemory
                | FailureClass::StartTimeout
                | FailureClass::NoCapacity
        )
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for class in FailureClass::ALL {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            let back: FailureClass = serde_json::from_str(&json).unwrap();
            assert_eq!(back, class);
        }
    }

    #[test]
    fn only_cluster_side_failures_are_infrastructure() {
        let infra: Vec<_> = FailureClass::ALL
            .into_iter()
            .filter(|c| c.is_infrastructure())
            .collect();
        assert!(!infra.contains(&FailureClass::JobError));
        assert!(!infra.contains(&FailureClass::Cancelled));
        assert!(!infra.contains(&FailureClass::TimeLimit));
        assert!(infra.contains(&FailureClass::NodeLost));
        assert_eq!(infra.len(), 6);
    }
}
