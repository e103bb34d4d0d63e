//! The read-and-act commands: `status`, `list`, `cancel` and `clusters`.

use std::process::ExitCode;

use raybroker_core::{JobId, JobState};

use super::client::ListQuery;
use super::error::CliError;
use super::output::{self, OutputFormat};
use super::wire::CancelEffect;
use super::Context;

/// Most pages `list --all` follows, so a broker that keeps returning a cursor cannot loop us forever.
pub(super) const MAX_PAGES: usize = 10_000;

/// The paging flags of every listing (`list`, `group list`, `sweep list`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct PageArgs {
    /// How many per page (the broker's default is 50).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Start after this cursor (printed when there are more).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Follow every page instead of showing only the first.
    #[arg(long)]
    pub all: bool,
}

/// Tells (on stderr) how to see the rest of a listing, when there is more.
pub fn more_hint(what: &str, cursor: Option<&str>) {
    if let Some(cursor) = cursor {
        eprintln!("more {what}: add --all, or --cursor {cursor} for the next page");
    }
}

/// The flags of `raybroker list`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ListArgs {
    /// Only jobs in this state (queued, dispatching, submitted, running, succeeded, failed, cancelled).
    #[arg(long, value_name = "STATE")]
    pub state: Option<JobState>,
    /// Only jobs on this cluster.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Only jobs with this label (repeatable; all must match).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
    /// Another tenant's jobs (admin tokens only).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

/// Runs `raybroker status JOB`.
pub async fn status(ctx: &Context, id: &JobId) -> Result<ExitCode, CliError> {
    let reply = ctx.client()?.job(id).await?;
    match ctx.output {
        OutputFormat::Json => output::print(&output::raw_json(&reply.raw))?,
        OutputFormat::Table => output::print(&output::job_detail(&reply.body, output::now_ms()))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the query, checking the `--label` pairs.
pub fn list_query(args: &ListArgs) -> Result<ListQuery, CliError> {
    let mut labels = Vec::new();
    for pair in &args.labels {
        match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                labels.push((key.trim().to_string(), value.to_string()));
            }
            _ => {
                return Err(CliError::usage(format!(
                    "--label '{pair}': expected KEY=VALUE; write e.g. --label project=locomotion"
                )))
            }
        }
    }
    Ok(ListQuery {
        state: args.state,
        cluster: args.cluster.clone(),
        labels,
        limit: args.page.limit,
        cursor: args.page.cursor.clone(),
        tenant: args.tenant.clone(),
    })
}

/// Runs `raybroker list`.
pub async fn list(ctx: &Context, args: &ListArgs) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    let mut query = list_query(args)?;
    let mut jobs = Vec::new();
    let mut raw_jobs: Vec<serde_json::Value> = Vec::new();
    let mut pages = 0;
    let next_cursor = loop {
        let reply = client.list(&query).await?;
        pages += 1;
        if ctx.output == OutputFormat::Json && args.page.all {
            // Keep each job exactly as the broker sent it.
            let page: serde_json::Value = serde_json::from_str(&reply.raw)
                .map_err(|err| CliError::failed(format!("cannot read the job list: {err}")))?;
            if let Some(serde_json::Value::Array(page_jobs)) = page.get("jobs") {
                raw_jobs.extend(page_jobs.iter().cloned());
            }
        } else if ctx.output == OutputFormat::Json {
            output::print(&output::raw_json(&reply.raw))?;
            return Ok(ExitCode::SUCCESS);
        }
        jobs.extend(reply.body.jobs);
        match reply.body.next_cursor {
            Some(cursor) if args.page.all => {
                if query.cursor.as_deref() == Some(cursor.as_str()) || pages >= MAX_PAGES {
                    return Err(CliError::failed(
                        "the broker keeps returning the same page of jobs",
                    ));
                }
                query.cursor = Some(cursor);
            }
            cursor => break cursor,
        }
    };

    if ctx.output == OutputFormat::Json {
        let all = serde_json::json!({ "jobs": raw_jobs, "next_cursor": null });
        output::print(&format!("{all}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        eprintln!("no jobs found");
    } else {
        output::print(&output::jobs_table(&jobs, output::now_ms()))?;
    }
    more_hint("jobs", next_cursor.as_deref());
    Ok(ExitCode::SUCCESS)
}

/// Runs `raybroker cancel JOB`.
pub async fn cancel(ctx: &Context, id: &JobId) -> Result<ExitCode, CliError> {
    let reply = ctx.client()?.cancel(id).await?;
    if ctx.output == OutputFormat::Json {
        output::print(&output::raw_json(&reply.raw))?;
        return Ok(ExitCode::SUCCESS);
    }
    let job = &reply.body.job;
    let text = match reply.body.effect {
        CancelEffect::Cancelled => format!("cancelled job {id}"),
        CancelEffect::Requested => format!(
            "cancel requested for job {id}; it stops once {} confirms (follow with `raybroker watch {id}`)",
            job.cluster.as_deref().unwrap_or("its cluster")
        ),
        CancelEffect::AlreadyFinished => {
            format!("job {id} had already finished ({}); nothing to cancel", job.state)
        }
    };
    output::print(&format!("{text}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `raybroker clusters`.
pub async fn clusters(ctx: &Context) -> Result<ExitCode, CliError> {
    let reply = ctx.client()?.clusters().await?;
    match ctx.output {
        OutputFormat::Json => output::print(&output::raw_json(&reply.raw))?,
        OutputFormat::Table if reply.body.clusters.is_empty() => {
            eprintln!("no clusters are configured");
        }
        OutputFormat::Table => output::print(&output::clusters_table(&reply.body.clusters))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `raybroker explain JOB`: why the job waits, cluster by cluster, or where
/// it went and when.
pub async fn explain(ctx: &Context, id: &JobId) -> Result<ExitCode, CliError> {
    let reply = ctx.client()?.placement(id).await?;
    match ctx.output {
        OutputFormat::Json => output::print(&output::raw_json(&reply.raw))?,
        OutputFormat::Table => output::print(&with_newline(&reply.body.text))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` ending in exactly one newline.
pub fn with_newline(text: &str) -> String {
    format!("{}\n", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ErrorKind;

    #[test]
    fn list_labels_must_be_pairs() {
        let args = ListArgs {
            labels: vec!["project=ant".into(), "note=a=b".into()],
            state: Some(JobState::Failed),
            ..ListArgs::default()
        };
        let query = list_query(&args).unwrap();
        assert_eq!(
            query.labels,
            [
                ("project".to_string(), "ant".to_string()),
                ("note".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(query.state, Some(JobState::Failed));

        let bad = ListArgs {
            labels: vec!["project".into()],
            ..ListArgs::default()
        };
        let err = list_query(&bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Usage);
        assert!(
            err.message.starts_with("--label 'project'"),
            "{}",
            err.message
        );
    }
}
