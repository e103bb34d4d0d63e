//! `raybroker trace JOB`: the job's whole trace as a tree (broker, cluster
//! and job spans under one trace id).

use std::fmt::Write as _;
use std::process::ExitCode;

use raybroker_core::JobId;
use serde::Deserialize;

use super::error::CliError;
use super::output::{self, OutputFormat};
use super::Context;

/// The flags of `raybroker trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The job's id.
    #[arg(value_name = "JOB")]
    pub job: JobId,
}

/// The answer of `GET /v1/jobs/{id}/trace`, as much as the CLI shows.
#[derive(Debug, Deserialize)]
struct TraceReply {
    trace_id: String,
    spans: Vec<SpanLine>,
}

#[derive(Debug, Deserialize)]
struct SpanLine {
    depth: usize,
    name: String,
    origin: String,
    #[serde(default)]
    service: Option<String>,
    start_unix_nano: u64,
    end_unix_nano: u64,
    #[serde(default)]
    open: bool,
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    status: Option<String>,
}

/// Prints the trace.
pub async fn run(ctx: &Context, args: &TraceArgs) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    let reply = client
        .get::<TraceReply>(
            &format!("v1/jobs/{}/trace", args.job),
            &[],
            &format!("read the trace of job {}", args.job),
        )
        .await?;
    match ctx.output {
        OutputFormat::Json => output::print(&output::raw_json(&reply.raw))?,
        OutputFormat::Table => output::print(&render(&reply.body))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per span, indented by depth: offset from the trace's start,
/// length, name, who made it, and the attributes that matter.
fn render(trace: &TraceReply) -> String {
    let start = trace
        .spans
        .iter()
        .map(|s| s.start_unix_nano)
        .min()
        .unwrap_or(0);
    let mut out = format!("trace {}\n", trace.trace_id);
    for span in &trace.spans {
        let offset = (span.start_unix_nano.saturating_sub(start)) as f64 / 1e9;
        let length = span.end_unix_nano.saturating_sub(span.start_unix_nano) as f64 / 1e9;
        let who = match (&span.origin[..], &span.service) {
            ("job", Some(service)) => format!("job:{service}"),
            (origin, _) => origin.to_string(),
        };
        let mut notes = Vec::new();
        for key in ["cluster", "attempt", "state", "exit_code"] {
            if let Some(v) = span.attributes.get(key) {
                notes.push(format!(
                    "{key}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                ));
            }
        }
        if span.open {
            notes.push("(open)".into());
        }
        if let Some(status) = &span.status {
            notes.push(status.clone());
        }
        let _ = writeln!(
            out,
            "{:>9.3}s {:>9.3}s  {}{} [{who}] {}",
            offset,
            length,
            "  ".repeat(span.depth),
            span.name,
            notes.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_indented_tree() {
        let trace: TraceReply = serde_json::from_value(serde_json::json!({
            "trace_id": "ab", "spans": [
                {"depth": 0, "name": "job train", "origin": "broker", "start_unix_nano": 0, "end_unix_nano": 3_000_000_000u64},
                {"depth": 1, "name": "attempt 1", "origin": "broker", "start_unix_nano": 500_000_000, "end_unix_nano": 3_000_000_000u64,
                 "attributes": {"cluster": "a", "attempt": 1}},
                {"depth": 2, "name": "epoch", "origin": "job", "service": "trainer", "start_unix_nano": 1_000_000_000, "end_unix_nano": 2_000_000_000u64, "open": false}
            ]
        }))
        .unwrap();
        let text = render(&trace);
        assert!(text.starts_with("trace ab\n"), "{text}");
        assert!(
            text.contains("    0.500s     2.500s    attempt 1 [broker] cluster=a attempt=1"),
            "{text}"
        );
        assert!(text.contains("      epoch [job:trainer]"), "{text}");
    }
}
