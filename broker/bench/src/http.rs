//! HTTP submit throughput and latency through the real service, started
//! in-process on a loopback port (the same `serve::run` production uses).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use raybroker::auth::hash_token;
use raybroker::config::Config;
use raybroker_queue::testing::unique_prefix;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::queue_cycle::delete_prefix;
use crate::typical_spec;

const TOKEN: &str = "bench-token-0123456789abcdef";

/// Figures of the HTTP run.
#[derive(Serialize, Debug, Default)]
pub struct HttpFigures {
    /// Accepted (201) submissions per second.
    pub jobs_per_s: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// 99.9th percentile latency.
    pub p999_ms: f64,
    /// Answers other than 201.
    pub errors: u64,
}

fn config(redis_url: &str, prefix: &str, connections: usize) -> anyhow::Result<Config> {
    let text = format!(
        r#"
version: 1
listen: 127.0.0.1:0
redis:
  url: {redis_url}
  key_prefix: {prefix}
  pool_size: {pool}
tenants:
  - name: bench
    token_sha256: "{hash}"
"#,
        pool = connections.max(8),
        hash = hash_token(TOKEN),
    );
    Ok(Config::from_yaml_str(&text, "benchmark")?)
}

/// Submits `jobs` typical jobs over `connections` concurrent keep-alive
/// connections and measures each request's latency.
pub async fn run(
    redis_url: &str,
    jobs: usize,
    connections: usize,
    limit: Duration,
) -> anyhow::Result<HttpFigures> {
    let prefix = unique_prefix("bench-http");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(raybroker::serve::run(
        config(redis_url, &prefix, connections)?,
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    // Bodies are serialised before the clock starts: the figure is the broker's.
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..jobs)
            .map(|i| serde_json::to_vec(&typical_spec(i)))
            .collect::<Result<_, _>>()?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (bodies, next, base) = (bodies.clone(), next.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            // One client per worker: one keep-alive connection each, as 64
            // separate submitters would have.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || Instant::now() > deadline {
                    break;
                }
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/v1/jobs"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(bodies[i].clone())
                    .send()
                    .await;
                let micros = sent.elapsed().as_micros() as u64;
                hist.record(micros.max(1))?;
                match response {
                    Ok(r) if r.status().as_u16() == 201 => ok += 1,
                    _ => errors += 1,
                }
            }
            anyhow::Ok((hist, ok, errors))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors) = (0u64, 0u64);
    for worker in workers {
        let (h, o, e) = worker.await??;
        hist.add(h)?;
        ok += o;
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    server.await.context("server task")??;
    delete_prefix(redis_url, &prefix).await?;
    Ok(HttpFigures {
        jobs_per_s: ok as f64 / elapsed,
        p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        p999_ms: hist.value_at_quantile(0.999) as f64 / 1000.0,
        errors,
    })
}
