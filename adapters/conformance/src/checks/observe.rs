//! Checks of what the broker observes: capacity, logs, ownership.

use raybroker_adapter::{ClusterAdapter, LogChunk};

use crate::support::{request, submit_new, tidy, wait_final};
use crate::Fixture;

use super::CheckResult;

/// A snapshot answers, lists nodes, and never shows more free than total.
pub async fn snapshot_is_consistent(
    adapter: &dyn ClusterAdapter,
    _fixture: &Fixture,
) -> CheckResult {
    let snapshot = adapter
        .snapshot()
        .await
        .map_err(|e| format!("snapshot failed: {e}"))?;
    if snapshot.nodes.is_empty() {
        return Err("the snapshot lists no live node".to_string());
    }
    if snapshot.version.trim().is_empty() {
        return Err("the snapshot has no version".to_string());
    }
    for node in &snapshot.nodes {
        let (total, free) = (&node.total, &node.free);
        let over = free.cpus > total.cpus || free.gpus > total.gpus || free.memory > total.memory;
        let custom_over = free
            .custom
            .iter()
            .find(|(name, amount)| total.custom.get(*name).is_none_or(|t| *amount > t));
        if over || custom_over.is_some() {
            return Err(format!(
                "node {} shows more free than it has: total {total:?}, free {free:?}",
                node.id
            ));
        }
    }
    Ok(())
}

/// Log reads with a cursor: the second read returns only text written after
/// the first, the cursor never moves backwards, and reading at the end
/// returns nothing new.
pub async fn log_cursor_advances(adapter: &dyn ClusterAdapter, fixture: &Fixture) -> CheckResult {
    let id = fixture.next_id("log_cursor_advances");
    let outcome = log_cursor_advances_on(adapter, fixture, &id).await;
    tidy(adapter, fixture, &id).await;
    outcome
}

async fn log_cursor_advances_on(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
    id: &str,
) -> CheckResult {
    let (first, second) = (
        &fixture.entrypoints.first_marker,
        &fixture.entrypoints.second_marker,
    );
    let entrypoint = &fixture.entrypoints.logs_twice;
    if entrypoint.contains(first.as_str()) || entrypoint.contains(second.as_str()) {
        return Err(
            "fixture error: the logs_twice entrypoint contains a marker literally, \
                    and Ray echoes the entrypoint into the log"
                .to_string(),
        );
    }
    submit_new(adapter, fixture, id, entrypoint).await?;

    // Read while the job runs until the first line shows.
    let deadline = tokio::time::Instant::now() + fixture.timeouts.start;
    let mut cursor = 0;
    let mut seen = String::new();
    while !seen.contains(first.as_str()) {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the log of {id} did not show {first:?} within {:.0} s; it reads {seen:?}",
                fixture.timeouts.start.as_secs_f64()
            ));
        }
        tokio::time::sleep(fixture.timeouts.poll).await;
        let chunk = read_log(adapter, id, cursor).await?;
        if chunk.next_cursor < cursor {
            return Err(format!(
                "the log cursor of {id} went back from {cursor} to {}",
                chunk.next_cursor
            ));
        }
        seen.push_str(&chunk.text);
        cursor = chunk.next_cursor;
    }
    if seen.contains(second.as_str()) {
        return Err(format!(
            "the first log reads of {id} already show {second:?}: \
             the backend did not show the log while the job ran"
        ));
    }

    // Once the job ended, the rest comes from the cursor, and only the rest.
    wait_final(adapter, fixture, id, fixture.timeouts.finish).await?;
    let rest = read_log(adapter, id, cursor).await?;
    if !rest.text.contains(second.as_str()) || rest.text.contains(first.as_str()) {
        return Err(format!(
            "reading from cursor {cursor} returned {:?}; expected only the text after {first:?}",
            rest.text
        ));
    }
    if rest.next_cursor != cursor + rest.text.len() as u64 {
        return Err(format!(
            "reading {} bytes from cursor {cursor} moved the cursor to {}",
            rest.text.len(),
            rest.next_cursor
        ));
    }
    let whole = read_log(adapter, id, 0).await?;
    let joined = format!("{seen}{}", rest.text);
    if whole.text != joined {
        return Err(format!(
            "the whole log {:?} is not the reads joined {joined:?}",
            whole.text
        ));
    }
    let end = read_log(adapter, id, rest.next_cursor).await?;
    if !end.text.is_empty() || end.next_cursor != rest.next_cursor {
        return Err(format!(
            "reading at the end ({}) returned {:?} and cursor {}; \
             expected nothing and the same cursor",
            rest.next_cursor, end.text, end.next_cursor
        ));
    }
    Ok(())
}

async fn read_log(adapter: &dyn ClusterAdapter, id: &str, cursor: u64) -> Result<LogChunk, String> {
    adapter
        .logs(id, cursor)
        .await
        .map_err(|e| format!("logs of {id} from {cursor} failed: {e}"))
}

/// `list_owned` shows our job and not one submitted under another origin
/// (and the other origin's adapter sees the reverse).
pub async fn list_owned_sees_only_our_origin(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
) -> CheckResult {
    let foreign = fixture.foreign.as_ref();
    let ours = fixture.next_id("list_owned_ours");
    let theirs = fixture.next_id("list_owned_theirs");
    let outcome = async {
        submit_new(adapter, fixture, &ours, &fixture.entrypoints.succeeds).await?;
        let other = request(fixture, &theirs, &fixture.entrypoints.succeeds);
        foreign
            .submit(&other)
            .await
            .map_err(|e| format!("submit through the foreign-origin adapter failed: {e}"))?;
        for (who, lister, expected, unexpected) in [
            ("the tested adapter", adapter, &ours, &theirs),
            ("the foreign-origin adapter", foreign, &theirs, &ours),
        ] {
            let jobs = lister
                .list_owned()
                .await
                .map_err(|e| format!("list_owned of {who} failed: {e}"))?;
            let listed = |id: &str| jobs.iter().any(|job| job.submission_id == id);
            if !listed(expected) || listed(unexpected) {
                return Err(format!(
                    "list_owned of {who} should show {expected} and not {unexpected} \
                     (another origin); it shows the first: {}, the second: {}",
                    listed(expected),
                    listed(unexpected)
                ));
            }
        }
        Ok(())
    }
    .await;
    tidy(adapter, fixture, &ours).await;
    tidy(foreign, fixture, &theirs).await;
    outcome
}
