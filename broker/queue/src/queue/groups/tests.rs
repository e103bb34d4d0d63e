//! Group storage against the real test Redis, one key prefix per test.

use raybroker_core::group::GroupState;
use raybroker_core::{JobId, TenantId};

use crate::testing::{now_ms, queue};
use crate::{GroupCancelEffect, GroupKind};

fn tenant() -> TenantId {
    TenantId::new("robotics").unwrap()
}

#[tokio::test]
async fn a_group_is_stored_listed_and_ended_once() {
    let q = queue("groups-life");
    let now = now_ms();
    let id = q
        .create_group(
            &tenant(),
            GroupKind::Group,
            "seeds",
            r#"{"jobs":[]}"#,
            3,
            now,
        )
        .await
        .unwrap();
    let record = q.group(&id).await.unwrap().expect("stored");
    assert_eq!(record.state, GroupState::Running);
    assert_eq!(record.count, 3);
    assert_eq!(record.kind, GroupKind::Group);
    assert_eq!(q.active_groups().await.unwrap(), std::slice::from_ref(&id));
    let sweep = q
        .create_group(&tenant(), GroupKind::Sweep, "lr", "{}", 0, now + 1)
        .await
        .unwrap();
    let groups = q
        .list_groups(&tenant(), GroupKind::Group, 10)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    let sweeps = q
        .list_groups(&tenant(), GroupKind::Sweep, 10)
        .await
        .unwrap();
    assert_eq!(sweeps[0].id, sweep);

    assert!(q
        .finish_group(&id, GroupState::Failed, "job 1 failed", now + 2)
        .await
        .unwrap());
    // The first final state stays.
    assert!(!q
        .finish_group(&id, GroupState::Succeeded, "late", now + 3)
        .await
        .unwrap());
    let record = q.group(&id).await.unwrap().unwrap();
    assert_eq!(record.state, GroupState::Failed);
    assert_eq!(record.reason, "job 1 failed");
    assert_eq!(q.active_groups().await.unwrap(), [sweep]);
    assert_eq!(
        q.cancel_group(&id, "user", now + 4).await.unwrap(),
        GroupCancelEffect::AlreadyFinished
    );
}

#[tokio::test]
async fn members_and_trials_are_written_once() {
    let q = queue("groups-once");
    let now = now_ms();
    let id = q
        .create_group(&tenant(), GroupKind::Sweep, "s", "{}", 0, now)
        .await
        .unwrap();
    let first = JobId::generate(now);
    let second = JobId::generate(now);
    assert_eq!(q.record_group_member(&id, 0, &first).await.unwrap(), first);
    // A replay that created another id gets the first one back.
    assert_eq!(q.record_group_member(&id, 0, &second).await.unwrap(), first);
    assert_eq!(
        q.create_trial(&id, 0, r#"{"a":1}"#).await.unwrap(),
        r#"{"a":1}"#
    );
    assert_eq!(
        q.create_trial(&id, 0, r#"{"a":2}"#).await.unwrap(),
        r#"{"a":1}"#
    );
    q.update_trial(&id, 0, r#"{"a":3}"#, now + 1).await.unwrap();
    let record = q.group(&id).await.unwrap().unwrap();
    assert_eq!(record.members[&0], first);
    assert_eq!(record.trials[&0], r#"{"a":3}"#);

    assert_eq!(
        q.cancel_group(&id, "by user", now + 2).await.unwrap(),
        GroupCancelEffect::Requested
    );
    let record = q.group(&id).await.unwrap().unwrap();
    assert!(record.cancel_requested);
    assert_eq!(record.cancel_reason, "by user");
    assert_eq!(record.state, GroupState::Running);
}
