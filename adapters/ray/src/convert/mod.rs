//! Pure mapping tables between Ray's REST shapes and the adapter contract: job
//! states, log cursors and ownership tags here; HTTP failures in `errors`; the submit body
//! in [`submit`]; node capacity in [`capacity`]. No IO, so every rule is unit
//! tested without a cluster.

pub mod capacity;
mod errors;
pub mod submit;

pub use errors::{adapter_error, classify_failure, is_duplicate_submission, FailureMeaning};

use std::time::Duration;

use raybroker_adapter::{AdapterError, ErrorKind, LogChunk, OwnedJob, RemoteState, RemoteStatus};
use raybroker_core::FailureClass;

use crate::client::JobDetails;

/// Metadata key holding the broker's origin tag.
pub const META_ORIGIN: &str = "raybroker.origin";
/// Metadata key holding the job's tenant.
pub const META_TENANT: &str = "raybroker.tenant";
/// Metadata key holding the broker's job id.
pub const META_JOB_ID: &str = "raybroker.job_id";
/// Metadata key holding the attempt number.
pub const META_ATTEMPT: &str = "raybroker.attempt";

/// Longest status message passed on; Ray appends up to 20,000 characters of
/// log to a failure message, and the broker keeps logs separately.
const MESSAGE_LIMIT: usize = 4_096;

/// Ray's job status names and what they mean to the broker.
pub const STATE_TABLE: &[(&str, RemoteState)] = &[
    ("PENDING", RemoteState::Pending),
    ("RUNNING", RemoteState::Running),
    ("SUCCEEDED", RemoteState::Succeeded),
    ("FAILED", RemoteState::Failed),
    ("STOPPED", RemoteState::Stopped),
];

/// The broker's state for a Ray job status, `None` for a status this adapter
/// does not know (a newer Ray).
pub fn remote_state(ray_status: &str) -> Option<RemoteState> {
    STATE_TABLE
        .iter()
        .find(|(name, _)| *name == ray_status)
        .map(|(_, state)| *state)
}

/// A job's status as the contract reports it.
///
/// Ray sets `start_time` when the job is submitted, not when it starts, so a
/// pending job reports no start; `end_time` is kept only once the job is final.
pub fn remote_status(details: &JobDetails) -> Result<RemoteStatus, AdapterError> {
    let state = remote_state(&details.status).ok_or_else(|| unknown_status(&details.status))?;
    let mut message = details.message.clone().unwrap_or_default();
    if let Some(error_type) = details.error_type.as_deref().filter(|t| !t.is_empty()) {
        message = format!("[{error_type}] {message}");
    }
    let positive = |ms: Option<u64>| ms.filter(|ms| *ms > 0);
    Ok(RemoteStatus {
        state,
        message: truncate_at_char(&message, MESSAGE_LIMIT),
        exit_code: details.driver_exit_code,
        started_at_ms: if state == RemoteState::Pending {
            None
        } else {
            positive(details.start_time)
        },
        ended_at_ms: if state.is_final() {
            positive(details.end_time)
        } else {
            None
        },
        failure: failure_class(state, details),
    })
}

/// The class of a failed Ray job, from its `error_type` and exit code.
///
/// Ray names why a job failed in `error_type`: the entrypoint's own non-zero
/// exit (`JOB_ENTRYPOINT_COMMAND_ERROR`) is the job's error; a supervisor that
/// never started (`JOB_SUPERVISOR_ACTOR_START_TIMEOUT`, after
/// `RAY_JOB_START_TIMEOUT_SECONDS`) is a start timeout; a supervisor that died
/// with its node is a lost node. Without a type, a non-zero exit code is the
/// job's own error and anything else is left to the broker.
/// (`JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE`: no node can host the job at all.)
pub fn failure_class(state: RemoteState, details: &JobDetails) -> Option<FailureClass> {
    if state != RemoteState::Failed {
        return None;
    }
    match details.error_type.as_deref().unwrap_or_default() {
        "JOB_ENTRYPOINT_COMMAND_ERROR" | "JOB_ENTRYPOINT_COMMAND_START_ERROR" => {
            Some(FailureClass::JobError)
        }
        "JOB_SUPERVISOR_ACTOR_START_TIMEOUT" | "JOB_SUPERVISOR_ACTOR_START_FAILURE" => {
            Some(FailureClass::StartTimeout)
        }
        "JOB_SUPERVISOR_ACTOR_DIED" => Some(FailureClass::NodeLost),
        "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE" => Some(FailureClass::NoCapacity),
        _ => match details.driver_exit_code {
            Some(code) if code != 0 => Some(FailureClass::JobError),
            _ => None,
        },
    }
}

fn unknown_status(status: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::Internal,
        format!("ray reported job status '{status}', which this adapter does not know"),
    )
}

/// The job as [`OwnedJob`] when its metadata carries `origin`, `None` when it
/// belongs to someone else (another broker, a person, a driver script).
pub fn owned_job(details: &JobDetails, origin: &str) -> Result<Option<OwnedJob>, AdapterError> {
    let tag = |key: &str| -> Option<&str> { details.metadata.as_ref()?.get(key)?.as_str() };
    if tag(META_ORIGIN) != Some(origin) {
        return Ok(None);
    }
    let Some(submission_id) = details.submission_id.clone() else {
        return Ok(None);
    };
    let state = remote_state(&details.status).ok_or_else(|| unknown_status(&details.status))?;
    Ok(Some(OwnedJob {
        submission_id,
        job_id: tag(META_JOB_ID).and_then(|id| id.parse().ok()),
        attempt: tag(META_ATTEMPT).and_then(|n| n.parse().ok()),
        state,
    }))
}

/// How long after a job ends Ray 2.60 may still write to its record.
///
/// Ray's job monitor polls the supervisor actor every second; when it notices
/// the actor gone after the record was deleted, it writes the job back as a
/// ghost (`FAILED`, entrypoint `Entrypoint not found.`, no metadata) that then
/// stays forever. Observed: deleting 1 s after the end leaves a ghost, 2 s
/// does not. Deleting only once this long has passed avoids it.
pub const DELETE_GRACE_MS: u64 = 5_000;

/// How long cleanup should wait before deleting a job that ended at
/// `end_time_ms` (Ray's clock), `None` when it may delete now. The wait never
/// exceeds [`DELETE_GRACE_MS`], whatever the clocks say.
pub fn delete_delay(end_time_ms: Option<u64>, now_ms: u64) -> Option<Duration> {
    let end = end_time_ms.filter(|ms| *ms > 0)?;
    let since_end = now_ms.saturating_sub(end);
    let remaining = DELETE_GRACE_MS.saturating_sub(since_end);
    (remaining > 0).then(|| Duration::from_millis(remaining))
}

/// The log text after byte offset `cursor` of Ray's whole log.
///
/// The cursor never moves backwards: one past the end yields nothing and
/// keeps the cursor; one inside a character moves to the next character. A
/// trailing U+FFFD is held back: it is what a half-written multi-byte
/// character decodes to, and the next read may replace it with the real one.
pub fn log_suffix(whole: &str, cursor: u64) -> LogChunk {
    let len = whole.len();
    let Ok(mut start) = usize::try_from(cursor) else {
        return LogChunk {
            text: String::new(),
            next_cursor: cursor,
        };
    };
    if start >= len {
        return LogChunk {
            text: String::new(),
            next_cursor: cursor,
        };
    }
    while !whole.is_char_boundary(start) {
        start += 1;
    }
    let end = whole.trim_end_matches('\u{FFFD}').len().max(start);
    LogChunk {
        text: whole[start..end].to_string(),
        next_cursor: end as u64,
    }
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn truncate_at_char(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn failed_jobs_are_classified_by_error_type_then_exit_code() {
        let failed = |error_type: Option<&str>, code: Option<i32>| {
            let details = JobDetails {
                status: "FAILED".into(),
                error_type: error_type.map(str::to_string),
                driver_exit_code: code,
                ..Default::default()
            };
            remote_status(&details).unwrap().failure
        };
        use FailureClass::*;
        assert_eq!(
            failed(Some("JOB_ENTRYPOINT_COMMAND_ERROR"), Some(1)),
            Some(JobError)
        );
        assert_eq!(
            failed(Some("JOB_SUPERVISOR_ACTOR_START_TIMEOUT"), None),
            Some(StartTimeout)
        );
        assert_eq!(
            failed(Some("JOB_SUPERVISOR_ACTOR_DIED"), None),
            Some(NodeLost)
        );
        assert_eq!(
            failed(Some("JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"), None),
            Some(NoCapacity)
        );
        assert_eq!(failed(None, Some(2)), Some(JobError));
        assert_eq!(failed(None, None), None);
        let running = JobDetails {
            status: "RUNNING".into(),
            driver_exit_code: Some(1),
            ..Default::default()
        };
        assert_eq!(remote_status(&running).unwrap().failure, None);
    }

    #[test]
    fn every_ray_status_maps() {
        assert_eq!(remote_state("PENDING"), Some(RemoteState::Pending));
        assert_eq!(remote_state("RUNNING"), Some(RemoteState::Running));
        assert_eq!(remote_state("SUCCEEDED"), Some(RemoteState::Succeeded));
        assert_eq!(remote_state("FAILED"), Some(RemoteState::Failed));
        assert_eq!(remote_state("STOPPED"), Some(RemoteState::Stopped));
        assert_eq!(remote_state("running"), None);
        let err = remote_status(&JobDetails {
            status: "PAUSED".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("PAUSED"), "{}", err.message);
    }

    #[test]
    fn status_keeps_exit_code_and_times() {
        let failed = JobDetails {
            status: "FAILED".into(),
            message: Some("Job entrypoint command failed with exit code 3".into()),
            error_type: Some("JOB_ENTRYPOINT_COMMAND_ERROR".into()),
            start_time: Some(1_000),
            end_time: Some(3_000),
            driver_exit_code: Some(3),
            ..Default::default()
        };
        let status = remote_status(&failed).unwrap();
        assert_eq!(status.state, RemoteState::Failed);
        assert_eq!(status.exit_code, Some(3));
        assert_eq!(
            (status.started_at_ms, status.ended_at_ms),
            (Some(1_000), Some(3_000))
        );
        assert!(status
            .message
            .starts_with("[JOB_ENTRYPOINT_COMMAND_ERROR] Job entrypoint"));

        let pending = JobDetails {
            status: "PENDING".into(),
            start_time: Some(1_000),
            end_time: Some(0),
            message: Some("x".repeat(30_000)),
            ..Default::default()
        };
        let status = remote_status(&pending).unwrap();
        assert_eq!((status.started_at_ms, status.ended_at_ms), (None, None));
        assert!(status.message.len() <= MESSAGE_LIMIT + '…'.len_utf8());
    }

    #[test]
    fn deletes_wait_out_the_monitor_grace() {
        assert_eq!(delete_delay(None, 10_000), None);
        assert_eq!(delete_delay(Some(0), 10_000), None);
        assert_eq!(delete_delay(Some(10_000), 16_000), None);
        assert_eq!(delete_delay(Some(10_000), 15_000), None);
        assert_eq!(
            delete_delay(Some(10_000), 11_000),
            Some(Duration::from_millis(4_000))
        );
        // Ray's clock ahead of ours: wait the grace, never longer.
        assert_eq!(
            delete_delay(Some(90_000), 10_000),
            Some(Duration::from_millis(DELETE_GRACE_MS))
        );
    }

    #[test]
    fn log_cursor_moves_forward_only() {
        let log = "héllo\nworld\n";
        let first = log_suffix(log, 0);
        assert_eq!(first.text, log);
        assert_eq!(first.next_cursor, log.len() as u64);
        assert_eq!(log_suffix(log, 7).text, "world\n");
        // Inside 'é' (bytes 1..3): skip to the next character.
        let inside = log_suffix(log, 2);
        assert_eq!(inside.text, "llo\nworld\n");
        // Past the end: nothing, and the cursor stays.
        let past = log_suffix(log, 100);
        assert_eq!((past.text.as_str(), past.next_cursor), ("", 100));
        assert_eq!(log_suffix(log, u64::MAX).next_cursor, u64::MAX);
    }

    #[test]
    fn half_written_characters_are_held_back() {
        let chunk = log_suffix("abc\u{FFFD}", 0);
        assert_eq!((chunk.text.as_str(), chunk.next_cursor), ("abc", 3));
        let later = log_suffix("abcé and more", chunk.next_cursor);
        assert_eq!(later.text, "é and more");
        let only = log_suffix("abc\u{FFFD}", 3);
        assert_eq!((only.text.as_str(), only.next_cursor), ("", 3));
    }

    #[test]
    fn ownership_is_by_origin_tag() {
        let tagged = |origin: &str| JobDetails {
            submission_id: Some("01JDQ3ZK8V6X9T2M4N5P7R8S9A-1".into()),
            status: "RUNNING".into(),
            metadata: Some(BTreeMap::from([
                (META_ORIGIN.to_string(), origin.into()),
                (META_JOB_ID.to_string(), "01JDQ3ZK8V6X9T2M4N5P7R8S9A".into()),
                (META_ATTEMPT.to_string(), "2".into()),
            ])),
            ..Default::default()
        };
        let owned = owned_job(&tagged("prod"), "prod").unwrap().unwrap();
        assert_eq!(owned.state, RemoteState::Running);
        assert_eq!(owned.attempt, Some(2));
        assert_eq!(owned.job_id.unwrap().as_str(), "01JDQ3ZK8V6X9T2M4N5P7R8S9A");
        assert_eq!(owned_job(&tagged("staging"), "prod").unwrap(), None);
        let untagged = JobDetails {
            submission_id: Some("x".into()),
            status: "RUNNING".into(),
            ..Default::default()
        };
        assert_eq!(owned_job(&untagged, "prod").unwrap(), None);
        let driver = JobDetails {
            submission_id: None,
            ..tagged("prod")
        };
        assert_eq!(owned_job(&driver, "prod").unwrap(), None);
    }
}
