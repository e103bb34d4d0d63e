use super::*;
use raybroker_core::{JobId, JobSpec, JobState, TenantId};

fn status(state: RemoteState, exit: Option<i32>, failure: Option<FailureClass>) -> RemoteStatus {
    RemoteStatus {
        state,
        message: "m".into(),
        exit_code: exit,
        started_at_ms: None,
        ended_at_ms: None,
        failure,
    }
}

fn job(attempt: u32, spec: JobSpec) -> Job {
    Job {
        id: JobId::generate(1),
        tenant: TenantId::new("robotics").unwrap(),
        name: "j".into(),
        state: JobState::Running,
        reason: String::new(),
        attempt,
        cluster: Some("a".into()),
        cancel_requested: false,
        exit_code: None,
        failure: None,
        failover: Failover::default(),
        created_at_ms: 0,
        updated_at_ms: 0,
        spec,
        attempts: Vec::new(),
        history: Vec::new(),
    }
}

#[test]
fn the_classification_table() {
    use FailureClass::*;
    use RemoteState::*;
    let table: Vec<(RemoteStatus, FailureClass)> = vec![
        // The adapter's class wins over the exit code.
        (status(Failed, Some(137), Some(OutOfMemory)), OutOfMemory),
        (status(Failed, None, Some(Preempted)), Preempted),
        (status(Stopped, None, Some(NodeLost)), NodeLost),
        (status(Failed, Some(1), Some(StartTimeout)), StartTimeout),
        // Broker-side knowledge.
        (status(Failed, Some(1), None), JobError),
        (status(Failed, Some(3), None), JobError),
        (status(Failed, None, None), NodeLost),
        (status(Failed, Some(0), None), NodeLost),
        (status(Stopped, None, None), NodeLost),
        (status(Stopped, Some(1), None), NodeLost),
    ];
    for (remote, expected) in &table {
        assert_eq!(classify(&Outcome::Remote(remote)), *expected, "{remote:?}");
    }
    assert_eq!(classify(&Outcome::Unreachable), ClusterUnreachable);
    assert_eq!(classify(&Outcome::Unknown), ClusterUnreachable);
    assert_eq!(classify(&Outcome::ClusterRemoved), ClusterUnreachable);
    assert_eq!(classify(&Outcome::TimeLimit), TimeLimit);
    assert_eq!(classify(&Outcome::Cancelled), Cancelled);
}

#[test]
fn the_backoff_schedule_doubles_up_to_its_cap() {
    let backoff = Backoff {
        initial: Duration::from_secs(5),
        factor: 2.0,
        max: Duration::from_secs(60),
    };
    let waits: Vec<u64> = (1..=6).map(|n| backoff.delay(n).as_secs()).collect();
    assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(60));
    let flat = Backoff {
        factor: 0.5, // below 1 counts as 1: waits never shrink
        ..backoff
    };
    assert_eq!(flat.delay(4), Duration::from_secs(5));
}

#[test]
fn a_non_zero_exit_is_not_retried_unless_the_job_asks() {
    let policy = RetryPolicy::default();
    let plain = job(1, JobSpec::default());
    assert_eq!(
        policy.decide(&plain, FailureClass::JobError, "a", 0),
        Decision::GiveUp { allowed: 0 }
    );
    // max_retries covers the infrastructure only.
    let mut spec = JobSpec {
        max_retries: 5,
        ..JobSpec::default()
    };
    assert_eq!(
        policy.decide(&job(1, spec.clone()), FailureClass::JobError, "a", 0),
        Decision::GiveUp { allowed: 0 }
    );
    spec.retry.insert(FailureClass::JobError, 2);
    let decision = policy.decide(&job(1, spec.clone()), FailureClass::JobError, "a", 1_000);
    let Decision::Retry {
        used,
        allowed,
        failover,
    } = decision
    else {
        panic!("not retried: {decision:?}");
    };
    assert_eq!((used, allowed), (1, 2));
    assert!(failover.excluded_clusters.is_empty(), "the job's own error");
    assert_eq!(failover.not_before_ms, Some(11_000));
    // Attempt 3 has used both retries.
    assert_eq!(
        policy.decide(&job(3, spec), FailureClass::JobError, "a", 0),
        Decision::GiveUp { allowed: 2 }
    );
}

#[test]
fn infrastructure_failures_retry_elsewhere_with_growing_waits() {
    let policy = RetryPolicy::default();
    let mut second = job(2, JobSpec::default());
    second.failover.excluded_clusters = vec!["a".into()];
    let decision = policy.decide(&second, FailureClass::NodeLost, "b", 0);
    assert_eq!(
        decision,
        Decision::Retry {
            used: 2,
            allowed: 3,
            failover: Failover {
                excluded_clusters: vec!["a".into(), "b".into()],
                not_before_ms: Some(10_000),
            },
        }
    );
    assert_eq!(
        policy.decide(&job(4, JobSpec::default()), FailureClass::NodeLost, "b", 0),
        Decision::GiveUp { allowed: 3 }
    );
    // A job's own max_retries replaces the default for the infrastructure.
    let spec = JobSpec {
        max_retries: 1,
        ..JobSpec::default()
    };
    assert_eq!(
        policy.decide(&job(2, spec), FailureClass::ClusterUnreachable, "a", 0),
        Decision::GiveUp { allowed: 1 }
    );
}

#[test]
fn cancelled_and_timed_out_jobs_end() {
    let policy = RetryPolicy::default();
    let mut spec = JobSpec::default();
    spec.retry.insert(FailureClass::Cancelled, 5); // refused by validation anyway
    assert_eq!(
        policy.decide(&job(1, spec), FailureClass::Cancelled, "a", 0),
        Decision::GiveUp { allowed: 0 }
    );
    assert_eq!(
        policy.decide(&job(1, JobSpec::default()), FailureClass::TimeLimit, "a", 0),
        Decision::GiveUp { allowed: 0 }
    );
    let mut asked = job(1, JobSpec::default());
    asked.cancel_requested = true;
    assert!(matches!(
        policy.decide(&asked, FailureClass::NodeLost, "a", 0),
        Decision::GiveUp { .. }
    ));
}
