//! How answers are shown: tables and detail views for people, the broker's
//! raw JSON for scripts. Everything here returns strings, so it is tested
//! without a terminal.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comfy_table::{presets, ContentArrangement, Table};
use raybroker_core::{Job, Resources};

use super::error::{CliError, EXIT_FAILED};
use super::wire::{ClusterInfo, TransitionEvent};

/// What `--output` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    Table,
    /// The broker's JSON, unchanged, for scripts.
    Json,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A compact age such as `45s`, `12m`, `3h5m` or `2d4h`.
pub fn format_age(elapsed_ms: u64) -> String {
    let secs = elapsed_ms / 1000;
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 60 {
        format!("{secs}s")
    } else if mins < 60 {
        format!("{mins}m")
    } else if hours < 24 {
        match mins % 60 {
            0 => format!("{hours}h"),
            rest => format!("{hours}h{rest}m"),
        }
    } else {
        match hours % 24 {
            0 => format!("{days}d"),
            rest => format!("{days}d{rest}h"),
        }
    }
}

/// A timestamp in UTC, to the second: `2026-05-01T12:00:03Z`.
pub fn format_time(at_ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(at_ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `2026-05-01T12:00:03Z (5m ago)`.
fn time_and_age(at_ms: u64, now_ms: u64) -> String {
    format!(
        "{} ({} ago)",
        format_time(at_ms),
        format_age(now_ms.saturating_sub(at_ms))
    )
}

/// The GPU models a job accepts, as users write them: `A100|H100`.
fn gpu_types(resources: &Resources) -> String {
    let names: Vec<&str> = resources.gpu_types.iter().map(|m| m.as_str()).collect();
    names.join("|")
}

/// Total GPUs over all nodes plus accepted models, e.g. `16 A100|H100`; `-` for none.
pub fn gpus_column(resources: &Resources) -> String {
    let total = match resources.total_gpus() {
        Some(total) if total.is_zero() => return "-".to_string(),
        Some(total) => total.to_string(),
        None => "?".to_string(),
    };
    if resources.gpu_types.is_empty() {
        total
    } else {
        format!("{total} {}", gpu_types(resources))
    }
}

/// One line: `2 nodes x (8 CPU, 32GiB, 1 GPU A100|H100, license=1)`.
pub fn format_resources(resources: &Resources) -> String {
    let mut parts = vec![format!("{} CPU", resources.cpus)];
    if resources.memory.0 > 0 {
        parts.push(resources.memory.to_string());
    }
    if !resources.gpus.is_zero() {
        let mut gpus = format!("{} GPU", resources.gpus);
        if !resources.gpu_types.is_empty() {
            let _ = write!(gpus, " {}", gpu_types(resources));
        }
        parts.push(gpus);
    }
    for (name, amount) in &resources.custom {
        parts.push(format!("{name}={amount}"));
    }
    let per_node = parts.join(", ");
    if resources.nodes == 1 {
        per_node
    } else {
        format!("{} nodes x ({per_node})", resources.nodes)
    }
}

/// A borderless table like kubectl's, wrapped to the terminal when there is one.
pub(crate) fn plain_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// Renders a table without the trailing spaces of its last column.
pub(crate) fn render(table: &Table) -> String {
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `raybroker list`: ID, NAME, STATE, CLUSTER, ATTEMPT, GPUS, AGE.
pub fn jobs_table(jobs: &[Job], now_ms: u64) -> String {
    let mut table = plain_table(&["ID", "NAME", "STATE", "CLUSTER", "ATTEMPT", "GPUS", "AGE"]);
    for job in jobs {
        table.add_row(vec![
            job.id.to_string(),
            job.name.clone(),
            state_text(job),
            job.cluster.clone().unwrap_or_else(|| "-".to_string()),
            job.attempt.to_string(),
            gpus_column(&job.spec.resources),
            format_age(now_ms.saturating_sub(job.created_at_ms)),
        ]);
    }
    render(&table)
}

/// The state, marked when a cancel is on its way.
fn state_text(job: &Job) -> String {
    if job.cancel_requested && !job.state.is_terminal() {
        format!("{} (cancelling)", job.state)
    } else {
        job.state.to_string()
    }
}

/// `raybroker status`: every field people ask about, then the attempts and history.
pub fn job_detail(job: &Job, now_ms: u64) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("job", job.id.to_string()),
        ("name", job.name.clone()),
        ("state", state_text(job)),
        ("reason", job.reason.clone()),
        ("tenant", job.tenant.to_string()),
        ("cluster", job.cluster.clone().unwrap_or_else(|| "-".into())),
        (
            "attempt",
            format!("{} (max retries {})", job.attempt, job.spec.max_retries),
        ),
    ];
    if let Some(code) = job.exit_code {
        rows.push(("exit code", code.to_string()));
    }
    rows.push(("resources", format_resources(&job.spec.resources)));
    rows.push(("entrypoint", job.spec.entrypoint.clone()));
    if let Some(limit) = job.spec.time_limit {
        rows.push(("time limit", humantime::format_duration(limit).to_string()));
    }
    if job.spec.priority != 0 {
        rows.push(("priority", job.spec.priority.to_string()));
    }
    if !job.spec.labels.is_empty() {
        let labels: Vec<String> = job
            .spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push(("labels", labels.join(", ")));
    }
    if let Some(key) = &job.spec.idempotency_key {
        rows.push(("idempotency key", key.clone()));
    }
    rows.push(("created", time_and_age(job.created_at_ms, now_ms)));
    rows.push(("updated", time_and_age(job.updated_at_ms, now_ms)));

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let mut text = String::new();
    for (key, value) in rows {
        let _ = writeln!(text, "{:<width$}{value}", format!("{key}:"));
    }
    if !job.attempts.is_empty() {
        let mut table = plain_table(&["#", "CLUSTER", "SUBMISSION ID", "CREATED"]);
        for attempt in &job.attempts {
            table.add_row(vec![
                attempt.number.to_string(),
                attempt.cluster.clone(),
                attempt.submission_id.clone(),
                format_time(attempt.created_at_ms),
            ]);
        }
        let _ = write!(text, "\nattempts:\n{}", render(&table));
    }
    if !job.history.is_empty() {
        let mut table = plain_table(&["TIME", "FROM", "TO", "ATTEMPT", "REASON"]);
        for change in &job.history {
            table.add_row(vec![
                format_time(change.at_ms),
                change.from.map_or_else(|| "-".into(), |s| s.to_string()),
                change.to.to_string(),
                change.attempt.to_string(),
                change.reason.clone(),
            ]);
        }
        let _ = write!(text, "\nhistory:\n{}", render(&table));
    }
    text
}

/// `raybroker clusters`: NAME, KIND, TIER, STATUS, GPUS (free/total by model), VERSION, $/GPU-H, LABELS.
pub fn clusters_table(clusters: &[ClusterInfo]) -> String {
    let mut table = plain_table(&[
        "NAME",
        "KIND",
        "TIER",
        "STATUS",
        "GPUS(FREE/TOTAL)",
        "VERSION",
        "$/GPU-H",
        "LABELS",
    ]);
    for cluster in clusters {
        let tier = match &cluster.tier {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let cost = cluster
            .cost_per_gpu_hour
            .map_or_else(|| "-".to_string(), |c| format!("{c:.2}"));
        let labels: Vec<String> = cluster
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // A broker without breakers sends no `health`: its flag says it.
        let fallback = if cluster.healthy { "healthy" } else { "down" };
        let state = cluster.health.as_deref().unwrap_or(fallback);
        let status = match (&cluster.last_error, cluster.healthy, state) {
            (_, true, "healthy") => "healthy".to_string(),
            (Some(err), _, _) => format!("{state}: {}", err.chars().take(60).collect::<String>()),
            (None, true, _) => state.to_string(),
            (None, false, _) => "not seen yet".to_string(),
        };
        let gpus: Vec<String> = cluster
            .gpus
            .iter()
            .map(|(model, n)| format!("{model}:{}/{}", n.free, n.total))
            .collect();
        table.add_row(vec![
            cluster.name.clone(),
            cluster.kind.clone(),
            tier,
            status,
            if gpus.is_empty() {
                "-".to_string()
            } else {
                gpus.join(", ")
            },
            cluster.version.clone().unwrap_or_else(|| "-".to_string()),
            cost,
            labels.join(","),
        ]);
    }
    render(&table)
}

/// One followed state change: `2026-05-01T12:00:03Z  queued -> dispatching  attempt 1  picked onprem-a`.
pub fn transition_line(event: &TransitionEvent) -> String {
    let change = match event.from {
        Some(from) => format!("{from} -> {}", event.to),
        None => format!("-> {}", event.to),
    };
    let mut line = format!(
        "{}  {change}  attempt {}",
        format_time(event.at_ms),
        event.attempt
    );
    if !event.reason.is_empty() {
        let _ = write!(line, "  {}", event.reason);
    }
    line
}

/// Writes to stdout and flushes, so followed events show up at once. A closed
/// pipe (`raybroker watch ID | head -3`) ends the process quietly, as it
/// would end any Unix filter.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(i32::from(EXIT_FAILED))
        }
        Err(err) => Err(CliError::failed(format!("cannot write to stdout: {err}"))),
    }
}

/// The broker's body as it came, ending in exactly one newline.
pub fn raw_json(raw: &str) -> String {
    format!("{}\n", raw.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raybroker_core::{JobSpec, JobState};

    fn job() -> Job {
        let spec = JobSpec::from_json(
            br#"{"entrypoint": "python train.py", "resources": {"cpus": 8, "memory": "32GiB", "gpus": 2, "gpu_types": "A100|H100", "nodes": 2},
                 "labels": {"project": "ant"}}"#,
        )
        .unwrap();
        serde_json::from_value(serde_json::json!({
            "id": "01JDQ3ZK8V6X9T2M4N5P7R8S9A", "tenant": "robotics", "name": "train",
            "state": "running", "reason": "started", "attempt": 1, "cluster": "onprem-a",
            "cancel_requested": false, "created_at_ms": 1_000, "updated_at_ms": 61_000,
            "spec": spec, "attempts": [],
            "history": [{"to": "queued", "at_ms": 1_000, "attempt": 0, "reason": "submitted"},
                        {"from": "queued", "to": "running", "at_ms": 61_000, "attempt": 1, "reason": "started"}]
        }))
        .unwrap()
    }

    #[test]
    fn ages_are_compact() {
        assert_eq!(format_age(45_000), "45s");
        assert_eq!(format_age(12 * 60_000 + 5_000), "12m");
        assert_eq!(format_age(3 * 3_600_000 + 5 * 60_000), "3h5m");
        assert_eq!(format_age(2 * 86_400_000), "2d");
        assert_eq!(format_age(2 * 86_400_000 + 4 * 3_600_000), "2d4h");
    }

    #[test]
    fn times_are_utc_seconds() {
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn resources_read_as_one_line() {
        let job = job();
        assert_eq!(
            format_resources(&job.spec.resources),
            "2 nodes x (8 CPU, 32GiB, 2 GPU A100|H100)"
        );
        assert_eq!(gpus_column(&job.spec.resources), "4 A100|H100");
        assert_eq!(gpus_column(&Resources::default()), "-");
    }

    #[test]
    fn job_table_has_the_documented_columns() {
        let text = jobs_table(&[job()], 3_601_000);
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["ID", "NAME", "STATE", "CLUSTER", "ATTEMPT", "GPUS", "AGE"]
        );
        let row: Vec<&str> = lines.last().unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "01JDQ3ZK8V6X9T2M4N5P7R8S9A",
                "train",
                "running",
                "onprem-a",
                "1",
                "4",
                "A100|H100",
                "1h"
            ]
        );
    }

    /// The `key: value` lines of a detail view.
    fn fields(text: &str) -> std::collections::BTreeMap<String, String> {
        text.lines()
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    #[test]
    fn detail_shows_state_and_history() {
        let mut job = job();
        job.cancel_requested = true;
        let text = job_detail(&job, 121_000);
        let fields = fields(&text);
        assert_eq!(fields["state"], "running (cancelling)", "{text}");
        assert_eq!(fields["tenant"], "robotics");
        assert_eq!(fields["updated"], "1970-01-01T00:01:01Z (1m ago)");
        assert_eq!(fields["labels"], "project=ant");
        assert_eq!(
            fields["resources"],
            "2 nodes x (8 CPU, 32GiB, 2 GPU A100|H100)"
        );
        assert!(!fields.contains_key("exit code"));
        let history = text.split("history:\n").nth(1).expect("a history section");
        assert_eq!(history.lines().count(), 3, "{history}");
        let last: Vec<&str> = history.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(last[1..], ["queued", "running", "1", "started"]);
        assert_eq!(job.state, JobState::Running);
    }

    #[test]
    fn transitions_read_as_one_line() {
        let event: TransitionEvent = serde_json::from_str(
            r#"{"job_id": "01JDQ3ZK8V6X9T2M4N5P7R8S9A", "from": "running", "to": "failed", "attempt": 2, "reason": "exit code 1", "at_ms": 0}"#,
        )
        .unwrap();
        assert_eq!(
            transition_line(&event),
            "1970-01-01T00:00:00Z  running -> failed  attempt 2  exit code 1"
        );
    }
}
