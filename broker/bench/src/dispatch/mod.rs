//! Dispatch overhead: how much later a job is running when it goes through
//! the broker than when it is submitted to the Ray head directly.
//!
//! One run, against one head, alternates the two paths job by job (so drift
//! in the machine's load hits both alike), one job at a time, each waited
//! for until it ends:
//! - direct: `POST /api/jobs/` to the head, then `GET /api/jobs/{id}` until
//!   Ray says RUNNING;
//! - broker: `POST /v1/jobs` to an in-process broker (the same `serve::run`
//!   production uses) whose only cluster is that head, then
//!   `GET /v1/jobs/{id}` until the broker says `running`.
//!
//! Both are polled at the same interval. Ray's own start time (seconds, and
//! varying by hundreds of milliseconds from job to job) dominates both
//! paths, so beside the difference of medians the run measures the broker's
//! share per job: the broker job is also polled on the head (its submission
//! id is known in advance), which gives when Ray first knew it and when Ray
//! said RUNNING, and so the time the broker took before (queue, dispatch
//! round) and after (the reconcile round that notices RUNNING). The broker sees a job only in its loop
//! rounds: up to `dispatch_every` before it is sent, up to `reconcile_every`
//! after Ray starts it; the figures are printed with those settings. A job
//! seen already SUCCEEDED counts as running at that moment. Figures only;
//! nothing is asserted.

mod paths;
mod stats;

use std::time::Duration;

use anyhow::{bail, Context};
use raybroker::auth::hash_token;
use raybroker::config::Config;
use raybroker_queue::testing::unique_prefix;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::queue_cycle::delete_prefix;
use paths::{Broker, BrokerRun, Direct, DirectRun};
pub use stats::Spread;

/// The tenant token of the in-process broker.
const TOKEN: &str = "bench-token-0123456789abcdef";

/// What to run and how the broker's loops are set.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The head's dashboard URL.
    pub head: String,
    /// Jobs per path.
    pub jobs: usize,
    /// What every job runs.
    pub entrypoint: String,
    /// `loops.dispatch_every` of the broker.
    pub dispatch_every: Duration,
    /// `loops.reconcile_every` of the broker.
    pub reconcile_every: Duration,
    /// `loops.snapshot_every` of the broker.
    pub snapshot_every: Duration,
    /// How often both paths poll.
    pub poll_every: Duration,
}

/// Figures of the dispatch run; times in milliseconds.
#[derive(Serialize, Debug, Default)]
pub struct DispatchFigures {
    /// Jobs measured per path (after one warm-up job each).
    pub jobs: usize,
    /// What they ran.
    pub entrypoint: String,
    /// The head's Ray version.
    pub ray_version: String,
    /// The broker's `loops.dispatch_every`.
    pub dispatch_every_ms: u64,
    /// The broker's `loops.reconcile_every`.
    pub reconcile_every_ms: u64,
    /// The broker's `loops.snapshot_every`.
    pub snapshot_every_ms: u64,
    /// Poll interval of both paths.
    pub poll_every_ms: u64,
    /// Submit -> RUNNING, submitted to the head directly.
    pub direct: Spread,
    /// Submit -> `running`, submitted through the broker.
    pub broker: Spread,
    /// Broker median / direct median.
    pub median_ratio: f64,
    /// Broker median - direct median.
    pub median_difference_ms: f64,
    /// The direct `POST /api/jobs/` call (submit -> accepted by Ray).
    pub direct_post: Spread,
    /// Broker jobs: `POST /v1/jobs` -> the head knows the job (queue,
    /// dispatch round, the broker's own `POST /api/jobs/`; polled every 5 ms).
    pub broker_to_ray: Spread,
    /// Of `broker_to_ray`: the API call, until the job is queued.
    pub broker_api: Spread,
    /// Of `broker_to_ray`: queued -> the dispatch round that took it began
    /// (bounded by `dispatch_every` plus a round's own time).
    pub broker_round_wait: Spread,
    /// Broker jobs: Ray says RUNNING -> the broker says `running` (the
    /// reconcile round that notices it), both as seen by polling.
    pub broker_seen: Spread,
    /// Per broker job: `broker_to_ray` - median `direct_post` + `broker_seen`,
    /// i.e. what the broker adds to what Ray takes.
    pub broker_overhead: Spread,
}

/// Runs the comparison and returns its figures.
pub async fn run(redis_url: &str, settings: &Settings) -> anyhow::Result<DispatchFigures> {
    if settings.jobs == 0 {
        bail!("--dispatch-jobs must be at least 1");
    }
    let head = settings.head.trim_end_matches('/').to_string();
    let prefix = unique_prefix("bench-dispatch");
    let origin = format!("raybroker-{prefix}");
    let direct = Direct::new(&head, &format!("{origin}-direct"))?;
    let ray_version = direct.ray_version().await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let broker = Broker::new(&format!("http://{}", listener.local_addr()?), TOKEN)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = config(redis_url, &prefix, &origin, &head, settings)?;
    let server = tokio::spawn(raybroker::serve::run(config, listener, async {
        let _ = stopped.await;
    }));

    let measured = measure(&direct, &broker, settings).await;
    // Clean up whatever happened; the measurement's error comes first.
    let cleaned = direct.delete_jobs(&[&origin, direct.origin()]).await;
    let _ = stop.send(());
    server.await.context("broker task")??;
    delete_prefix(redis_url, &prefix).await?;
    let (direct_runs, broker_runs) = measured?;
    cleaned?;
    Ok(figures(settings, ray_version, &direct_runs, &broker_runs))
}

/// One warm-up job per path, then `jobs` per path, alternating which goes first.
async fn measure(
    direct: &Direct,
    broker: &Broker,
    settings: &Settings,
) -> anyhow::Result<(Vec<DirectRun>, Vec<BrokerRun>)> {
    broker.wait_healthy().await?;
    // The first submit to a fresh head can take seconds: not measured.
    direct.run_one(settings, "warmup").await?;
    broker.run_one(direct, settings).await?;
    let (mut direct_runs, mut broker_runs) = (Vec::new(), Vec::new());
    for i in 0..settings.jobs {
        let broker_first = i % 2 == 1;
        if broker_first {
            broker_runs.push(broker.run_one(direct, settings).await?);
        }
        direct_runs.push(direct.run_one(settings, &i.to_string()).await?);
        if !broker_first {
            broker_runs.push(broker.run_one(direct, settings).await?);
        }
    }
    Ok((direct_runs, broker_runs))
}

fn figures(
    settings: &Settings,
    ray_version: String,
    direct_runs: &[DirectRun],
    broker_runs: &[BrokerRun],
) -> DispatchFigures {
    let direct = Spread::of(direct_runs.iter().map(|r| r.total_ms));
    let broker = Spread::of(broker_runs.iter().map(|r| r.total_ms));
    let direct_post = Spread::of(direct_runs.iter().map(|r| r.post_ms));
    let overhead = broker_runs
        .iter()
        .map(|r| r.to_ray_ms - direct_post.median_ms + r.seen_ms);
    DispatchFigures {
        jobs: settings.jobs,
        entrypoint: settings.entrypoint.clone(),
        ray_version,
        dispatch_every_ms: settings.dispatch_every.as_millis() as u64,
        reconcile_every_ms: settings.reconcile_every.as_millis() as u64,
        snapshot_every_ms: settings.snapshot_every.as_millis() as u64,
        poll_every_ms: settings.poll_every.as_millis() as u64,
        median_ratio: broker.median_ms / direct.median_ms,
        median_difference_ms: broker.median_ms - direct.median_ms,
        broker_to_ray: Spread::of(broker_runs.iter().map(|r| r.to_ray_ms)),
        broker_api: Spread::of(broker_runs.iter().map(|r| r.api_ms)),
        broker_round_wait: Spread::of(broker_runs.iter().map(|r| r.round_wait_ms)),
        broker_seen: Spread::of(broker_runs.iter().map(|r| r.seen_ms)),
        broker_overhead: Spread::of(overhead),
        direct,
        broker,
        direct_post,
    }
}

/// The broker's config: the head as its only cluster, the loops as asked,
/// no garbage collection during the run.
fn config(
    redis_url: &str,
    prefix: &str,
    origin: &str,
    head: &str,
    settings: &Settings,
) -> anyhow::Result<Config> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let text = format!(
        r#"
version: 1
listen: 127.0.0.1:0
redis: {{url: "{redis_url}", key_prefix: "{prefix}", pool_size: 8}}
tenants:
  - {{name: bench, token_sha256: "{hash}"}}
origin: {origin}
clusters:
  - {{name: head, kind: ray, ray: {{address: "{head}"}}}}
loops:
  snapshot_every: {snapshot}
  dispatch_every: {dispatch}
  reconcile_every: {reconcile}
  gc_every: 1h
"#,
        hash = hash_token(TOKEN),
        snapshot = ms(settings.snapshot_every),
        dispatch = ms(settings.dispatch_every),
        reconcile = ms(settings.reconcile_every),
    );
    Ok(Config::from_yaml_str(&text, "dispatch benchmark")?)
}

/// The figures for people, with the settings that bound them.
pub fn print(f: &DispatchFigures) {
    println!(
        "dispatch overhead: {} jobs per path of `{}` on Ray {}, one at a time, polled every {} ms",
        f.jobs, f.entrypoint, f.ray_version, f.poll_every_ms
    );
    println!(
        "  broker loops: dispatch_every {} ms, reconcile_every {} ms, snapshot_every {} ms",
        f.dispatch_every_ms, f.reconcile_every_ms, f.snapshot_every_ms
    );
    let line = |what: &str, s: &Spread| {
        println!(
            "  {what:<38} median {:>6.0} ms  p90 {:>6.0} ms  (min {:.0}, max {:.0})",
            s.median_ms, s.p90_ms, s.min_ms, s.max_ms
        )
    };
    line("direct:  submit -> RUNNING", &f.direct);
    line("broker:  submit -> running", &f.broker);
    println!(
        "  difference of medians {:+.0} ms (ratio {:.3}); Ray's own start varies by {:.0} ms \
         (direct min to max), so this difference is mostly noise",
        f.median_difference_ms,
        f.median_ratio,
        f.direct.max_ms - f.direct.min_ms
    );
    println!("  per broker job, without Ray's start time:");
    line("  POST /v1/jobs -> known to Ray", &f.broker_to_ray);
    line("    of which: API call until queued", &f.broker_api);
    line(
        "    of which: waiting for a dispatch round",
        &f.broker_round_wait,
    );
    line("  (direct POST /api/jobs/)", &f.direct_post);
    line("  Ray RUNNING -> broker `running`", &f.broker_seen);
    line(
        "  broker overhead (to Ray + seen - POST)",
        &f.broker_overhead,
    );
    println!(
        "  target: the broker adds <= 100 ms at the median: {}",
        if f.broker_overhead.median_ms <= 100.0 {
            "met"
        } else {
            "not met"
        }
    );
}
