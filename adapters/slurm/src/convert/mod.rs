//! Pure mappings between Slurm's words and the adapter contract: job states
//! and exit codes ([`remote_status`]), wire failures ([`adapter_error`]),
//! capacity ([`capacity`]), the submit description and origin tags
//! ([`submit`]). No IO.

pub mod capacity;
pub mod submit;

use raybroker_adapter::{AdapterError, ErrorKind, RemoteState, RemoteStatus};
use raybroker_core::FailureClass;

use crate::client::{ExitCode, JobInfo, WireError, INVALID_JOB_ID};
use crate::jobdir::{Outcome, OutcomeReason};

/// What one Slurm job state means for the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateMeaning {
    /// The contract's state.
    pub state: RemoteState,
    /// Why it ended badly, for failed and stopped states.
    pub failure: Option<FailureClass>,
}

const fn meaning(state: RemoteState, failure: Option<FailureClass>) -> StateMeaning {
    StateMeaning { state, failure }
}

/// Every Slurm job state the adapter knows; `None` for one it does not.
///
/// COMPLETING counts as running: the job still holds its nodes while Slurm
/// kills what is left, and its final state comes next.
pub fn state_meaning(slurm_state: &str) -> Option<StateMeaning> {
    use FailureClass as F;
    use RemoteState as R;
    Some(match slurm_state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" => meaning(R::Pending, None),
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "SIGNALING" | "RESIZING" => {
            meaning(R::Running, None)
        }
        "COMPLETED" => meaning(R::Succeeded, None),
        "FAILED" | "SPECIAL_EXIT" => meaning(R::Failed, Some(F::JobError)),
        "CANCELLED" | "REVOKED" => meaning(R::Stopped, Some(F::Cancelled)),
        "TIMEOUT" | "DEADLINE" => meaning(R::Failed, Some(F::TimeLimit)),
        "NODE_FAIL" => meaning(R::Failed, Some(F::NodeLost)),
        "PREEMPTED" => meaning(R::Failed, Some(F::Preempted)),
        "OUT_OF_MEMORY" => meaning(R::Failed, Some(F::OutOfMemory)),
        "BOOT_FAIL" => meaning(R::Failed, Some(F::StartTimeout)),
        _ => return None,
    })
}

/// The exit code a wait status stands for: the code of a normal exit, or
/// 128 + the signal (the shell's convention) when a signal ended it.
pub fn decode_wait_status(raw: i64) -> i32 {
    let signal = raw & 0x7f;
    if signal == 0 {
        ((raw >> 8) & 0xff) as i32
    } else {
        128 + signal as i32
    }
}

/// The exit code of a finished job's batch script, when Slurm reports one.
pub fn exit_code(code: ExitCode) -> Option<i32> {
    match code {
        ExitCode::Unknown => None,
        ExitCode::WaitStatus(raw) => Some(decode_wait_status(raw)),
        ExitCode::Decoded {
            signal: Some(signal),
            ..
        } => i32::try_from(128 + signal).ok(),
        ExitCode::Decoded { return_code, .. } => return_code.and_then(|c| i32::try_from(c).ok()),
    }
}

fn secs_to_ms(secs: Option<u64>) -> Option<u64> {
    secs.filter(|&s| s > 0).map(|s| s.saturating_mul(1000))
}

/// The status of a job Slurm knows, refined by the outcome the job script
/// wrote (which tells a time limit the script enforced, or a Ray start
/// failure, from an ordinary non-zero exit).
pub fn remote_status(
    job: &JobInfo,
    outcome: Option<&Outcome>,
) -> Result<RemoteStatus, AdapterError> {
    let known = job
        .job_state
        .iter()
        .find_map(|s| state_meaning(s).map(|m| (s.as_str(), m)));
    let Some((word, mut meaning)) = known else {
        return Err(AdapterError::new(
            ErrorKind::Internal,
            format!(
                "Slurm job state {:?} is not one the adapter knows",
                job.job_state
            ),
        ));
    };
    let mut exit_code = if meaning.state.is_final() {
        exit_code(job.exit_code)
    } else {
        None
    };
    if let Some(outcome) = outcome.filter(|_| meaning.state.is_final()) {
        exit_code = Some(outcome.exit_code);
        if let Some(class) = outcome.reason.failure() {
            if meaning.state == RemoteState::Failed {
                meaning.failure = Some(class);
            }
        }
    }
    // FAILED with exit 0 happens when the batch script is killed between
    // the entrypoint and its exit; keep it failed, code as reported.
    let started = secs_to_ms(job.start_time);
    let ended = if meaning.state.is_final() {
        secs_to_ms(job.end_time)
    } else {
        None
    };
    let reason = job.state_reason.as_deref().filter(|r| *r != "None");
    let mut message = format!("slurm job {} {word}", job.job_id.unwrap_or(0));
    if let Some(reason) = reason {
        message.push_str(&format!(" ({reason})"));
    }
    if let Some(outcome) = outcome {
        message.push_str(&format!(": {}", outcome.reason.describe()));
    }
    Ok(RemoteStatus {
        state: meaning.state,
        message,
        exit_code,
        started_at_ms: started,
        ended_at_ms: ended.map(|e| e.max(started.unwrap_or(0))),
        failure: meaning.failure,
    })
}

/// The status of a job Slurm no longer knows (it forgets finished jobs after
/// `MinJobAge` without accounting), from what the job left in its directory.
pub fn forgotten_status(
    slurm_job_id: u64,
    outcome: Option<&Outcome>,
    cancel_requested: bool,
) -> RemoteStatus {
    let (state, failure, exit_code, message) = match outcome {
        Some(outcome) if outcome.exit_code == 0 && outcome.reason == OutcomeReason::Exited => (
            RemoteState::Succeeded,
            None,
            Some(0),
            outcome.reason.describe(),
        ),
        Some(outcome) if outcome.reason == OutcomeReason::Terminated && cancel_requested => (
            RemoteState::Stopped,
            Some(FailureClass::Cancelled),
            Some(outcome.exit_code),
            "cancelled".to_string(),
        ),
        Some(outcome) => (
            RemoteState::Failed,
            Some(outcome.reason.failure().unwrap_or(FailureClass::JobError)),
            Some(outcome.exit_code),
            outcome.reason.describe(),
        ),
        None if cancel_requested => (
            RemoteState::Stopped,
            Some(FailureClass::Cancelled),
            None,
            "cancelled before it started".to_string(),
        ),
        None => (
            RemoteState::Failed,
            Some(FailureClass::ClusterUnreachable),
            None,
            "Slurm forgot the job and it left no exit status".to_string(),
        ),
    };
    RemoteStatus {
        state,
        message: format!("slurm job {slurm_job_id} (no longer in slurmctld): {message}"),
        exit_code,
        started_at_ms: None,
        ended_at_ms: outcome.map(|o| o.written_at_ms),
        failure,
    }
}

/// The adapter error for a wire failure.
pub fn adapter_error(error: &WireError) -> AdapterError {
    let kind = match error {
        WireError::Transport { timeout: true, .. } => ErrorKind::Timeout,
        WireError::Transport { .. } => ErrorKind::Unavailable,
        WireError::Credentials(_) => ErrorKind::Unauthorized,
        WireError::Decode { .. } => ErrorKind::Internal,
        WireError::Status { status, errors, .. } => {
            let numbers: Vec<i64> = errors.iter().map(|e| e.error_number).collect();
            match status {
                401 | 403 => ErrorKind::Unauthorized,
                _ if numbers.contains(&INVALID_JOB_ID) => ErrorKind::NotFound,
                // Slurm's job-description errors (2000-2999 minus the
                // controller's own troubles) refuse the request itself.
                _ if numbers.iter().any(|n| is_request_error(*n)) => ErrorKind::Rejected,
                400..=499 => ErrorKind::Rejected,
                _ if crate::client::is_transient(error) => ErrorKind::Unavailable,
                _ => ErrorKind::Unavailable,
            }
        }
    };
    AdapterError::new(kind, error.to_string())
}

/// Slurm error numbers that reject a job description: invalid partition,
/// account, QOS, node count, time limit, gres, or more than the cluster has.
fn is_request_error(number: i64) -> bool {
    matches!(
        number,
        2000..=2010 | 2014 | 2015 | 2016 | 2026 | 2044 | 2045 | 2050 | 2051 | 2052 | 2072 | 2073
    )
}

#[cfg(test)]
mod tests;
