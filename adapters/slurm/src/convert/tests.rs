use super::*;
use crate::client::SlurmError;

fn job(state: &str, exit: ExitCode) -> JobInfo {
    JobInfo {
        job_id: Some(12),
        name: "sub".into(),
        job_state: vec![state.into()],
        exit_code: exit,
        start_time: Some(100),
        end_time: Some(160),
        ..JobInfo::default()
    }
}

#[test]
fn every_slurm_state_has_a_meaning() {
    use FailureClass as F;
    use RemoteState as R;
    let table = [
        ("PENDING", R::Pending, None),
        ("RUNNING", R::Running, None),
        ("COMPLETING", R::Running, None),
        ("COMPLETED", R::Succeeded, None),
        ("FAILED", R::Failed, Some(F::JobError)),
        ("CANCELLED", R::Stopped, Some(F::Cancelled)),
        ("TIMEOUT", R::Failed, Some(F::TimeLimit)),
        ("DEADLINE", R::Failed, Some(F::TimeLimit)),
        ("NODE_FAIL", R::Failed, Some(F::NodeLost)),
        ("PREEMPTED", R::Failed, Some(F::Preempted)),
        ("OUT_OF_MEMORY", R::Failed, Some(F::OutOfMemory)),
        ("BOOT_FAIL", R::Failed, Some(F::StartTimeout)),
    ];
    for (word, state, failure) in table {
        assert_eq!(state_meaning(word), Some(meaning(state, failure)), "{word}");
    }
    assert_eq!(state_meaning("EXPLODED"), None);
}

#[test]
fn wait_statuses_decode() {
    assert_eq!(decode_wait_status(0), 0);
    assert_eq!(decode_wait_status(768), 3);
    assert_eq!(decode_wait_status(255 << 8), 255);
    assert_eq!(decode_wait_status(9), 137);
    assert_eq!(decode_wait_status(15), 143);
    assert_eq!(
        exit_code(ExitCode::Decoded {
            return_code: Some(4),
            signal: None
        }),
        Some(4)
    );
    assert_eq!(exit_code(ExitCode::Unknown), None);
}

#[test]
fn statuses_carry_codes_times_and_classes() {
    let failed = remote_status(&job("FAILED", ExitCode::WaitStatus(768)), None).unwrap();
    assert_eq!(failed.state, RemoteState::Failed);
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(failed.failure, Some(FailureClass::JobError));
    assert_eq!(
        (failed.started_at_ms, failed.ended_at_ms),
        (Some(100_000), Some(160_000))
    );
    let running = remote_status(&job("RUNNING", ExitCode::WaitStatus(0)), None).unwrap();
    assert_eq!((running.exit_code, running.ended_at_ms), (None, None));
    let mut pending = job("PENDING", ExitCode::WaitStatus(0));
    pending.start_time = Some(0);
    pending.state_reason = Some("Resources".into());
    let pending = remote_status(&pending, None).unwrap();
    assert_eq!(pending.started_at_ms, None);
    assert!(
        pending.message.contains("(Resources)"),
        "{}",
        pending.message
    );
    assert!(remote_status(&job("EXPLODED", ExitCode::Unknown), None).is_err());
}

#[test]
fn newer_versions_list_flags_after_the_state() {
    let mut both = job("CANCELLED", ExitCode::Unknown);
    both.job_state.push("COMPLETING".into());
    assert_eq!(
        remote_status(&both, None).unwrap().state,
        RemoteState::Stopped
    );
}

#[test]
fn the_scripts_outcome_refines_a_failure() {
    let limit = Outcome {
        exit_code: 143,
        reason: OutcomeReason::TimeLimit,
        written_at_ms: 1,
    };
    let status =
        remote_status(&job("FAILED", ExitCode::WaitStatus(143 << 8)), Some(&limit)).unwrap();
    assert_eq!(status.failure, Some(FailureClass::TimeLimit));
    assert_eq!(status.exit_code, Some(143));
    let start = Outcome {
        exit_code: 1,
        reason: OutcomeReason::RayStartFailed,
        written_at_ms: 1,
    };
    let status = remote_status(&job("FAILED", ExitCode::WaitStatus(256)), Some(&start)).unwrap();
    assert_eq!(status.failure, Some(FailureClass::StartTimeout));
    // A cancel stays a cancel whatever the script wrote on its way out.
    let term = Outcome {
        exit_code: 143,
        reason: OutcomeReason::Terminated,
        written_at_ms: 1,
    };
    let status = remote_status(&job("CANCELLED", ExitCode::Unknown), Some(&term)).unwrap();
    assert_eq!(status.failure, Some(FailureClass::Cancelled));
}

#[test]
fn forgotten_jobs_keep_their_final_state() {
    let ok = Outcome {
        exit_code: 0,
        reason: OutcomeReason::Exited,
        written_at_ms: 9,
    };
    let status = forgotten_status(3, Some(&ok), false);
    assert_eq!(
        (status.state, status.exit_code),
        (RemoteState::Succeeded, Some(0))
    );
    assert_eq!(status.ended_at_ms, Some(9));
    let bad = Outcome {
        exit_code: 3,
        ..ok.clone()
    };
    let status = forgotten_status(3, Some(&bad), false);
    assert_eq!(status.state, RemoteState::Failed);
    assert_eq!(status.failure, Some(FailureClass::JobError));
    let term = Outcome {
        exit_code: 143,
        reason: OutcomeReason::Terminated,
        written_at_ms: 9,
    };
    assert_eq!(
        forgotten_status(3, Some(&term), true).state,
        RemoteState::Stopped
    );
    assert_eq!(forgotten_status(3, None, true).state, RemoteState::Stopped);
    let lost = forgotten_status(3, None, false);
    assert_eq!(lost.failure, Some(FailureClass::ClusterUnreachable));
}

#[test]
fn wire_failures_map_to_kinds() {
    let status = |code: u16, number: i64| WireError::Status {
        call: "POST /slurm/v0.0.38/job/submit".into(),
        status: code,
        errors: vec![SlurmError {
            error_number: number,
            ..SlurmError::default()
        }],
        body: String::new(),
    };
    assert_eq!(adapter_error(&status(500, 2014)).kind, ErrorKind::Rejected);
    assert_eq!(adapter_error(&status(500, 2017)).kind, ErrorKind::NotFound);
    assert_eq!(adapter_error(&status(500, -1)).kind, ErrorKind::Unavailable);
    assert_eq!(adapter_error(&status(401, 0)).kind, ErrorKind::Unauthorized);
    let timeout = WireError::Transport {
        call: "x".into(),
        message: "timed out".into(),
        timeout: true,
    };
    assert_eq!(adapter_error(&timeout).kind, ErrorKind::Timeout);
    assert_eq!(
        adapter_error(&WireError::Credentials("gone".into())).kind,
        ErrorKind::Unauthorized
    );
}
