//! What a dispatch round pays to look at deep queues: every tenant's first
//! 1,024 queued jobs read whole each round (`JobQueue::peek`, as before)
//! against reading only what changed (`JobQueue::peek_cached`, what the
//! dispatch loop does). Nothing is dispatched; the queues stay as they are,
//! as when jobs wait for capacity.

use std::time::Instant;

use anyhow::Context;
use raybroker_core::TenantId;
use raybroker_placement::MAX_HEAD_PER_TENANT;
use raybroker_queue::testing::{now_ms, pool, unique_prefix};
use raybroker_queue::{JobQueue, PeekCache, QueueConfig};
use serde::Serialize;

use crate::queue_cycle::delete_prefix;
use crate::{redis_cpu_s, typical_spec};

/// Mean milliseconds per round over all tenants, and the Redis main
/// thread's CPU per round, each way.
#[derive(Debug, Default, Serialize)]
pub struct Figures {
    pub tenants: usize,
    pub jobs_per_tenant: usize,
    pub rounds: usize,
    pub plain_ms_per_round: f64,
    pub plain_redis_ms_per_round: f64,
    pub cached_ms_per_round: f64,
    pub cached_redis_ms_per_round: f64,
}

/// Queues `jobs_per_tenant` jobs for each of `tenants` tenants, then times
/// `rounds` rounds of peeks at every tenant's head, plainly and through a
/// warm cache.
pub async fn run(
    url: &str,
    tenants: usize,
    jobs_per_tenant: usize,
    rounds: usize,
) -> anyhow::Result<Figures> {
    let prefix = unique_prefix("bench-heads");
    let queue = JobQueue::new(
        pool(url),
        QueueConfig {
            key_prefix: prefix.clone(),
            ..QueueConfig::default()
        },
    );
    let names: Vec<TenantId> = (0..tenants)
        .map(|t| TenantId::new(&format!("tenant-{t}")).context("tenant name"))
        .collect::<Result<_, _>>()?;
    for tenant in &names {
        for start in (0..jobs_per_tenant).step_by(500) {
            let specs = (start..(start + 500).min(jobs_per_tenant))
                .map(|i| {
                    let mut spec = typical_spec(i);
                    spec.idempotency_key = None;
                    spec
                })
                .collect();
            queue.submit_many(tenant, specs, now_ms()).await?;
        }
    }
    let max = MAX_HEAD_PER_TENANT;
    let (cpu, started) = (redis_cpu_s(url).await?, Instant::now());
    for _ in 0..rounds {
        for tenant in &names {
            anyhow::ensure!(!queue.peek(tenant, max).await?.is_empty(), "empty head");
        }
    }
    let plain = (
        started.elapsed().as_secs_f64(),
        redis_cpu_s(url).await? - cpu,
    );
    let mut cache = PeekCache::new();
    for tenant in &names {
        queue.peek_cached(tenant, max, &mut cache).await?; // warm it
    }
    cache.end_round();
    let (cpu, started) = (redis_cpu_s(url).await?, Instant::now());
    for _ in 0..rounds {
        for tenant in &names {
            let head = queue.peek_cached(tenant, max, &mut cache).await?;
            anyhow::ensure!(!head.is_empty(), "empty head");
        }
        cache.end_round();
    }
    let cached = (
        started.elapsed().as_secs_f64(),
        redis_cpu_s(url).await? - cpu,
    );
    delete_prefix(url, &prefix).await?;
    let per_round = |s: f64| s * 1000.0 / rounds as f64;
    Ok(Figures {
        tenants,
        jobs_per_tenant,
        rounds,
        plain_ms_per_round: per_round(plain.0),
        plain_redis_ms_per_round: per_round(plain.1),
        cached_ms_per_round: per_round(cached.0),
        cached_redis_ms_per_round: per_round(cached.1),
    })
}
