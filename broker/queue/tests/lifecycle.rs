//! The queue's lifecycle operations against a real Redis.

mod common;

use common::{leased_ids, spec, spec_with, tenant};
use raybroker_core::{JobSpec, JobState};
use raybroker_queue::testing::{self, now_ms};
use raybroker_queue::{CancelEffect, JobQueue, ListFilter, QueueConfig, QueueError};

#[tokio::test]
async fn submit_then_get_round_trips() {
    let q = testing::queue("get");
    let t = tenant("robotics");
    let mut s = spec("python train.py --task Isaac-Ant-v0");
    s.labels.insert("project".into(), "ant".into());
    let outcome = q.submit(&t, s.clone(), now_ms()).await.unwrap();
    assert!(outcome.created());
    let stored = q.get(&outcome.job().id).await.unwrap().expect("stored");
    assert_eq!(&stored, outcome.job());
    assert_eq!(stored.state, JobState::Queued);
    assert_eq!(stored.spec, s);
    assert_eq!(stored.name, "train");
    assert_eq!(stored.history.len(), 1);
    assert_eq!(q.queued_count(&t).await.unwrap(), 1);
    assert_eq!(q.ready_tenants().await.unwrap(), vec![t]);
}

#[tokio::test]
async fn idempotency_key_returns_the_same_job_per_tenant() {
    let q = testing::queue("idem");
    let (a, b) = (tenant("a"), tenant("b"));
    let first = q
        .submit(&a, spec_with("x", 0, Some("k1")), now_ms())
        .await
        .unwrap();
    let again = q
        .submit(&a, spec_with("x", 0, Some("k1")), now_ms())
        .await
        .unwrap();
    assert!(first.created());
    assert!(!again.created());
    assert_eq!(first.job().id, again.job().id);
    assert_eq!(q.queued_count(&a).await.unwrap(), 1);
    let other = q
        .submit(&b, spec_with("x", 0, Some("k1")), now_ms())
        .await
        .unwrap();
    assert!(other.created(), "another tenant's key space is separate");
    assert_ne!(other.job().id, first.job().id);

    // Within one batch too.
    let batch = q
        .submit_many(
            &a,
            vec![spec_with("y", 0, Some("k2")), spec_with("y", 0, Some("k2"))],
            now_ms(),
        )
        .await
        .unwrap();
    assert!(batch[0].created() && !batch[1].created());
    assert_eq!(batch[0].job().id, batch[1].job().id);
}

#[tokio::test]
async fn leases_follow_priority_then_age() {
    let q = testing::queue("order");
    let t = tenant("t");
    let now = now_ms();
    let low_old = q
        .submit(&t, spec_with("low-old", 0, None), now)
        .await
        .unwrap();
    let high = q
        .submit(&t, spec_with("high", 10, None), now)
        .await
        .unwrap();
    let low_new = q
        .submit(&t, spec_with("low-new", 0, None), now)
        .await
        .unwrap();
    let leases = q.lease(&t, 10, now).await.unwrap();
    let order: Vec<_> = leases.iter().map(|l| l.job.id.clone()).collect();
    assert_eq!(
        order,
        vec![
            high.job().id.clone(),
            low_old.job().id.clone(),
            low_new.job().id.clone()
        ]
    );
    assert!(leases
        .iter()
        .all(|l| l.job.state == JobState::Dispatching && l.fence == 1));
    assert!(
        q.lease(&t, 10, now).await.unwrap().is_empty(),
        "leased jobs are not leased twice"
    );
    assert!(q.ready_tenants().await.unwrap().is_empty());
}

#[tokio::test]
async fn full_lifecycle_records_every_reason() {
    let q = testing::queue("life");
    let t = tenant("t");
    let now = now_ms();
    let id = q
        .submit(&t, spec("train"), now)
        .await
        .unwrap()
        .job()
        .id
        .clone();
    let lease = q.lease(&t, 1, now).await.unwrap().remove(0);
    let attempt = q.record_attempt(&lease, "ray-a", now).await.unwrap();
    assert_eq!(attempt.number, 1);
    assert_eq!(
        attempt.submission_id,
        raybroker_core::Attempt::submission_id(&id, 1)
    );
    let job = q
        .mark_submitted(&lease, "accepted by ray-a", now)
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Submitted);
    assert_eq!(job.cluster.as_deref(), Some("ray-a"));
    assert!(job.attempts[0].submitted_at_ms.is_some());
    assert_eq!(
        q.update_attempt(&id, 1, JobState::Running, "started", None, now)
            .await
            .unwrap(),
        JobState::Running
    );
    assert_eq!(
        q.update_attempt(&id, 1, JobState::Succeeded, "exit 0", Some(0), now)
            .await
            .unwrap(),
        JobState::Succeeded
    );
    let job = q.get(&id).await.unwrap().unwrap();
    assert_eq!(job.exit_code, Some(0));
    let path: Vec<_> = job
        .history
        .iter()
        .map(|h| (h.to, h.reason.as_str()))
        .collect();
    assert_eq!(
        path,
        vec![
            (JobState::Queued, "submitted"),
            (JobState::Dispatching, "leased for dispatch"),
            (JobState::Dispatching, "attempt 1 on cluster ray-a"),
            (JobState::Submitted, "accepted by ray-a"),
            (JobState::Running, "started"),
            (JobState::Succeeded, "exit 0"),
        ]
    );
    // A finished job refuses every further change.
    let err = q
        .update_attempt(&id, 1, JobState::Queued, "retry", None, now)
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Conflict { .. }), "{err}");
    assert_eq!(
        q.ids_in_state(JobState::Succeeded, 10).await.unwrap(),
        vec![id]
    );
}

#[tokio::test]
async fn an_expired_lease_returns_the_job_and_fences_the_old_holder() {
    let q = testing::queue("fence");
    let t = tenant("t");
    let now = now_ms();
    let id = q.submit(&t, spec("x"), now).await.unwrap().job().id.clone();
    let stale = q.lease(&t, 1, now).await.unwrap().remove(0);
    assert!(
        q.reclaim_expired(now).await.unwrap().is_empty(),
        "not expired yet"
    );
    let later = stale.expires_at_ms + 1;
    assert_eq!(q.reclaim_expired(later).await.unwrap(), vec![id.clone()]);
    let job = q.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert!(job.reason.contains("lease expired"));

    for result in [
        q.mark_submitted(&stale, "late", later).await.map(|_| ()),
        q.record_attempt(&stale, "ray-a", later).await.map(|_| ()),
        q.release(&stale, "late", later).await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(QueueError::StaleLease(_))),
            "{result:?}"
        );
    }
    let mut fresh = q.lease(&t, 1, later).await.unwrap().remove(0);
    assert!(fresh.fence > stale.fence);
    q.renew(&mut fresh, later + 10).await.unwrap();
    assert!(matches!(
        q.renew(&mut stale.clone(), later).await,
        Err(QueueError::StaleLease(_))
    ));
}

#[tokio::test]
async fn an_unconfirmed_attempt_survives_a_lost_lease() {
    let q = testing::queue("replay");
    let t = tenant("t");
    let now = now_ms();
    q.submit(&t, spec("x"), now).await.unwrap();
    let lease = q.lease(&t, 1, now).await.unwrap().remove(0);
    q.record_attempt(&lease, "ray-a", now).await.unwrap();
    // The dispatcher dies here, maybe after the cluster got the job.
    q.reclaim_expired(lease.expires_at_ms + 1).await.unwrap();
    let again = q
        .lease(&t, 1, lease.expires_at_ms + 2)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.job.attempt, 1);
    assert_eq!(again.job.attempts.len(), 1);
    assert_eq!(
        again.job.attempts[0].submitted_at_ms, None,
        "the replay can see it was never confirmed"
    );
    let job = q
        .mark_submitted(
            &again,
            "adopted the replayed submit",
            lease.expires_at_ms + 3,
        )
        .await
        .unwrap();
    assert_eq!(job.attempt, 1);
}

#[tokio::test]
async fn cancel_depends_on_where_the_job_is() {
    let q = testing::queue("cancel");
    let t = tenant("t");
    let now = now_ms();
    let queued = q.submit(&t, spec("q"), now).await.unwrap().job().id.clone();
    let out = q.cancel(&queued, "by user", now).await.unwrap();
    assert_eq!(out.effect, CancelEffect::Cancelled);
    assert_eq!(out.job.state, JobState::Cancelled);
    assert!(
        q.ready_tenants().await.unwrap().is_empty(),
        "no queued job left"
    );
    assert!(q.peek(&t, 10).await.unwrap().is_empty());
    assert!(
        q.lease(&t, 10, now).await.unwrap().is_empty(),
        "a cancelled job is never dispatched"
    );

    let running = q.submit(&t, spec("r"), now).await.unwrap().job().id.clone();
    let lease = q.lease(&t, 1, now).await.unwrap().remove(0);
    q.record_attempt(&lease, "ray-a", now).await.unwrap();
    q.mark_submitted(&lease, "ok", now).await.unwrap();
    let out = q.cancel(&running, "by user", now).await.unwrap();
    assert_eq!(out.effect, CancelEffect::Requested);
    assert!(out.job.cancel_requested);
    assert_eq!(out.job.state, JobState::Submitted);
    assert_eq!(q.pending_cancels().await.unwrap(), vec![running.clone()]);
    let history_len = out.job.history.len();
    let twice = q.cancel(&running, "again", now).await.unwrap();
    assert_eq!(
        twice.job.history.len(),
        history_len,
        "asking twice records nothing more"
    );
    // A retry of a job whose cancel is pending ends cancelled instead.
    assert_eq!(
        q.update_attempt(&running, 1, JobState::Queued, "node lost", None, now)
            .await
            .unwrap(),
        JobState::Cancelled
    );
    assert!(q.pending_cancels().await.unwrap().is_empty());
    assert_eq!(
        q.cancel(&running, "late", now).await.unwrap().effect,
        CancelEffect::AlreadyFinished
    );

    let leased = q.submit(&t, spec("l"), now).await.unwrap().job().id.clone();
    let lease = q.lease(&t, 1, now).await.unwrap().remove(0);
    assert_eq!(
        q.cancel(&leased, "by user", now).await.unwrap().effect,
        CancelEffect::Requested
    );
    assert_eq!(
        q.release(&lease, "no capacity", now).await.unwrap(),
        JobState::Cancelled
    );

    let missing = raybroker_core::JobId::generate(now);
    assert!(matches!(
        q.cancel(&missing, "x", now).await,
        Err(QueueError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_retry_is_a_new_attempt_and_fences_the_old_one() {
    let q = testing::queue("retry");
    let t = tenant("t");
    let now = now_ms();
    let id = q.submit(&t, spec("x"), now).await.unwrap().job().id.clone();
    let lease = q.lease(&t, 1, now).await.unwrap().remove(0);
    q.record_attempt(&lease, "ray-a", now).await.unwrap();
    q.mark_submitted(&lease, "ok", now).await.unwrap();
    assert_eq!(
        q.update_attempt(&id, 1, JobState::Queued, "node lost", None, now)
            .await
            .unwrap(),
        JobState::Queued
    );
    let lease = q.lease(&t, 1, now).await.unwrap().remove(0);
    let attempt = q.record_attempt(&lease, "ray-b", now).await.unwrap();
    assert_eq!(attempt.number, 2);
    q.mark_submitted(&lease, "ok", now).await.unwrap();
    let late = q
        .update_attempt(
            &id,
            1,
            JobState::Succeeded,
            "attempt 1 came back",
            Some(0),
            now,
        )
        .await;
    assert!(matches!(late, Err(QueueError::Conflict { .. })), "{late:?}");
    let job = q.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Submitted);
    assert_eq!(
        job.attempts
            .iter()
            .map(|a| a.cluster.as_str())
            .collect::<Vec<_>>(),
        ["ray-a", "ray-b"]
    );
}

#[tokio::test]
async fn a_new_broker_instance_sees_every_queued_job() {
    // The broker keeps no state of its own: a restart is a new queue over the
    // same Redis, and every acknowledged job is still there in order.
    let prefix = testing::unique_prefix("restart");
    let config = QueueConfig {
        key_prefix: prefix,
        ..QueueConfig::default()
    };
    let t = tenant("t");
    let before = JobQueue::new(testing::pool(&testing::redis_url()), config.clone());
    let specs: Vec<JobSpec> = (0..50).map(|i| spec(&format!("job {i}"))).collect();
    let ids: Vec<_> = before
        .submit_many(&t, specs, now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.job().id.clone())
        .collect();
    drop(before);
    let after = JobQueue::new(testing::pool(&testing::redis_url()), config);
    assert_eq!(leased_ids(&after, &t, 100).await, ids);
}

#[tokio::test]
async fn peek_then_lease_chosen_ids() {
    let q = testing::queue("peek");
    let t = tenant("t");
    let now = now_ms();
    let a = q.submit(&t, spec("a"), now).await.unwrap().job().id.clone();
    let b = q.submit(&t, spec("b"), now).await.unwrap().job().id.clone();
    let peeked: Vec<_> = q
        .peek(&t, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(peeked, vec![a.clone(), b.clone()]);
    assert_eq!(
        q.queued_count(&t).await.unwrap(),
        2,
        "peeking changes nothing"
    );
    // Placement picked only b (a waits for capacity).
    let leases = q
        .lease_ids(&t, std::slice::from_ref(&b), now)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].job.id, b);
    assert!(
        q.lease_ids(&t, std::slice::from_ref(&b), now)
            .await
            .unwrap()
            .is_empty(),
        "already leased"
    );
    assert_eq!(q.peek(&t, 10).await.unwrap()[0].id, a);
}

#[tokio::test]
async fn lease_ids_reads_the_jobs_as_leased_in_one_round_trip_even_after_a_script_flush() {
    let q = testing::queue("lease-ids-flush");
    let t = tenant("t");
    let now = now_ms();
    let id = q.submit(&t, spec("a"), now).await.unwrap().job().id.clone();
    // Redis forgot every script (a restart, SCRIPT FLUSH): the pipelined
    // lease loads it again instead of failing.
    let mut conn = testing::pool(&testing::redis_url()).get().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let leases = q
        .lease_ids(&t, std::slice::from_ref(&id), now)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    let job = &leases[0].job;
    assert_eq!(job.state, JobState::Dispatching, "read after the lease");
    assert_eq!(leases[0].fence, 1);
    assert_eq!(job.history.len(), 2);
    assert_eq!(job.reason, "leased for dispatch");
}

#[tokio::test]
async fn dispatching_jobs_are_listed_and_walked_through_the_lease_index() {
    let q = testing::queue("dispatching-index");
    let t = tenant("t");
    let now = now_ms();
    let ids: Vec<_> = q
        .submit_many(&t, vec![spec("a"), spec("b"), spec("c")], now)
        .await
        .unwrap()
        .iter()
        .map(|o| o.job().id.clone())
        .collect();
    let leases = q.lease(&t, 2, now).await.unwrap();
    let leased: Vec<_> = leases.iter().map(|l| l.job.id.clone()).collect();
    assert_eq!(leased, ids[..2]);
    let filter = ListFilter {
        state: Some(JobState::Dispatching),
        ..ListFilter::default()
    };
    let listed: Vec<_> = q
        .list(&filter, None, 10)
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, vec![ids[1].clone(), ids[0].clone()], "newest first");
    let mut walked = q.ids_in_state(JobState::Dispatching, 10).await.unwrap();
    walked.sort();
    let mut expected = ids[..2].to_vec();
    expected.sort();
    assert_eq!(walked, expected);
    assert!(q.ids_in_state(JobState::Queued, 10).await.unwrap() == ids[2..]);

    q.finish_leased(&leases[..1], JobState::Failed, "done", now)
        .await
        .unwrap();
    assert_eq!(
        q.ids_in_state(JobState::Dispatching, 10).await.unwrap(),
        ids[1..2]
    );
    assert_eq!(
        q.ids_in_state(JobState::Failed, 10).await.unwrap(),
        ids[..1]
    );
    let listed = q.list(&filter, None, 10).await.unwrap().jobs;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ids[1]);
}
