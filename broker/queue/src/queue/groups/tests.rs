//! Group storage against the real test Redis, one key prefix per test.

use raybroker_core::group::GroupState;
use raybroker_core::{JobId, TenantId};

use crate::testing::{now_ms, queue};
use crate::{GroupCancelEffect, GroupCursor, GroupKind};

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
        .list_groups(&tenant(), GroupKind::Group, None, 10)
        .await
        .unwrap();
    assert_eq!(groups.groups.len(), 1);
    assert_eq!(groups.next_cursor, None);
    let sweeps = q
        .list_groups(&tenant(), GroupKind::Sweep, None, 10)
        .await
        .unwrap();
    assert_eq!(sweeps.groups[0].id, sweep);

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

#[tokio::test]
async fn listings_page_through_every_group_of_a_kind_newest_first() {
    let q = queue("groups-pages");
    let now = now_ms();
    // 7 groups and 5 sweeps interleaved; three groups share a millisecond.
    let mut groups = Vec::new();
    for i in 0..12u64 {
        let (kind, at) = if i % 2 == 0 || i == 11 {
            (GroupKind::Group, now + i.min(4))
        } else {
            (GroupKind::Sweep, now + i)
        };
        let id = q
            .create_group(&tenant(), kind, &format!("g{i}"), "{}", 1, at)
            .await
            .unwrap();
        if kind == GroupKind::Group {
            groups.push((at, id));
        }
    }
    // Newest first; within a millisecond, by id descending.
    groups.sort_by(|a, b| b.cmp(a));
    let expected: Vec<_> = groups.into_iter().map(|(_, id)| id).collect();
    assert_eq!(expected.len(), 7);

    let mut seen = Vec::new();
    let mut cursor: Option<GroupCursor> = None;
    let mut pages = 0;
    loop {
        let page = q
            .list_groups(&tenant(), GroupKind::Group, cursor.as_ref(), 3)
            .await
            .unwrap();
        pages += 1;
        assert!(page.groups.len() <= 3);
        assert!(page.groups.iter().all(|g| g.kind == GroupKind::Group));
        seen.extend(page.groups.into_iter().map(|g| g.id));
        match page.next_cursor {
            // The cursor survives its text form, as clients pass it back.
            Some(next) => cursor = Some(next.to_string().parse().unwrap()),
            None => break,
        }
        assert!(pages < 10, "the listing does not end");
    }
    assert_eq!(seen, expected, "every group once, newest first");
    // A new group does not shift a listing in progress.
    let first = q
        .list_groups(&tenant(), GroupKind::Group, None, 2)
        .await
        .unwrap();
    q.create_group(&tenant(), GroupKind::Group, "late", "{}", 1, now + 100)
        .await
        .unwrap();
    let rest = q
        .list_groups(&tenant(), GroupKind::Group, first.next_cursor.as_ref(), 10)
        .await
        .unwrap();
    let ids: Vec<_> = first
        .groups
        .iter()
        .chain(&rest.groups)
        .map(|g| g.id.clone())
        .collect();
    assert_eq!(ids, expected);

    for bad in ["", "12", "x-01JDQ3ZK8V6X9T2M4N5P7R8S9A", "12-not-an-id"] {
        let err = bad.parse::<GroupCursor>().unwrap_err();
        assert!(err.contains("next_cursor"), "{err}");
    }
}
