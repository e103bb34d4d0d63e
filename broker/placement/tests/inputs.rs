//! Building placement's inputs from the broker's own records.

use raybroker_core::{
    Bytes, Job, JobId, JobSpec, JobState, Quantity, Resources, TenantId, Transition,
};
use raybroker_placement::{PendingJob, Quota, Totals};

fn moved(from: Option<JobState>, to: JobState, at_ms: u64) -> Transition {
    Transition {
        from,
        to,
        at_ms,
        attempt: 0,
        reason: String::new(),
    }
}

#[test]
fn a_stored_job_waits_from_its_submission_or_latest_retry() {
    let spec = JobSpec {
        entrypoint: "python train.py".into(),
        priority: 7,
        resources: Resources {
            gpus: Quantity::whole(2),
            nodes: 2,
            ..Resources::default()
        },
        ..JobSpec::default()
    };
    let mut job = Job {
        id: JobId::generate(1_000),
        tenant: TenantId::new("lab").unwrap(),
        name: "train".into(),
        state: JobState::Queued,
        reason: String::new(),
        attempt: 0,
        cluster: None,
        cancel_requested: false,
        exit_code: None,
        failure: None,
        failover: Default::default(),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
        spec,
        attempts: Vec::new(),
        history: vec![moved(None, JobState::Queued, 1_000)],
    };
    let pending = PendingJob::from_job(&job);
    assert_eq!(pending.id, job.id.to_string());
    assert_eq!(pending.tenant, "lab");
    assert_eq!(pending.priority, 7);
    assert_eq!(pending.enqueued_at_ms, 1_000);
    assert_eq!(pending.demand().gpus, Quantity::whole(4));
    // A lease given back keeps the wait; a retry starts a new one.
    job.history
        .push(moved(Some(JobState::Queued), JobState::Dispatching, 2_000));
    job.history
        .push(moved(Some(JobState::Dispatching), JobState::Queued, 2_500));
    assert_eq!(PendingJob::from_job(&job).enqueued_at_ms, 1_000);
    job.history
        .push(moved(Some(JobState::Running), JobState::Queued, 9_000));
    assert_eq!(PendingJob::from_job(&job).enqueued_at_ms, 9_000);
}

#[test]
fn quotas_name_the_resource_that_breaks() {
    let quota = Quota {
        memory: Some(Bytes(8 << 30)),
        ..Quota::default()
    };
    let used = Totals {
        memory: Bytes(6 << 30),
        ..Totals::default()
    };
    let asked = Totals {
        memory: Bytes(4 << 30),
        ..Totals::default()
    };
    assert_eq!(
        quota.breach(used, asked).as_deref(),
        Some("memory: 6GiB in flight + 4GiB asked > quota 8GiB")
    );
    assert_eq!(quota.breach(used, Totals::default()), None);
    assert_eq!(Quota::default().breach(used, asked), None);
}
