//! HTTP submit throughput and latency through the real service, started
//! in-process on a loopback port (the same `serve::run` production uses).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::handshake;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use raybroker::auth::hash_token;
use raybroker::config::Config;
use raybroker_queue::testing::unique_prefix;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};

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
    /// CPU time the load generator itself used (its own thread).
    pub client_cpu_s: f64,
    /// The load generator's CPU time per request, in microseconds.
    pub client_cpu_us_per_request: f64,
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
///
/// The load generator runs on a thread of its own (a one-thread runtime
/// with one bare hyper HTTP/1.1 connection per simulated submitter, bodies
/// serialised before the clock starts), apart from the broker's runtime, so
/// its CPU time can be reported: on two cores the client competes with the
/// broker and Redis, and what it takes is not the broker's.
pub async fn run(
    redis_url: &str,
    jobs: usize,
    connections: usize,
    limit: Duration,
) -> anyhow::Result<HttpFigures> {
    let prefix = unique_prefix("bench-http");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(raybroker::serve::run(
        config(redis_url, &prefix, connections)?,
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..jobs)
            .map(|i| serde_json::to_vec(&typical_spec(i)).map(Bytes::from))
            .collect::<Result<_, _>>()?,
    );
    let client = std::thread::spawn(move || -> anyhow::Result<ClientRun> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(load(addr, bodies, connections, limit))
    });
    let run = tokio::task::spawn_blocking(move || client.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the load generator thread panicked"))??;
    let _ = stop.send(());
    server.await.context("server task")??;
    delete_prefix(redis_url, &prefix).await?;
    let hist = &run.hist;
    Ok(HttpFigures {
        jobs_per_s: run.ok as f64 / run.elapsed_s,
        p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        p999_ms: hist.value_at_quantile(0.999) as f64 / 1000.0,
        errors: run.errors,
        client_cpu_s: run.cpu_s,
        client_cpu_us_per_request: run.cpu_s * 1e6 / (run.ok + run.errors).max(1) as f64,
    })
}

/// What the load generator saw.
struct ClientRun {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    elapsed_s: f64,
    /// CPU time of the load generator's thread.
    cpu_s: f64,
}

/// Runs the submitters on the current (one-thread) runtime.
async fn load(
    addr: SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    connections: usize,
    limit: Duration,
) -> anyhow::Result<ClientRun> {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = thread_cpu_s();
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (bodies, next) = (bodies.clone(), next.clone());
        workers.spawn(submitter(addr, bodies, next, deadline));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors) = (0u64, 0u64);
    while let Some(worker) = workers.join_next().await {
        let (h, o, e) = worker??;
        hist.add(h)?;
        ok += o;
        errors += e;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu_s = match (cpu_before, thread_cpu_s()) {
        (Some(before), Some(after)) => after - before,
        _ => f64::NAN,
    };
    Ok(ClientRun {
        hist,
        ok,
        errors,
        elapsed_s,
        cpu_s,
    })
}

/// One submitter: one keep-alive connection, one request at a time, as 64
/// separate submitters would have.
async fn submitter(
    addr: SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let authorization = format!("Bearer {TOKEN}");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors) = (0u64, 0u64);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= bodies.len() || Instant::now() > deadline {
            break;
        }
        let request = Request::post("/v1/jobs")
            .header(HOST, addr.to_string())
            .header(AUTHORIZATION, &authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(bodies[i].clone()))?;
        let sent = Instant::now();
        let created = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the whole answer: the job, as a real client would.
                response.into_body().collect().await.is_ok() && status == 201
            }
            Err(_) => false,
        };
        hist.record((sent.elapsed().as_micros() as u64).max(1))?;
        if created {
            ok += 1;
        } else {
            errors += 1;
            if sender.ready().await.is_err() {
                break; // the connection is gone: stop this submitter
            }
        }
    }
    Ok((hist, ok, errors))
}

/// CPU time of the calling thread, in seconds (Linux schedstat).
fn thread_cpu_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}
