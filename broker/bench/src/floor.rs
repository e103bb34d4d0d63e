//! The floor: the least a durable, fenced queue must do per job, run the
//! way the queue cycle runs, as a yardstick for it.
//!
//! Three scripts keep only what no such queue can drop: the job (its spec
//! and its state) in one hash, a per-tenant ready index, and leases with a
//! fencing token and an expiry index. Submit writes the hash and the ready
//! entry; lease takes the best ready ids, bumps each fence and writes the
//! state, indexes the lease; complete checks state and fence and writes the
//! final state, drops the lease. No history, no events, no listing or
//! per-state indexes, no idempotency keys, nothing returned but ids and
//! fences. The harness is the cycle's: the same workers, one tenant and one
//! shared connection each, the same batch size, the same durable Redis.

use std::time::Instant;

use anyhow::Context;
use raybroker_queue::testing::{now_ms, unique_prefix};
use redis::Script;

use crate::queue_cycle::delete_prefix;
use crate::typical_spec;

const SUBMIT: &str = r#"
local ready, base, now = KEYS[1], ARGV[1], ARGV[2]
local seq = redis.call('INCRBY', KEYS[2], #ARGV - 2) - (#ARGV - 2)
local add = {}
for i = 3, #ARGV do
  seq = seq + 1
  local id = string.format('%d', seq)
  redis.call('HSET', base .. id, 'state', 'queued', 'fence', '0', 'at', now, 'spec', ARGV[i])
  add[#add + 1] = id
  add[#add + 1] = id
end
redis.call('ZADD', ready, unpack(add))
return #ARGV - 2
"#;

const LEASE: &str = r#"
local ready, leases, base, expires, n = KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGE', ready, 0, n - 1)
if #ids == 0 then return {} end
redis.call('ZREM', ready, unpack(ids))
local out, add = {}, {}
for _, id in ipairs(ids) do
  local fence = redis.call('HINCRBY', base .. id, 'fence', 1)
  redis.call('HSET', base .. id, 'state', 'dispatching')
  add[#add + 1] = expires
  add[#add + 1] = id
  out[#out + 1] = {id, fence}
end
redis.call('ZADD', leases, unpack(add))
return out
"#;

const COMPLETE: &str = r#"
local leases, base = KEYS[1], ARGV[1]
local done, rem = 0, {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local f = redis.call('HMGET', base .. id, 'state', 'fence')
  if f[1] == 'dispatching' and f[2] == ARGV[i + 1] then
    redis.call('HSET', base .. id, 'state', 'failed')
    rem[#rem + 1] = id
    done = done + 1
  end
end
if #rem > 0 then redis.call('ZREM', leases, unpack(rem)) end
return done
"#;

/// Runs `jobs` jobs through the floor's submit, lease and complete in calls
/// of `batch` jobs from `workers` concurrent tasks; returns jobs/s.
pub async fn run(url: &str, jobs: usize, batch: usize, workers: usize) -> anyhow::Result<f64> {
    let prefix = unique_prefix("bench-floor");
    let client = redis::Client::open(url)?;
    let spec = serde_json::to_string(&typical_spec(0))?;
    let per_worker = jobs / workers;
    let mut conns = Vec::new();
    for _ in 0..workers {
        conns.push(client.get_multiplexed_async_connection().await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut conn) in conns.into_iter().enumerate() {
        let (submit, lease, complete) = (
            Script::new(SUBMIT),
            Script::new(LEASE),
            Script::new(COMPLETE),
        );
        let prefix = prefix.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            let base = format!("{prefix}:t{w}:job:");
            let (ready, seq, leases) = (
                format!("{prefix}:t{w}:ready"),
                format!("{prefix}:t{w}:seq"),
                format!("{prefix}:leases"),
            );
            let mut done = 0;
            while done < per_worker {
                let n = batch.min(per_worker - done);
                let mut call = submit.key(&ready);
                call.key(&seq).arg(&base).arg(now_ms());
                for _ in 0..n {
                    call.arg(&spec);
                }
                let _: usize = call.invoke_async(&mut conn).await?;
                let expires = now_ms() + 60_000;
                let leased: Vec<(String, u64)> = lease
                    .key(&ready)
                    .key(&leases)
                    .arg(&base)
                    .arg(expires)
                    .arg(n)
                    .invoke_async(&mut conn)
                    .await?;
                let mut call = complete.key(&leases);
                call.arg(&base);
                for (id, fence) in &leased {
                    call.arg(id).arg(fence);
                }
                let finished: usize = call.invoke_async(&mut conn).await?;
                anyhow::ensure!(finished == leased.len(), "the floor lost a lease");
                done += finished;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?.context("a floor worker")?;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    delete_prefix(url, &prefix).await?;
    Ok(rate)
}
