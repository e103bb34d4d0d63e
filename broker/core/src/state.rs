//! The job lifecycle as an explicit state machine.
//!
//! ```text
//! queued -> dispatching -> submitted -> running -> succeeded | failed | cancelled
//!    ^           |              |           |
//!    +-----------+--------------+-----------+   (lease lost, or a retry: a new attempt)
//! ```
//! Every state before a terminal one can also go to `cancelled` or `failed`.
//! The Redis scripts enforce this same table (it is rendered into them from
//! [`JobState::allowed_next`]), so the queue and the code cannot disagree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting in its tenant's queue.
    Queued,
    /// Leased by a dispatcher that is choosing a cluster and submitting it.
    Dispatching,
    /// Accepted by a cluster, not started yet (pending there).
    Submitted,
    /// Running on a cluster.
    Running,
    /// Finished with success.
    Succeeded,
    /// Finished with failure and no retries left.
    Failed,
    /// Cancelled by a user or an admin.
    Cancelled,
}

/// A refused state change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} job cannot become {to}")]
pub struct TransitionError {
    /// The state the job is in.
    pub from: JobState,
    /// The state that was asked for.
    pub to: JobState,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Dispatching,
        JobState::Submitted,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The wire name (`queued`, `running`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Dispatching => "dispatching",
            JobState::Submitted => "submitted",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// True once the job can never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// True while a cluster may hold the job (a cancel must reach it there).
    pub const fn is_on_cluster(self) -> bool {
        matches!(self, JobState::Submitted | JobState::Running)
    }

    /// The states this one may move to.
    pub const fn allowed_next(self) -> &'static [JobState] {
        use JobState::*;
        match self {
            Queued => &[Dispatching, Failed, Cancelled],
            Dispatching => &[Queued, Submitted, Failed, Cancelled],
            Submitted => &[Queued, Running, Succeeded, Failed, Cancelled],
            Running => &[Queued, Succeeded, Failed, Cancelled],
            Succeeded | Failed | Cancelled => &[],
        }
    }

    /// Checks one state change against the table.
    pub fn check(self, to: JobState) -> Result<(), TransitionError> {
        if self.allowed_next().contains(&to) {
            Ok(())
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown state name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state '{0}'; expected one of queued, dispatching, submitted, running, succeeded, failed, cancelled")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_final() {
        for state in JobState::ALL {
            assert_eq!(
                state.is_terminal(),
                state.allowed_next().is_empty(),
                "{state}"
            );
        }
    }

    #[test]
    fn happy_path_is_allowed() {
        use JobState::*;
        let path = [Queued, Dispatching, Submitted, Running, Succeeded];
        for pair in path.windows(2) {
            assert_eq!(pair[0].check(pair[1]), Ok(()));
        }
    }

    #[test]
    fn illegal_changes_are_refused() {
        use JobState::*;
        assert!(Queued.check(Running).is_err());
        assert!(Succeeded.check(Queued).is_err());
        assert!(Cancelled.check(Running).is_err());
        assert_eq!(
            Failed.check(Running).unwrap_err().to_string(),
            "a failed job cannot become running"
        );
    }

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert!("done".parse::<JobState>().is_err());
    }
}
