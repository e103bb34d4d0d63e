//! The queue without HTTP: submit -> lease -> complete, and memory per job.

use std::time::Instant;

use anyhow::Context;
use raybroker_core::{JobSpec, JobState, TenantId};
use raybroker_queue::testing::{now_ms, pool, unique_prefix};
use raybroker_queue::{JobQueue, QueueConfig};
use redis::AsyncCommands;

use crate::typical_spec;

/// Runs `jobs` jobs through submit, lease and finish in calls of `batch`
/// jobs from `workers` concurrent tasks (one tenant each); returns jobs/s.
pub async fn run(url: &str, jobs: usize, batch: usize, workers: usize) -> anyhow::Result<f64> {
    let prefix = unique_prefix("bench-cycle");
    let (queue, specs) = harness(url, &prefix, batch, workers)?;
    let per_worker = jobs / workers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let queue = queue.clone();
        let specs = specs.clone();
        tasks.push(tokio::spawn(async move {
            let tenant = TenantId::new(&format!("tenant-{w}")).context("tenant name")?;
            let mut done = 0;
            while done < per_worker {
                let n = batch.min(per_worker - done);
                queue
                    .submit_many(&tenant, specs[..n].to_vec(), now_ms())
                    .await?;
                let leases = queue.lease(&tenant, n, now_ms()).await?;
                queue
                    .finish_leased(
                        &leases,
                        JobState::Failed,
                        "benchmark: completed without a cluster",
                        now_ms(),
                    )
                    .await?;
                done += leases.len();
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    delete_prefix(url, &prefix).await?;
    Ok(rate)
}

/// The cycle's queue under `prefix` and one batch of typical specs (built
/// before any clock starts: the figures are the queue's). The queue connects
/// as the service does: shared multiplexed connections (one per worker here)
/// with the service's 10 s answer timeout, not pool checkouts with
/// redis-rs's short default (a 256-job call on a loaded machine can take
/// longer).
pub fn harness(
    url: &str,
    prefix: &str,
    batch: usize,
    workers: usize,
) -> anyhow::Result<(JobQueue, Vec<JobSpec>)> {
    let queue = JobQueue::with_shared_connections(
        url,
        workers,
        pool(url),
        QueueConfig {
            key_prefix: prefix.to_string(),
            ..QueueConfig::default()
        },
    )?;
    let specs = (0..batch)
        .map(|i| {
            let mut spec = typical_spec(i);
            spec.idempotency_key = None;
            spec
        })
        .collect();
    Ok((queue, specs))
}

/// Queues `jobs` typical jobs under a fresh prefix and returns Redis's
/// used-memory growth per job, and the MEMORY USAGE of one job hash.
pub async fn memory_per_job(url: &str, jobs: usize) -> anyhow::Result<(f64, u64)> {
    let prefix = unique_prefix("bench-memory");
    let queue = JobQueue::new(
        pool(url),
        QueueConfig {
            key_prefix: prefix.clone(),
            ..QueueConfig::default()
        },
    );
    let tenant = TenantId::new("robotics").context("tenant name")?;
    let redis = pool(url);
    let mut conn = redis.get().await?;
    // The event stream is bounded, so it is not per-job memory; trim it to
    // zero for the measurement by using a fresh prefix and deleting after.
    let before = used_memory(&mut conn).await?;
    let mut first = None;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(500) {
        let specs = chunk.iter().map(|i| typical_spec(*i)).collect();
        let out = queue.submit_many(&tenant, specs, now_ms()).await?;
        first.get_or_insert_with(|| out[0].job().id.clone());
    }
    let events_bytes: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(queue.keys().events())
        .query_async(&mut conn)
        .await?;
    let after = used_memory(&mut conn).await?;
    let id = first.context("no job was submitted")?;
    let hash: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(queue.keys().job(&id))
        .query_async(&mut conn)
        .await?;
    drop(conn);
    delete_prefix(url, &prefix).await?;
    let grown = after
        .saturating_sub(before)
        .saturating_sub(events_bytes.unwrap_or(0));
    Ok((grown as f64 / jobs as f64, hash.unwrap_or(0)))
}

async fn used_memory(conn: &mut deadpool_redis::Connection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// Removes every key of a benchmark run (SCAN + UNLINK, never FLUSHDB).
pub async fn delete_prefix(url: &str, prefix: &str) -> anyhow::Result<()> {
    let redis = pool(url);
    let mut conn = redis.get().await?;
    let pattern = format!("{prefix}:*");
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        keys
    };
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("UNLINK")
            .arg(chunk)
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}
