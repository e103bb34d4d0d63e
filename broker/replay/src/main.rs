//! `raybroker-replay`: replays the Alibaba GPU trace through every policy,
//! prints the comparison and writes CSVs and SVG figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use raybroker_replay::federation::Federation;
use raybroker_replay::policy::{EngineConfig, TimeLimits};
use raybroker_replay::split::{ClusterSpec, SplitFile};
use raybroker_replay::trace::{self, LoadOptions, Task, TenantRule};
use raybroker_replay::{figures, fill, parallel, policy, queueing, report, summary};

/// Replays the Alibaba GPU cluster trace (openb, 2023) through round-robin,
/// first-fit, best-fit and raybroker's placement on the same cluster split.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The trace folder (node list and pod lists).
    #[arg(long, default_value = "../shared/traces/alibaba-gpu-v2023")]
    trace: PathBuf,
    /// The split of nodes into clusters.
    #[arg(long, default_value = "deploy/replay/onprem-plus-burst.yaml")]
    split: PathBuf,
    /// Pod lists to replay: `openb_pod_list_<name>.csv`.
    #[arg(long, value_delimiter = ',', default_value = "default,gpuspec33")]
    workloads: Vec<String>,
    /// Policies, in report order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "round-robin,first-fit,best-fit,raybroker"
    )]
    policies: Vec<String>,
    /// Offered GPU loads for the queueing protocol.
    #[arg(long, value_delimiter = ',', default_value = "0.8,1.0,1.2")]
    loads: Vec<f64>,
    /// Run times above this are cut to it (queueing protocol).
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    duration_cap: Duration,
    /// The queueing protocol plays the task list this many times back to back.
    #[arg(long, default_value_t = 6)]
    repeat: usize,
    /// The broker decides this often (queueing protocol); 0s = at every event.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    dispatch_interval: Duration,
    /// The fill protocol stops when arrived GPU demand reaches this share of capacity.
    #[arg(long, default_value_t = 1.3)]
    fill_until: f64,
    /// Tenants: `qos` (one per QoS class) or `hash:N` (N by a hash of the task name).
    #[arg(long, default_value = "qos", value_parser = tenant_rule)]
    tenants: TenantRule,
    /// raybroker: how long a job waits for its lowest feasible tier before it may burst.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    max_wait: Duration,
    /// raybroker: capacity is reserved for a job that waited this long (0s = never).
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    reserve_after: Duration,
    /// raybroker: one priority step per this long waited (0s = no aging).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    aging: Duration,
    /// raybroker: the time limit jobs declare, for its forecast of when
    /// lower tiers have room: `cap` (every job declares --duration-cap, which
    /// the replay enforces), `exact` (each its own run time: a perfect user),
    /// or `none` (no forecast: a job waits its whole bound before bursting).
    #[arg(long, default_value = "cap", value_parser = ["cap", "exact", "none"])]
    time_limits: String,
    /// Replays run side by side on this many threads (default: the CPUs).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    threads: usize,
    /// Where CSVs and figures go.
    #[arg(long, default_value = ".run/replay")]
    out: PathBuf,
}

fn tenant_rule(text: &str) -> Result<TenantRule, String> {
    match text.split_once(':') {
        None if text == "qos" => Ok(TenantRule::Qos),
        Some(("hash", n)) => match n.parse::<u32>() {
            Ok(n) if n > 0 => Ok(TenantRule::Hash(n)),
            _ => Err(format!("hash:{n}: N must be a positive whole number")),
        },
        _ => Err("use `qos` or `hash:N`".to_string()),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let engine = EngineConfig {
        max_wait_ms: args.max_wait.as_millis() as u64,
        reserve_after_ms: args.reserve_after.as_millis() as u64,
        aging_ms_per_priority: args.aging.as_millis() as u64,
        time_limits: match args.time_limits.as_str() {
            "exact" => TimeLimits::Exact,
            "none" => TimeLimits::None,
            _ => TimeLimits::Uniform(args.duration_cap.as_millis() as u64),
        },
    };
    for name in &args.policies {
        if policy::by_name(name, &engine).is_none() {
            bail!(
                "unknown policy `{name}` (known: {})",
                policy::ALL.join(", ")
            );
        }
    }
    let nodes_path = args.trace.join("openb_node_list_all_node.csv");
    let nodes = trace::parse_nodes(
        &trace::read(&nodes_path)?,
        &nodes_path.display().to_string(),
    )?;
    let split_text = std::fs::read_to_string(&args.split)
        .with_context(|| format!("reading {}", args.split.display()))?;
    let specs = SplitFile::parse(&split_text)?.assign(&nodes)?;
    println!("split {} ({} nodes):", args.split.display(), nodes.len());
    for spec in &specs {
        println!("  {}", describe(spec));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut fill_rows = String::from(report::FILL_CSV_HEADER);
    let mut queue_rows = String::from(report::QUEUE_CSV_HEADER);
    let mut tenant_rows = String::from(report::TENANT_CSV_HEADER);
    let options = LoadOptions {
        duration_cap_s: args.duration_cap.as_secs().max(1),
        tenants: args.tenants,
    };
    for workload in &args.workloads {
        let path = args.trace.join(format!("openb_pod_list_{workload}.csv"));
        let loaded =
            trace::parse_tasks(&trace::read(&path)?, &path.display().to_string(), options)?;
        println!(
            "\n== workload {workload}: {} tasks ({} skipped: run time <= 0; {} capped at {})",
            loaded.tasks.len(),
            loaded.skipped_nonpositive,
            loaded.capped,
            humantime::format_duration(args.duration_cap)
        );
        let clock = Instant::now();
        let fills = parallel::map(&args.policies, args.threads, |name| {
            let mut p = policy::by_name(name, &engine).expect("policy names are checked at start");
            fill::run(
                &loaded.tasks,
                Federation::new(&specs),
                p.as_mut(),
                args.fill_until,
            )
        });
        let fill_summaries: Vec<_> = fills.iter().map(summary::fill_summary).collect();
        println!(
            "\nfill (nothing departs; {:.1?}):\n{}",
            clock.elapsed(),
            report::fill_table(&fill_summaries)
        );
        fill_rows.push_str(&report::fill_csv_rows(workload, &fill_summaries));
        write(
            &args.out,
            &format!("fill-{workload}.csv"),
            &report::fill_curves_csv(&fills),
        )?;
        write(
            &args.out,
            &format!("fill-{workload}.svg"),
            &figures::fill(workload, &fills),
        )?;

        if loaded.tasks.iter().any(|t| t.timing.is_none()) {
            println!("\nqueueing: skipped, {workload} has no arrival and deletion times");
            continue;
        }
        let mut tasks: Vec<Task> = loaded.tasks;
        tasks.sort_by_key(|t| (t.timing.map(|time| time.arrival_s), t.row));
        let tasks = queueing::repeat(&tasks, args.repeat);
        let dispatch_ms = args.dispatch_interval.as_millis() as u64;
        let clock = Instant::now();
        let cases: Vec<(f64, &String)> = args
            .loads
            .iter()
            .flat_map(|l| args.policies.iter().map(move |p| (*l, p)))
            .collect();
        let done = parallel::map(&cases, args.threads, |(load, name)| {
            let mut p = policy::by_name(name, &engine).expect("policy names are checked at start");
            let fed = Federation::new(&specs);
            let started = Instant::now();
            let run = queueing::run(&tasks, fed.clone(), p.as_mut(), *load, dispatch_ms);
            let summary = summary::queue_summary(&run, &tasks, &fed);
            (run, summary, started.elapsed())
        });
        for (run, _, spent) in done.iter().filter(|(run, _, _)| run.plan_calls > 0) {
            println!(
                "  {} at load {}: {} plans of the queue in {spent:.1?} ({:.2?} each, replay included)",
                run.policy,
                run.pace.load,
                run.plan_calls,
                *spent / run.plan_calls as u32
            );
        }
        let (runs, summaries): (Vec<_>, Vec<_>) = done.into_iter().map(|(r, s, _)| (r, s)).unzip();
        println!(
            "\nqueueing under pressure ({} tasks: the list {}x, arrivals compressed to the offered load; {:.1?}):\n{}",
            tasks.len(),
            args.repeat,
            clock.elapsed(),
            report::queue_table(&summaries)
        );
        queue_rows.push_str(&report::queue_csv_rows(workload, &summaries));
        tenant_rows.push_str(&report::tenant_csv_rows(workload, &summaries));
        write(
            &args.out,
            &format!("timeseries-{workload}.csv"),
            &report::timeseries_csv(&runs),
        )?;
        write(
            &args.out,
            &format!("queueing-{workload}.svg"),
            &figures::queueing(workload, &args.loads, &runs),
        )?;
    }
    write(&args.out, "summary-fill.csv", &fill_rows)?;
    write(&args.out, "summary-queueing.csv", &queue_rows)?;
    write(&args.out, "summary-tenants.csv", &tenant_rows)?;
    println!(
        "\nwrote {} in {:.1?}",
        args.out.display(),
        started.elapsed()
    );
    Ok(())
}

fn describe(spec: &ClusterSpec) -> String {
    let mut models: std::collections::BTreeMap<String, (usize, u32)> = Default::default();
    for node in &spec.nodes {
        let model = node
            .gpu_model
            .as_ref()
            .map_or("cpu-only".to_string(), |m| m.to_string());
        let entry = models.entry(model).or_default();
        entry.0 += 1;
        entry.1 += node.gpus;
    }
    let parts: Vec<String> = models
        .iter()
        .map(|(m, (nodes, gpus))| {
            if *gpus == 0 {
                format!("{m} x{nodes}")
            } else {
                format!("{m} {nodes}n/{gpus}g")
            }
        })
        .collect();
    format!(
        "{:<12} tier {} ${:.2}/GPU-h  {} GPUs: {}",
        spec.name,
        spec.tier,
        spec.cost_per_gpu_hour,
        spec.nodes.iter().map(|n| n.gpus).sum::<u32>(),
        parts.join(", ")
    )
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
