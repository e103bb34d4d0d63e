//! Random sequences of queue operations, including stale and illegal ones,
//! never break the queue's invariants: every job sits in exactly the index of
//! its state (for dispatching jobs, the lease set: they have no index of their
//! own), the ready queues hold exactly the queued jobs, and every recorded
//! change is allowed by the lifecycle table.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use raybroker_core::{JobSpec, JobState, TenantId};
use raybroker_queue::testing;
use raybroker_queue::{JobQueue, Lease};
use redis::AsyncCommands;

#[derive(Clone, Debug)]
enum Op {
    Submit(u8),
    Lease(u8, usize),
    Release(usize),
    Attempt(usize),
    Submitted(usize),
    Update(usize, JobState),
    Cancel(usize),
    Reclaim,
}

fn op() -> impl Strategy<Value = Op> {
    let target = prop::sample::select(vec![
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Dispatching,
    ]);
    prop_oneof![
        3 => (0u8..2).prop_map(Op::Submit),
        2 => ((0u8..2), 1usize..3).prop_map(|(t, n)| Op::Lease(t, n)),
        1 => (0usize..8).prop_map(Op::Release),
        2 => (0usize..8).prop_map(Op::Attempt),
        2 => (0usize..8).prop_map(Op::Submitted),
        3 => ((0usize..8), target).prop_map(|(i, s)| Op::Update(i, s)),
        1 => (0usize..8).prop_map(Op::Cancel),
        1 => Just(Op::Reclaim),
    ]
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let q = testing::queue("prop");
    let tenants = [TenantId::new("a").unwrap(), TenantId::new("b").unwrap()];
    let mut now = 1_700_000_000_000u64;
    let mut jobs = Vec::new();
    let mut leases: Vec<Lease> = Vec::new();
    for op in ops {
        now += 1_000;
        // Errors are expected (stale leases, illegal changes); the invariants
        // must hold whatever happened.
        match op {
            Op::Submit(t) => {
                let spec = JobSpec {
                    entrypoint: "x".into(),
                    ..JobSpec::default()
                };
                jobs.push(
                    q.submit(&tenants[t as usize], spec, now)
                        .await
                        .unwrap()
                        .job()
                        .id
                        .clone(),
                );
            }
            Op::Lease(t, n) => leases.extend(q.lease(&tenants[t as usize], n, now).await.unwrap()),
            Op::Release(i) => {
                if let Some(l) = leases.get(i) {
                    let _ = q.release(l, "release", now).await;
                }
            }
            Op::Attempt(i) => {
                if let Some(l) = leases.get(i) {
                    let _ = q.record_attempt(l, "ray-a", now).await;
                }
            }
            Op::Submitted(i) => {
                if let Some(l) = leases.get(i) {
                    let _ = q.mark_submitted(l, "ok", now).await;
                }
            }
            Op::Update(i, to) => {
                if let Some(id) = jobs.get(i) {
                    let attempt = q.get(id).await.unwrap().unwrap().attempt;
                    let _ = q.update_attempt(id, attempt, to, "update", None, now).await;
                }
            }
            Op::Cancel(i) => {
                if let Some(id) = jobs.get(i) {
                    let _ = q.cancel(id, "cancel", now).await;
                }
            }
            Op::Reclaim => {
                now += 60_000;
                q.reclaim_expired(now).await.unwrap();
            }
        }
        check(&q, &tenants).await?;
    }
    Ok(())
}

async fn check(q: &JobQueue, tenants: &[TenantId]) -> Result<(), TestCaseError> {
    let keys = q.keys();
    let mut conn = testing::pool(&testing::redis_url()).get().await.unwrap();
    let all: Vec<String> = conn.zrange(keys.all_jobs(), 0, -1).await.unwrap();
    let mut by_state: HashMap<JobState, BTreeSet<String>> = HashMap::new();
    for state in JobState::ALL {
        let index = match state {
            JobState::Dispatching => keys.leases(),
            state => keys.in_state(state),
        };
        let ids: Vec<String> = conn.zrange(index, 0, -1).await.unwrap();
        by_state.insert(state, ids.into_iter().collect());
    }
    let mut queued_by_tenant: HashMap<String, BTreeSet<String>> = HashMap::new();
    for id in &all {
        let job = q.get(&id.parse().unwrap()).await.unwrap().unwrap();
        for state in JobState::ALL {
            prop_assert_eq!(
                by_state[&state].contains(id),
                state == job.state,
                "index of {} for {}",
                state,
                id
            );
        }
        if job.state == JobState::Queued {
            queued_by_tenant
                .entry(job.tenant.to_string())
                .or_default()
                .insert(id.clone());
        }
        for change in &job.history {
            if let Some(from) = change.from {
                prop_assert!(
                    from == change.to || from.check(change.to).is_ok(),
                    "{:?}",
                    change
                );
            }
        }
        let cancels: bool = conn.sismember(keys.cancels(), id).await.unwrap();
        if cancels {
            prop_assert!(job.cancel_requested && !job.state.is_terminal());
        }
    }
    for tenant in tenants {
        let ready: Vec<String> = conn.zrange(keys.ready(tenant), 0, -1).await.unwrap();
        let ready: BTreeSet<String> = ready.into_iter().collect();
        let expected = queued_by_tenant
            .get(tenant.as_str())
            .cloned()
            .unwrap_or_default();
        prop_assert_eq!(ready, expected);
    }
    let unused: bool = conn
        .exists(keys.in_state(JobState::Dispatching))
        .await
        .unwrap();
    prop_assert!(!unused, "nothing writes a dispatching index");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn random_operations_keep_the_queue_consistent(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}
