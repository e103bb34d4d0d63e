//! Reading the queue back against a real Redis: listings with filters and
//! cursors, the event stream, job logs.

mod common;

use std::time::Duration;

use common::{spec, tenant};
use raybroker_core::JobState;
use raybroker_queue::testing::{self, now_ms};
use raybroker_queue::{JobQueue, ListFilter, PeekCache, QueueConfig};

#[tokio::test]
async fn listing_pages_and_filters() {
    let q = testing::queue("list");
    let (a, b) = (tenant("a"), tenant("b"));
    let now = now_ms();
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut s = spec(&format!("job {i}"));
        s.labels.insert(
            "parity".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        );
        ids.push(q.submit(&a, s, now).await.unwrap().job().id.clone());
    }
    q.submit(&b, spec("other tenant"), now).await.unwrap();

    let filter = ListFilter {
        tenant: Some(a.clone()),
        ..ListFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = q.list(&filter, cursor.as_deref(), 3).await.unwrap();
        assert!(page.jobs.len() <= 3);
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every job once");

    let odd = ListFilter {
        labels: vec![("parity".into(), "odd".into())],
        ..filter.clone()
    };
    assert_eq!(q.list(&odd, None, 50).await.unwrap().jobs.len(), 3);
    let everyone = q.list(&ListFilter::default(), None, 50).await.unwrap();
    assert_eq!(everyone.jobs.len(), 8);
    q.cancel(&ids[0], "x", now).await.unwrap();
    let cancelled = ListFilter {
        state: Some(JobState::Cancelled),
        ..filter
    };
    let page = q.list(&cancelled, None, 50).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    assert!(q
        .list(&ListFilter::default(), Some("not-a-cursor"), 5)
        .await
        .is_err());
}

#[tokio::test]
async fn events_stream_every_change_in_order() {
    let q = testing::queue("events");
    let t = tenant("t");
    let start = q.last_event_cursor().await.unwrap();
    let now = now_ms();
    let id = q.submit(&t, spec("x"), now).await.unwrap().job().id.clone();
    q.cancel(&id, "by user", now).await.unwrap();
    let events = q
        .events_after(&start, Duration::from_millis(100), 10)
        .await
        .unwrap();
    let states: Vec<_> = events
        .iter()
        .map(|e| (e.transition.from, e.transition.to))
        .collect();
    assert_eq!(
        states,
        vec![
            (None, JobState::Queued),
            (Some(JobState::Queued), JobState::Cancelled)
        ]
    );
    assert!(events.iter().all(|e| e.job_id == id && e.tenant == t));
    let after = q
        .events_after(&events[1].cursor, Duration::from_millis(50), 10)
        .await
        .unwrap();
    assert!(after.is_empty());
}

#[tokio::test]
async fn a_batch_is_one_stream_entry_read_event_by_event() {
    let q = testing::queue("events-batch");
    let t = tenant("t");
    let start = q.last_event_cursor().await.unwrap();
    let specs = (0..3).map(|i| spec(&format!("b{i}"))).collect();
    let ids: Vec<_> = q
        .submit_many(&t, specs, now_ms())
        .await
        .unwrap()
        .iter()
        .map(|o| o.job().id.clone())
        .collect();
    let mut conn = testing::pool(&testing::redis_url()).get().await.unwrap();
    let entries: usize = redis::cmd("XLEN")
        .arg(q.keys().events())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries, 1, "one script call, one stream entry");

    // One event per read: the cursor steps inside the entry, then past it.
    let mut cursor = start;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let events = q.events_after(&cursor, Duration::ZERO, 1).await.unwrap();
        assert_eq!(events.len(), 1);
        seen.push(events[0].job_id.clone());
        cursor = events[0].cursor.clone();
    }
    assert_eq!(seen, ids);
    assert!(
        !cursor.contains('.'),
        "the last event's cursor is past the entry: {cursor}"
    );
    assert!(q
        .events_after(&cursor, Duration::ZERO, 10)
        .await
        .unwrap()
        .is_empty());
    // A cursor inside the entry resumes with the rest of it, then what follows.
    let all = q
        .events_after(&q.last_event_cursor().await.unwrap(), Duration::ZERO, 10)
        .await
        .unwrap();
    assert!(all.is_empty());
    q.cancel(&ids[0], "by user", now_ms()).await.unwrap();
    let first = q.events_after("0-0", Duration::ZERO, 1).await.unwrap();
    let rest = q
        .events_after(&first[0].cursor, Duration::ZERO, 10)
        .await
        .unwrap();
    let rest: Vec<_> = rest
        .iter()
        .map(|e| (e.job_id.clone(), e.transition.to))
        .collect();
    assert_eq!(
        rest,
        vec![
            (ids[1].clone(), JobState::Queued),
            (ids[2].clone(), JobState::Queued),
            (ids[0].clone(), JobState::Cancelled),
        ]
    );
    assert!(q
        .events_after("not-a-cursor", Duration::ZERO, 1)
        .await
        .is_err());
}

#[tokio::test]
async fn logs_are_kept_once_per_stretch_and_capped() {
    let prefix = testing::unique_prefix("logs");
    let config = QueueConfig {
        key_prefix: prefix,
        log_cap_bytes: 16,
        ..QueueConfig::default()
    };
    let q = JobQueue::new(testing::pool(&testing::redis_url()), config);
    let t = tenant("t");
    let now = now_ms();
    let id = q.submit(&t, spec("x"), now).await.unwrap().job().id.clone();
    let lease = q.lease(&t, 1, now).await.unwrap().remove(0);
    q.record_attempt(&lease, "ray-a", now).await.unwrap();
    assert_eq!(q.log_cursor(&id, 1).await.unwrap(), 0);
    assert!(q.append_logs(&id, 1, 0, 6, "hello\n").await.unwrap());
    assert!(
        !q.append_logs(&id, 1, 0, 6, "hello\n").await.unwrap(),
        "a repeated fetch is dropped"
    );
    assert!(
        !q.append_logs(&id, 2, 0, 3, "no\n").await.unwrap(),
        "not the current attempt"
    );
    assert_eq!(q.log_cursor(&id, 1).await.unwrap(), 6);
    assert_eq!(q.logs(&id, 0).await.unwrap(), ("hello\n".to_string(), 6));
    assert!(q
        .append_logs(&id, 1, 6, 18, "world, again\n")
        .await
        .unwrap());
    let (text, _) = q.logs(&id, 0).await.unwrap();
    assert_eq!(text.len(), 16, "only the newest bytes are kept");
    assert!(text.ends_with("world, again\n"));
}

#[tokio::test]
async fn cached_peeks_read_only_new_or_changed_jobs_and_show_every_change() {
    let q = testing::queue("peek-cache");
    let t = tenant("t");
    let now = now_ms();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(
            q.submit(&t, spec(name), now)
                .await
                .unwrap()
                .job()
                .id
                .clone(),
        );
    }
    let mut cache = PeekCache::new();
    let peeked = |jobs: &[std::sync::Arc<raybroker_core::Job>]| -> Vec<_> {
        jobs.iter().map(|j| j.id.clone()).collect()
    };

    let first = q.peek_cached(&t, 10, &mut cache).await.unwrap();
    assert_eq!(peeked(&first), ids);
    assert_eq!(cache.hits_and_misses(), (0, 3), "all new: read whole");
    cache.end_round();
    let second = q.peek_cached(&t, 10, &mut cache).await.unwrap();
    assert_eq!(peeked(&second), ids);
    assert_eq!(cache.hits_and_misses(), (3, 3), "unchanged: from the cache");
    let plain: Vec<_> = q.peek(&t, 10).await.unwrap();
    assert_eq!(
        second.iter().map(|j| (**j).clone()).collect::<Vec<_>>(),
        plain,
        "a cached peek answers what a plain peek does"
    );
    cache.end_round();

    // b goes through a lease and back: read again, showing both changes.
    let lease = q.lease_ids(&t, &ids[1..2], now).await.unwrap().remove(0);
    q.release(&lease, "no capacity after all", now)
        .await
        .unwrap();
    // c is cancelled: no longer peeked.
    q.cancel(&ids[2], "not needed", now).await.unwrap();
    let third = q.peek_cached(&t, 10, &mut cache).await.unwrap();
    assert_eq!(peeked(&third), ids[..2].to_vec());
    assert_eq!(cache.hits_and_misses(), (4, 4), "only b was read again");
    let b = &third[1];
    assert_eq!(b.state, JobState::Queued);
    assert_eq!(b.history.len(), 3, "{:?}", b.history);
    assert_eq!(b.reason, "no capacity after all");
    cache.end_round();
    assert_eq!(cache.len(), 2, "c left the heads, so the cache");

    // A round that sees no queued job empties the cache.
    q.cancel(&ids[0], "not needed", now).await.unwrap();
    q.cancel(&ids[1], "not needed", now).await.unwrap();
    assert!(q.peek_cached(&t, 10, &mut cache).await.unwrap().is_empty());
    cache.end_round();
    assert!(cache.is_empty());
}
