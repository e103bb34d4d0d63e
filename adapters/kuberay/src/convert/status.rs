//! A RayJob's state: KubeRay reports two fields, `jobDeploymentStatus` (where
//! the RayJob's own machinery is: cluster coming up, job submitted, finished,
//! suspended) and `jobStatus` (Ray's state of the job itself). The broker's
//! state comes from both: a job is final only when the deployment says so or
//! Ray does, and a failed deployment's `reason` says why it failed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use raybroker_adapter::{AdapterError, ErrorKind, RemoteState, RemoteStatus};
use raybroker_core::FailureClass;
use serde::Deserialize;

/// The fields of `status` the adapter reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RayJobStatus {
    /// Ray's job state: PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED (empty before submit).
    #[serde(default)]
    pub job_status: String,
    /// KubeRay's deployment state (New, Initializing, Running, Complete, Failed,
    /// Suspending, Suspended, Retrying, Waiting, ...).
    #[serde(default)]
    pub job_deployment_status: String,
    /// Why the deployment failed (`DeadlineExceeded`, `AppFailed`, `SubmissionFailed`, ...).
    #[serde(default)]
    pub reason: String,
    /// KubeRay's words.
    #[serde(default)]
    pub message: String,
    /// The RayCluster the job runs on.
    #[serde(default)]
    pub ray_cluster_name: String,
    /// When KubeRay started working on the job.
    #[serde(default)]
    pub start_time: Option<Time>,
    /// When the job ended.
    #[serde(default)]
    pub end_time: Option<Time>,
}

/// Ray's job states, as KubeRay copies them into `jobStatus`.
pub const STATE_TABLE: &[(&str, RemoteState)] = &[
    ("", RemoteState::Pending),
    ("PENDING", RemoteState::Pending),
    ("RUNNING", RemoteState::Running),
    ("SUCCEEDED", RemoteState::Succeeded),
    ("FAILED", RemoteState::Failed),
    ("STOPPED", RemoteState::Stopped),
];

/// The broker's state from both fields; `None` for a combination this
/// adapter does not know (a newer KubeRay).
pub fn remote_state(status: &RayJobStatus) -> Option<RemoteState> {
    let job = STATE_TABLE
        .iter()
        .find(|(name, _)| *name == status.job_status)
        .map(|(_, state)| *state)?;
    Some(match status.job_deployment_status.as_str() {
        // Still being set up, or set up again after a failed try.
        "" | "New" | "Initializing" | "Waiting" | "Retrying" => {
            if job.is_final() || job == RemoteState::Running {
                // A new try runs on a fresh cluster; the old job's state is stale.
                RemoteState::Pending
            } else {
                job
            }
        }
        "Running" => job,
        // KubeRay writes Complete for every terminal job state.
        "Complete" => match job {
            RemoteState::Pending | RemoteState::Running => RemoteState::Succeeded,
            final_state => final_state,
        },
        "Failed" => RemoteState::Failed,
        // Stopping on request: not final until KubeRay has torn it down.
        "Suspending" => RemoteState::Running,
        "Suspended" => RemoteState::Stopped,
        _ => return None,
    })
}

/// Why a failed or stopped RayJob ended. A stopped one is cancelled only when
/// the broker cancelled it (its record is on the RayJob, see [`super::cancel`]);
/// one stopped or suspended by someone else gets no class here, as a Ray job
/// stopped behind the broker's back does in the Ray adapter.
fn failure_class(
    state: RemoteState,
    status: &RayJobStatus,
    cancelled_by_broker: bool,
) -> Option<FailureClass> {
    match state {
        RemoteState::Stopped => cancelled_by_broker.then_some(FailureClass::Cancelled),
        RemoteState::Failed => Some(match status.reason.as_str() {
            "DeadlineExceeded" => FailureClass::TimeLimit,
            // The submitter or cluster never got the job going.
            "SubmissionFailed" | "JobDeploymentStatusTransitionGracePeriodExceeded" => {
                FailureClass::StartTimeout
            }
            _ => FailureClass::JobError,
        }),
        _ => None,
    }
}

fn ms(time: &Option<Time>) -> Option<u64> {
    let millis = time.as_ref()?.0.as_millisecond();
    u64::try_from(millis).ok().filter(|ms| *ms > 0)
}

/// A RayJob's status as the contract reports it; `cancelled_by_broker` says
/// whether the RayJob carries the broker's cancel record. KubeRay does not
/// report the entrypoint's exit code, so `exit_code` is always `None`.
pub fn remote_status(
    status: &RayJobStatus,
    cancelled_by_broker: bool,
) -> Result<RemoteStatus, AdapterError> {
    let state = remote_state(status).ok_or_else(|| {
        AdapterError::new(
            ErrorKind::Internal,
            format!(
                "KubeRay reported jobStatus '{}' with jobDeploymentStatus '{}', \
                 which this adapter does not know",
                status.job_status, status.job_deployment_status
            ),
        )
    })?;
    let mut message = format!(
        "deployment {}, job {}",
        or_dash(&status.job_deployment_status),
        or_dash(&status.job_status)
    );
    if !status.reason.is_empty() {
        message.push_str(&format!(" ({})", status.reason));
    }
    if !status.message.is_empty() {
        message.push_str(": ");
        message.push_str(&status.message);
    }
    Ok(RemoteStatus {
        state,
        message,
        exit_code: None,
        started_at_ms: if state == RemoteState::Pending {
            None
        } else {
            ms(&status.start_time)
        },
        ended_at_ms: if state.is_final() {
            ms(&status.end_time)
        } else {
            None
        },
        failure: failure_class(state, status, cancelled_by_broker),
    })
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() {
        "-"
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(deployment: &str, job: &str, reason: &str) -> RayJobStatus {
        RayJobStatus {
            job_status: job.into(),
            job_deployment_status: deployment.into(),
            reason: reason.into(),
            ..RayJobStatus::default()
        }
    }

    #[test]
    fn both_fields_decide_the_state() {
        use RemoteState::*;
        let cases = [
            ("", "", Pending),
            ("Initializing", "", Pending),
            ("Running", "PENDING", Pending),
            ("Running", "RUNNING", Running),
            ("Running", "SUCCEEDED", Succeeded),
            ("Complete", "SUCCEEDED", Succeeded),
            ("Complete", "STOPPED", Stopped),
            ("Failed", "FAILED", Failed),
            ("Failed", "RUNNING", Failed),
            ("Retrying", "FAILED", Pending),
            ("Suspending", "RUNNING", Running),
            ("Suspended", "", Stopped),
        ];
        for (deployment, job, want) in cases {
            assert_eq!(
                remote_state(&status(deployment, job, "")),
                Some(want),
                "{deployment} x {job}"
            );
        }
        assert_eq!(remote_state(&status("Hibernating", "", "")), None);
        assert_eq!(remote_state(&status("Running", "LOST", "")), None);
    }

    #[test]
    fn reasons_become_failure_classes() {
        let cases = [
            ("DeadlineExceeded", FailureClass::TimeLimit),
            ("AppFailed", FailureClass::JobError),
            ("SubmissionFailed", FailureClass::StartTimeout),
        ];
        for (reason, class) in cases {
            let report = remote_status(&status("Failed", "FAILED", reason), false).unwrap();
            assert_eq!(report.failure, Some(class), "{reason}");
            assert!(report.message.contains(reason), "{}", report.message);
        }
        // Suspended or stopped: cancelled only when the broker's record says so.
        for (deployment, job) in [("Suspended", ""), ("Complete", "STOPPED")] {
            let ours = remote_status(&status(deployment, job, ""), true).unwrap();
            assert_eq!(ours.failure, Some(FailureClass::Cancelled), "{deployment}");
            let theirs = remote_status(&status(deployment, job, ""), false).unwrap();
            assert_eq!(theirs.state, RemoteState::Stopped);
            assert_eq!(theirs.failure, None, "{deployment} by someone else");
        }
        let fine = remote_status(&status("Complete", "SUCCEEDED", ""), true).unwrap();
        assert_eq!(fine.failure, None);
    }

    #[test]
    fn times_come_from_the_status_and_unknowns_are_errors() {
        let parsed: RayJobStatus = serde_json::from_value(serde_json::json!({
            "jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete",
            "startTime": "2026-01-02T03:04:05Z", "endTime": "2026-01-02T03:04:15Z",
            "rayClusterName": "x-abcde", "observedGeneration": 2
        }))
        .unwrap();
        let report = remote_status(&parsed, false).unwrap();
        assert_eq!(report.started_at_ms, Some(1_767_323_045_000));
        assert_eq!(report.ended_at_ms, Some(1_767_323_055_000));
        let err = remote_status(&status("Hibernating", "", ""), false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("Hibernating"));
    }
}
