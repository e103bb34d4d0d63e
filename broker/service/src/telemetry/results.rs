//! What each job came to, and the same over many jobs: per tenant, label,
//! cluster or group (the `raybroker.group` label), as JSON or CSV.

use std::collections::{BTreeMap, BTreeSet};

use raybroker_core::{FailureClass, Job, JobMetrics, JobState, MetricPoint};
use serde::{Deserialize, Serialize};

/// The label that names a job's group (set by groups and sweeps).
pub const GROUP_LABEL: &str = "raybroker.group";

/// Where a job's time went, in milliseconds (absent: it never got there).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timings {
    /// Waiting in the queue and being dispatched, all attempts.
    pub queued_ms: u64,
    /// Accepted by a cluster but not started, all attempts.
    pub pending_ms: u64,
    /// Running on a cluster, all attempts.
    pub running_ms: u64,
    /// From submit to the end (or to now, while unfinished).
    pub total_ms: u64,
}

/// One attempt as results show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptResult {
    /// 1, 2, ...
    pub number: u32,
    /// The cluster it ran on.
    pub cluster: String,
}

/// Everything a job came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    /// The job.
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// Its tenant.
    pub tenant: String,
    /// Its state (final once finished).
    pub state: JobState,
    /// Why it is in that state.
    pub reason: String,
    /// The entrypoint's exit code, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The class of its last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureClass>,
    /// The cluster of its last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Every attempt.
    pub attempts: Vec<AttemptResult>,
    /// Where its time went.
    pub timings: Timings,
    /// Its group (the `raybroker.group` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The newest value of each metric it reported.
    pub last: BTreeMap<String, MetricPoint>,
    /// The smallest value of each metric.
    pub min: BTreeMap<String, MetricPoint>,
    /// The largest value of each metric.
    pub max: BTreeMap<String, MetricPoint>,
    /// Artifact URIs it reported, in order.
    pub artifacts: Vec<String>,
}

/// The result of `job` given what it reported.
pub fn job_result(
    job: &Job,
    metrics: JobMetrics,
    artifacts: Vec<String>,
    now_ms: u64,
) -> JobResult {
    JobResult {
        job_id: job.id.to_string(),
        name: job.name.clone(),
        tenant: job.tenant.to_string(),
        state: job.state,
        reason: job.reason.clone(),
        exit_code: job.exit_code,
        failure: job.failure,
        cluster: job.cluster.clone(),
        attempts: job
            .attempts
            .iter()
            .map(|a| AttemptResult {
                number: a.number,
                cluster: a.cluster.clone(),
            })
            .collect(),
        timings: timings(job, now_ms),
        group: job.spec.labels.get(GROUP_LABEL).cloned(),
        labels: job.spec.labels.clone(),
        last: metrics.last,
        min: metrics.min,
        max: metrics.max,
        artifacts,
    }
}

/// Time per kind of stretch, from the job's history.
pub fn timings(job: &Job, now_ms: u64) -> Timings {
    let changes: Vec<_> = job
        .history
        .iter()
        .filter(|t| t.from != Some(t.to))
        .collect();
    let mut out = Timings::default();
    let mut end = None;
    for (i, change) in changes.iter().enumerate() {
        let until = changes.get(i + 1).map_or(now_ms, |n| n.at_ms);
        let length = until.saturating_sub(change.at_ms);
        match change.to {
            JobState::Queued | JobState::Dispatching => out.queued_ms += length,
            JobState::Submitted => out.pending_ms += length,
            JobState::Running => out.running_ms += length,
            _ => end = Some(change.at_ms),
        }
    }
    out.total_ms = end.unwrap_or(now_ms).saturating_sub(job.created_at_ms);
    out
}

/// What results are grouped by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// The owning tenant.
    Tenant,
    /// The last attempt's cluster (`-` for jobs never dispatched).
    Cluster,
    /// The `raybroker.group` label (`-` for jobs in none).
    Group,
    /// The value of one label (`-` when absent).
    Label(String),
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tenant" => Ok(GroupBy::Tenant),
            "cluster" => Ok(GroupBy::Cluster),
            "group" => Ok(GroupBy::Group),
            other => match other.strip_prefix("label:") {
                Some(key) if !key.is_empty() => Ok(GroupBy::Label(key.to_string())),
                _ => Err(format!(
                    "'{other}' is not a grouping; use tenant, cluster, group or label:<key>"
                )),
            },
        }
    }
}

impl GroupBy {
    fn key_of(&self, result: &JobResult) -> String {
        let value = match self {
            GroupBy::Tenant => Some(result.tenant.clone()),
            GroupBy::Cluster => result.cluster.clone(),
            GroupBy::Group => result.group.clone(),
            GroupBy::Label(key) => result.labels.get(key).cloned(),
        };
        value.unwrap_or_else(|| "-".into())
    }
}

/// One metric over the jobs of an aggregate: over each job's last value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricSummary {
    /// Jobs that reported it.
    pub jobs: u64,
    /// The smallest last value.
    pub min_last: f64,
    /// The largest last value.
    pub max_last: f64,
    /// The mean of the last values.
    pub mean_last: f64,
    /// The best value any job reported, highest (`max`) ...
    pub max: f64,
    /// ... and lowest.
    pub min: f64,
}

/// Many jobs' results summed up under one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Aggregate {
    /// The value grouped by (a tenant, cluster, group or label value).
    pub key: String,
    /// Jobs in it.
    pub jobs: u64,
    /// Of those, succeeded ...
    pub succeeded: u64,
    /// ... failed ...
    pub failed: u64,
    /// ... cancelled ...
    pub cancelled: u64,
    /// ... and not finished yet.
    pub active: u64,
    /// Attempts over all its jobs.
    pub attempts: u64,
    /// Failed jobs by class of their last failure.
    pub failures: BTreeMap<String, u64>,
    /// Mean time queued, ms.
    pub mean_queued_ms: f64,
    /// Mean time pending on a cluster, ms.
    pub mean_pending_ms: f64,
    /// Mean time running, ms.
    pub mean_running_ms: f64,
    /// Every metric its jobs reported.
    pub metrics: BTreeMap<String, MetricSummary>,
}

/// The results grouped by `by`, keys in order.
pub fn aggregate(results: &[JobResult], by: &GroupBy) -> Vec<Aggregate> {
    let mut groups: BTreeMap<String, Vec<&JobResult>> = BTreeMap::new();
    for result in results {
        groups.entry(by.key_of(result)).or_default().push(result);
    }
    groups
        .into_iter()
        .map(|(key, members)| summarise(key, &members))
        .collect()
}

fn summarise(key: String, members: &[&JobResult]) -> Aggregate {
    let n = members.len() as u64;
    let count = |state: JobState| members.iter().filter(|r| r.state == state).count() as u64;
    let mean = |f: &dyn Fn(&Timings) -> u64| {
        members.iter().map(|r| f(&r.timings) as f64).sum::<f64>() / (n.max(1) as f64)
    };
    let mut failures = BTreeMap::new();
    for r in members.iter().filter(|r| r.state == JobState::Failed) {
        let class = r.failure.map_or("unknown", FailureClass::as_str);
        *failures.entry(class.to_string()).or_insert(0) += 1;
    }
    let mut metrics: BTreeMap<String, MetricSummary> = BTreeMap::new();
    for r in members {
        for (name, point) in &r.last {
            let entry = metrics.entry(name.clone()).or_insert(MetricSummary {
                jobs: 0,
                min_last: f64::INFINITY,
                max_last: f64::NEG_INFINITY,
                mean_last: 0.0,
                max: f64::NEG_INFINITY,
                min: f64::INFINITY,
            });
            entry.jobs += 1;
            entry.min_last = entry.min_last.min(point.value);
            entry.max_last = entry.max_last.max(point.value);
            entry.mean_last += point.value;
            entry.max = entry
                .max
                .max(r.max.get(name).map_or(point.value, |p| p.value));
            entry.min = entry
                .min
                .min(r.min.get(name).map_or(point.value, |p| p.value));
        }
    }
    for summary in metrics.values_mut() {
        summary.mean_last /= summary.jobs as f64;
    }
    Aggregate {
        key,
        jobs: n,
        succeeded: count(JobState::Succeeded),
        failed: count(JobState::Failed),
        cancelled: count(JobState::Cancelled),
        active: members.iter().filter(|r| !r.state.is_terminal()).count() as u64,
        attempts: members.iter().map(|r| r.attempts.len() as u64).sum(),
        failures,
        mean_queued_ms: mean(&|t| t.queued_ms),
        mean_pending_ms: mean(&|t| t.pending_ms),
        mean_running_ms: mean(&|t| t.running_ms),
        metrics,
    }
}

/// Per-job results as CSV: one row per job; one `last:<metric>`,
/// `min:<metric>` and `max:<metric>` column per metric any of them reported.
pub fn jobs_csv(results: &[JobResult]) -> String {
    let metrics: BTreeSet<&String> = results.iter().flat_map(|r| r.last.keys()).collect();
    let mut header: Vec<String> = [
        "job_id",
        "name",
        "tenant",
        "state",
        "exit_code",
        "failure",
        "cluster",
        "attempts",
        "queued_ms",
        "pending_ms",
        "running_ms",
        "total_ms",
        "group",
        "artifacts",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in &metrics {
        header.extend([format!("last:{m}"), format!("min:{m}"), format!("max:{m}")]);
    }
    let mut out = csv_row(&header);
    for r in results {
        let mut row = vec![
            r.job_id.clone(),
            r.name.clone(),
            r.tenant.clone(),
            r.state.as_str().to_string(),
            r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            r.failure
                .map(|f| f.as_str().to_string())
                .unwrap_or_default(),
            r.cluster.clone().unwrap_or_default(),
            r.attempts.len().to_string(),
            r.timings.queued_ms.to_string(),
            r.timings.pending_ms.to_string(),
            r.timings.running_ms.to_string(),
            r.timings.total_ms.to_string(),
            r.group.clone().unwrap_or_default(),
            r.artifacts.join(" "),
        ];
        for m in &metrics {
            for map in [&r.last, &r.min, &r.max] {
                row.push(map.get(*m).map(|p| p.value.to_string()).unwrap_or_default());
            }
        }
        out.push_str(&csv_row(&row));
    }
    out
}

/// Aggregates as CSV (metrics as `<metric>:max_last` and `<metric>:mean_last`).
pub fn aggregates_csv(aggregates: &[Aggregate]) -> String {
    let metrics: BTreeSet<&String> = aggregates.iter().flat_map(|a| a.metrics.keys()).collect();
    let mut header: Vec<String> = [
        "key",
        "jobs",
        "succeeded",
        "failed",
        "cancelled",
        "active",
        "attempts",
        "mean_queued_ms",
        "mean_pending_ms",
        "mean_running_ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in &metrics {
        header.extend([format!("{m}:max_last"), format!("{m}:mean_last")]);
    }
    let mut out = csv_row(&header);
    for a in aggregates {
        let mut row = vec![
            a.key.clone(),
            a.jobs.to_string(),
            a.succeeded.to_string(),
            a.failed.to_string(),
            a.cancelled.to_string(),
            a.active.to_string(),
            a.attempts.to_string(),
            format!("{:.0}", a.mean_queued_ms),
            format!("{:.0}", a.mean_pending_ms),
            format!("{:.0}", a.mean_running_ms),
        ];
        for m in &metrics {
            let s = a.metrics.get(*m);
            row.push(s.map(|s| s.max_last.to_string()).unwrap_or_default());
            row.push(s.map(|s| s.mean_last.to_string()).unwrap_or_default());
        }
        out.push_str(&csv_row(&row));
    }
    out
}

/// One CSV line (RFC 4180 quoting).
fn csv_row(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    format!("{}\r\n", quoted.join(","))
}

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;
