//! raybroker's benchmark: figures, never pass/fail.
//!
//! One run measures, against the same Redis:
//! - the yardstick: redis-benchmark LPUSH, unpipelined and 16-deep pipelined;
//! - the queue cycle submit -> lease -> complete without HTTP, and the
//!   floor: the same cycle doing only what no durable fenced queue can drop;
//! - Redis memory per queued job of a typical spec;
//! - HTTP submit throughput and latency percentiles through the real service;
//! - with `--ray-head`, the dispatch overhead: submit -> running through the
//!   broker against submit -> RUNNING on the Ray head directly;
//! - with `--slurm-url`, a trivial job through the broker on a Slurm cluster
//!   against `sbatch` of the same batch script (submit -> running, completed).
//!
//! `deploy/local/bench.sh` starts a durable Redis and runs this in release
//! mode; docs/benchmarks.md records the results and how to reproduce them.

mod dispatch;
mod floor;
mod heads;
mod http;
mod phases;
mod queue_cycle;
mod redis_baseline;
mod slurm;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use raybroker_core::JobSpec;
use serde::Serialize;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Measure raybroker's queue and API against redis-benchmark")]
struct Args {
    /// Redis to measure against (use a dedicated instance: the memory figure
    /// reads INFO memory).
    #[arg(long, default_value = "redis://127.0.0.1:6391")]
    redis_url: String,
    /// Jobs through the queue cycle.
    #[arg(long, default_value_t = 200_000)]
    cycle_jobs: usize,
    /// Jobs through the cycle of one job per call (default: a tenth of
    /// --cycle-jobs, at least 1,000; 0 skips it).
    #[arg(long)]
    cycle_single_jobs: Option<usize>,
    /// Jobs per script call in the batched cycle.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Concurrent workers in the cycle.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Jobs queued for the memory figure.
    #[arg(long, default_value_t = 20_000)]
    memory_jobs: usize,
    /// HTTP submissions.
    #[arg(long, default_value_t = 100_000)]
    http_jobs: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Tenants with deep queues in the queue-heads part.
    #[arg(long, default_value_t = 4)]
    heads_tenants: usize,
    /// Queued jobs per tenant in the queue-heads part.
    #[arg(long, default_value_t = 2_000)]
    heads_jobs: usize,
    /// Dispatch rounds timed each way in the queue-heads part.
    #[arg(long, default_value_t = 20)]
    heads_rounds: usize,
    /// Skip parts: any of baseline, cycle, phases, floor, memory, heads, http,
    /// dispatch, slurm.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// A Ray head's dashboard URL: runs the dispatch part against it (it
    /// runs only when this is given).
    #[arg(long)]
    ray_head: Option<String>,
    /// Jobs per path in the dispatch part.
    #[arg(long, default_value_t = 20)]
    dispatch_jobs: usize,
    /// What the dispatch part's jobs run.
    #[arg(long, default_value = "sleep 1")]
    dispatch_entrypoint: String,
    /// The dispatch part's broker: `loops.dispatch_every`.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    dispatch_every: Duration,
    /// The dispatch part's broker: `loops.reconcile_every`.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    reconcile_every: Duration,
    /// The dispatch part's broker: `loops.snapshot_every`.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    snapshot_every: Duration,
    /// How often the dispatch part polls both paths for a running job.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    poll_every: Duration,
    /// slurmrestd's URL: runs the Slurm part against it (`sbatch` must
    /// reach the same cluster: set SLURM_CONF, see deploy/local/slurm.sh env).
    #[arg(long, env = "RAYBROKER_TEST_SLURM_URL")]
    slurm_url: Option<String>,
    /// The Slurm cluster's JWT key file.
    #[arg(long, env = "RAYBROKER_TEST_SLURM_JWT_KEY")]
    slurm_jwt_key: Option<std::path::PathBuf>,
    /// The directory jobs and the broker share.
    #[arg(long, env = "RAYBROKER_TEST_SLURM_JOBS_DIR")]
    slurm_jobs_dir: Option<std::path::PathBuf>,
    /// The Ray venv's bin directory on the Slurm nodes.
    #[arg(long, env = "RAYBROKER_TEST_SLURM_RAY_BIN")]
    slurm_ray_bin: Option<std::path::PathBuf>,
    /// Jobs per path in the Slurm part.
    #[arg(long, default_value_t = 5)]
    slurm_jobs: usize,
    /// What the Slurm part's jobs run.
    #[arg(long, default_value = "echo hello")]
    slurm_entrypoint: String,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// Every figure of one run.
#[derive(Serialize, Default, Debug)]
struct Report {
    redis_lpush_per_s: Option<f64>,
    redis_lpush_pipelined16_per_s: Option<f64>,
    cycle_batched_jobs_per_s: Option<f64>,
    cycle_unbatched_jobs_per_s: Option<f64>,
    cycle_phases: Option<phases::Figures>,
    floor_jobs_per_s: Option<f64>,
    memory_bytes_per_job: Option<f64>,
    memory_job_hash_bytes: Option<u64>,
    heads: Option<heads::Figures>,
    http: Option<http::HttpFigures>,
    dispatch: Option<dispatch::DispatchFigures>,
    slurm: Option<slurm::SlurmFigures>,
}

/// The Redis main thread's CPU seconds so far (INFO cpu): the figure that
/// swings least with the rest of the machine.
pub(crate) async fn redis_cpu_s(url: &str) -> anyhow::Result<f64> {
    let redis = raybroker_queue::testing::pool(url);
    let mut conn = redis.get().await?;
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
    let field = |name: &str| -> anyhow::Result<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("INFO cpu has no {name}"))
    };
    Ok(field("used_cpu_user_main_thread:")? + field("used_cpu_sys_main_thread:")?)
}

/// A job as Isaac Lab users submit them: a training command, a few env
/// vars, GPUs of two accepted models, labels and an idempotency key.
pub(crate) fn typical_spec(i: usize) -> JobSpec {
    let yaml = format!(
        r#"
name: ant-ppo-{i}
entrypoint: python scripts/reinforcement_learning/rsl_rl/train.py --task Isaac-Velocity-Rough-Anymal-C-v0 --headless --seed {i}
runtime_env:
  env_vars: {{WANDB_MODE: offline, OMP_NUM_THREADS: "8"}}
  working_dir: s3://robotics-code/isaaclab-2025-11-20.zip
resources: {{cpus: 8, memory: 32GiB, gpus: 1, gpu_types: "A100|H100"}}
priority: 0
max_retries: 2
time_limit: 4h
labels: {{project: locomotion, sweep: lr-search}}
idempotency_key: ant-ppo-{i}
"#
    );
    JobSpec::from_yaml(&yaml).expect("the typical spec parses")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let skip = |part: &str| args.skip.iter().any(|s| s == part);
    let mut report = Report::default();
    let url = args.redis_url.clone();

    if !skip("baseline") {
        let (plain, pipelined) = redis_baseline::lpush_rates(&url)?;
        println!("redis-benchmark LPUSH (50 clients) {plain:>12.0} ops/s");
        println!("redis-benchmark LPUSH -P 16      {pipelined:>12.0} ops/s");
        report.redis_lpush_per_s = Some(plain);
        report.redis_lpush_pipelined16_per_s = Some(pipelined);
    }
    if !skip("cycle") {
        let batched = queue_cycle::run(&url, args.cycle_jobs, args.batch, args.workers).await?;
        println!(
            "queue cycle, {} per call, {} workers {batched:>10.0} jobs/s",
            args.batch, args.workers
        );
        report.cycle_batched_jobs_per_s = Some(batched);
        let single_jobs = args
            .cycle_single_jobs
            .unwrap_or((args.cycle_jobs / 10).max(1000));
        if single_jobs > 0 {
            let single = queue_cycle::run(&url, single_jobs, 1, args.workers).await?;
            println!(
                "queue cycle, 1 per call, {} workers   {single:>10.0} jobs/s",
                args.workers
            );
            report.cycle_unbatched_jobs_per_s = Some(single);
        }
    }
    if !skip("phases") {
        let f = phases::run(&url, args.cycle_jobs / 2, args.batch, args.workers).await?;
        for (name, phase) in [
            ("submit", &f.submit),
            ("lease", &f.lease),
            ("finish", &f.finish),
        ] {
            println!(
                "  cycle phase {name:<6} alone        {:>10.0} jobs/s  Redis {:.1} µs per job",
                phase.jobs_per_s, phase.redis_us_per_job
            );
        }
        report.cycle_phases = Some(f);
    }
    if !skip("floor") {
        let floor = floor::run(&url, args.cycle_jobs, args.batch, args.workers).await?;
        println!(
            "floor cycle, {} per call, {} workers {floor:>10.0} jobs/s",
            args.batch, args.workers
        );
        report.floor_jobs_per_s = Some(floor);
    }
    if !skip("memory") {
        let (per_job, hash) = queue_cycle::memory_per_job(&url, args.memory_jobs).await?;
        println!(
            "redis memory per queued job      {per_job:>12.0} bytes (job hash alone: {hash} bytes)"
        );
        report.memory_bytes_per_job = Some(per_job);
        report.memory_job_hash_bytes = Some(hash);
    }
    if !skip("heads") {
        let f = heads::run(&url, args.heads_tenants, args.heads_jobs, args.heads_rounds).await?;
        println!(
            "dispatch round's queue heads, {} tenants x {} queued: read whole {:.1} ms (Redis {:.1} ms), cached {:.1} ms (Redis {:.1} ms)",
            f.tenants, f.jobs_per_tenant, f.plain_ms_per_round, f.plain_redis_ms_per_round,
            f.cached_ms_per_round, f.cached_redis_ms_per_round
        );
        report.heads = Some(f);
    }
    if !skip("http") {
        let figures = http::run(
            &url,
            args.http_jobs,
            args.connections,
            Duration::from_secs(120),
        )
        .await?;
        println!(
            "http submit, {} connections       {:>10.0} jobs/s  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  errors {}",
            args.connections, figures.jobs_per_s, figures.p50_ms, figures.p99_ms, figures.p999_ms, figures.errors
        );
        println!(
            "  load generator's own CPU          {:>10.2} s ({:.1} µs per request)",
            figures.client_cpu_s, figures.client_cpu_us_per_request
        );
        report.http = Some(figures);
    }
    if let (Some(head), false) = (&args.ray_head, skip("dispatch")) {
        let settings = dispatch::Settings {
            head: head.clone(),
            jobs: args.dispatch_jobs,
            entrypoint: args.dispatch_entrypoint.clone(),
            dispatch_every: args.dispatch_every,
            reconcile_every: args.reconcile_every,
            snapshot_every: args.snapshot_every,
            poll_every: args.poll_every,
        };
        let figures = dispatch::run(&url, &settings).await?;
        dispatch::print(&figures);
        report.dispatch = Some(figures);
    }
    if let (Some(slurm_url), false) = (&args.slurm_url, skip("slurm")) {
        let need = |value: &Option<std::path::PathBuf>, flag: &str| {
            value.clone().ok_or_else(|| {
                anyhow::anyhow!("the Slurm part needs {flag} (or eval \"$(deploy/local/slurm.sh env --ray-version 2.31.0)\")")
            })
        };
        let settings = slurm::Settings {
            url: slurm_url.clone(),
            jwt_key: need(&args.slurm_jwt_key, "--slurm-jwt-key")?,
            jobs_dir: need(&args.slurm_jobs_dir, "--slurm-jobs-dir")?,
            ray_bin: need(&args.slurm_ray_bin, "--slurm-ray-bin")?,
            jobs: args.slurm_jobs,
            entrypoint: args.slurm_entrypoint.clone(),
            loops: (
                args.dispatch_every,
                args.reconcile_every,
                args.snapshot_every,
            ),
            poll_every: args.poll_every,
        };
        let figures = slurm::run(&url, &settings).await?;
        slurm::print(&figures);
        report.slurm = Some(figures);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}
