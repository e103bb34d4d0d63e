//! `raybroker results [JOB]`: what a job came to, or many jobs' results per
//! job or grouped by tenant, cluster, group or label, as a table, JSON or
//! CSV.

use std::fmt::Write as _;
use std::process::ExitCode;

use comfy_table::Table;
use raybroker_core::JobId;

use super::error::CliError;
use super::output::{self, OutputFormat};
use super::Context;
use raybroker::telemetry::results::{Aggregate, JobResult};

/// The flags of `raybroker results`.
#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// One job's results; without it, many jobs' (filtered by the flags).
    #[arg(value_name = "JOB")]
    pub job: Option<JobId>,
    /// Group by `tenant`, `cluster`, `group` or `label:<key>`.
    #[arg(long, value_name = "GROUPING")]
    pub by: Option<String>,
    /// Print CSV (for spreadsheets and pandas) instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// Only jobs in this state.
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs whose last attempt ran on this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only jobs with this label (KEY=VALUE; repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Only this group's jobs.
    #[arg(long)]
    pub group: Option<String>,
    /// Another tenant's jobs (admins only).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Most jobs to read (default 1000).
    #[arg(long)]
    pub limit: Option<u32>,
}

impl ResultsArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut add = |name: &'static str, value: &Option<String>| {
            if let Some(v) = value {
                q.push((name, v.clone()));
            }
        };
        add("by", &self.by);
        add("state", &self.state);
        add("cluster", &self.cluster);
        add("group", &self.group);
        add("tenant", &self.tenant);
        add("limit", &self.limit.map(|l| l.to_string()));
        q.extend(self.labels.iter().map(|l| ("label", l.clone())));
        if self.csv {
            q.push(("format", "csv".into()));
        }
        q
    }
}

/// The answer of `GET /v1/results`.
#[derive(Debug, serde::Deserialize)]
struct ResultsReply {
    jobs_read: usize,
    truncated: bool,
    #[serde(default)]
    jobs: Vec<JobResult>,
    #[serde(default)]
    aggregates: Vec<Aggregate>,
}

/// Prints results.
pub async fn run(ctx: &Context, args: &ResultsArgs) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    if let Some(job) = &args.job {
        if args.csv || args.by.is_some() {
            return Err(CliError::usage(
                "--csv and --by are for many jobs; leave out JOB, or filter with --label/--group",
            ));
        }
        let reply = client
            .get::<JobResult>(
                &format!("v1/jobs/{job}/results"),
                &[],
                &format!("read the results of job {job}"),
            )
            .await?;
        match ctx.output {
            OutputFormat::Json => output::print(&output::raw_json(&reply.raw))?,
            OutputFormat::Table => output::print(&job_detail(&reply.body))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.csv {
        let text = client
            .get_text("v1/results", &args.query(), "read results")
            .await?;
        output::print(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let reply = client
        .get::<ResultsReply>("v1/results", &args.query(), "read results")
        .await?;
    match ctx.output {
        OutputFormat::Json => output::print(&output::raw_json(&reply.raw))?,
        OutputFormat::Table => {
            let body = &reply.body;
            let mut text = if args.by.is_some() {
                aggregate_table(&body.aggregates)
            } else {
                jobs_table(&body.jobs)
            };
            if body.truncated {
                let _ = writeln!(
                    text,
                    "(first {} jobs only: raise --limit for more)",
                    body.jobs_read
                );
            }
            output::print(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn job_detail(r: &JobResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "job        {} ({})", r.job_id, r.name);
    let _ = writeln!(out, "state      {}: {}", r.state, r.reason);
    if let Some(code) = r.exit_code {
        let _ = writeln!(out, "exit code  {code}");
    }
    if let Some(failure) = r.failure {
        let _ = writeln!(out, "failure    {}", failure.as_str());
    }
    let attempts: Vec<String> = r
        .attempts
        .iter()
        .map(|a| format!("#{} on {}", a.number, a.cluster))
        .collect();
    let _ = writeln!(
        out,
        "attempts   {}",
        if attempts.is_empty() {
            "none".into()
        } else {
            attempts.join(", ")
        }
    );
    let t = &r.timings;
    let _ = writeln!(
        out,
        "timings    queued {}, pending {}, running {}, total {}",
        secs(t.queued_ms),
        secs(t.pending_ms),
        secs(t.running_ms),
        secs(t.total_ms)
    );
    if let Some(group) = &r.group {
        let _ = writeln!(out, "group      {group}");
    }
    if !r.last.is_empty() {
        let mut table = Table::new();
        table.set_header(["metric", "last", "step", "min", "max"]);
        for (name, last) in &r.last {
            table.add_row([
                name.clone(),
                last.value.to_string(),
                last.step.map(|s| s.to_string()).unwrap_or_default(),
                r.min
                    .get(name)
                    .map(|p| p.value.to_string())
                    .unwrap_or_default(),
                r.max
                    .get(name)
                    .map(|p| p.value.to_string())
                    .unwrap_or_default(),
            ]);
        }
        let _ = writeln!(out, "{table}");
    }
    for uri in &r.artifacts {
        let _ = writeln!(out, "artifact   {uri}");
    }
    out
}

fn jobs_table(jobs: &[JobResult]) -> String {
    let mut table = Table::new();
    table.set_header([
        "job",
        "name",
        "state",
        "exit",
        "cluster",
        "tries",
        "queued",
        "running",
        "metrics (last)",
    ]);
    for r in jobs {
        let metrics: Vec<String> = r
            .last
            .iter()
            .map(|(k, p)| format!("{k}={}", p.value))
            .collect();
        table.add_row([
            r.job_id.clone(),
            r.name.clone(),
            r.state.to_string(),
            r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            r.cluster.clone().unwrap_or_default(),
            r.attempts.len().to_string(),
            secs(r.timings.queued_ms),
            secs(r.timings.running_ms),
            metrics.join(" "),
        ]);
    }
    format!("{table}\n")
}

fn aggregate_table(aggregates: &[Aggregate]) -> String {
    let mut table = Table::new();
    table.set_header([
        "key",
        "jobs",
        "ok",
        "failed",
        "cancelled",
        "active",
        "mean queued",
        "mean running",
        "metrics (max of last)",
    ]);
    for a in aggregates {
        let metrics: Vec<String> = a
            .metrics
            .iter()
            .map(|(k, m)| format!("{k}={}", m.max_last))
            .collect();
        table.add_row([
            a.key.clone(),
            a.jobs.to_string(),
            a.succeeded.to_string(),
            a.failed.to_string(),
            a.cancelled.to_string(),
            a.active.to_string(),
            secs(a.mean_queued_ms as u64),
            secs(a.mean_running_ms as u64),
            metrics.join(" "),
        ]);
    }
    format!("{table}\n")
}
