//! Metrics and artifacts a job reports about itself, and the one-line log
//! format for jobs that cannot use an OpenTelemetry library.
//!
//! The log format is fixed (sweeps and docs depend on it):
//!
//! - `RAYBROKER_METRICS {"step": 3, "reward": 0.51, "loss": 1.2}`: the prefix,
//!   one space, a JSON object. `step` is an optional non-negative integer;
//!   every other field with a finite numeric value is a metric.
//! - `RAYBROKER_ARTIFACT s3://bucket/run-7/model.pt`: the prefix, one space,
//!   a URI.
//!
//! Lines may carry leading text (a logger's timestamp); the prefix is searched
//! for anywhere in the line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The prefix of a metrics line.
pub const METRICS_PREFIX: &str = "RAYBROKER_METRICS ";
/// The prefix of an artifact line.
pub const ARTIFACT_PREFIX: &str = "RAYBROKER_ARTIFACT ";
/// Longest metric name kept, in bytes; longer names are dropped.
pub const MAX_METRIC_NAME_BYTES: usize = 128;
/// Longest artifact URI kept, in bytes; longer ones are dropped.
pub const MAX_ARTIFACT_URI_BYTES: usize = 1024;

/// One reported value of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricPoint {
    /// The metric's name, e.g. `reward`.
    pub name: String,
    /// The value (always finite).
    pub value: f64,
    /// The training step the job gave with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// When it was reported (or observed, for OTLP), ms since the Unix epoch.
    pub at_ms: u64,
    /// The attempt that reported it.
    pub attempt: u32,
}

/// Everything kept about a job's metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobMetrics {
    /// Each metric's points, oldest first, bounded to the newest N per metric.
    pub series: BTreeMap<String, Vec<MetricPoint>>,
    /// The newest point of each metric (by `at_ms`).
    pub last: BTreeMap<String, MetricPoint>,
    /// The point with the smallest value of each metric (all points ever
    /// recorded, not only those still in `series`).
    pub min: BTreeMap<String, MetricPoint>,
    /// The point with the largest value of each metric.
    pub max: BTreeMap<String, MetricPoint>,
}

/// What one log line says, if anything.
#[derive(Clone, Debug, PartialEq)]
pub enum LogReport {
    /// Metric values, with the step if given.
    Metrics {
        /// `step` from the line.
        step: Option<u64>,
        /// (name, value) pairs in the line's order.
        values: Vec<(String, f64)>,
    },
    /// An artifact URI.
    Artifact(String),
}

/// Reads one log line; `None` when it is not a report or is malformed (a
/// job's log is not the place to fail it: a bad line is simply not counted).
pub fn parse_log_line(line: &str) -> Option<LogReport> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(at) = line.find(METRICS_PREFIX) {
        let body = &line[at + METRICS_PREFIX.len()..];
        return parse_metrics_object(body.trim());
    }
    if let Some(at) = line.find(ARTIFACT_PREFIX) {
        let uri = line[at + ARTIFACT_PREFIX.len()..].trim();
        let ok = !uri.is_empty()
            && uri.len() <= MAX_ARTIFACT_URI_BYTES
            && !uri.chars().any(char::is_whitespace);
        return ok.then(|| LogReport::Artifact(uri.to_string()));
    }
    None
}

fn parse_metrics_object(body: &str) -> Option<LogReport> {
    let serde_json::Value::Object(fields) = serde_json::from_str(body).ok()? else {
        return None;
    };
    let step = match fields.get("step") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_u64()?),
    };
    let values: Vec<(String, f64)> = fields
        .iter()
        .filter(|(name, _)| name.as_str() != "step" && valid_metric_name(name))
        .filter_map(|(name, v)| Some((name.clone(), v.as_f64().filter(|x| x.is_finite())?)))
        .collect();
    (!values.is_empty()).then_some(LogReport::Metrics { step, values })
}

/// A name the broker keeps: 1 to [`MAX_METRIC_NAME_BYTES`] bytes, no control
/// characters.
pub fn valid_metric_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_METRIC_NAME_BYTES && !name.chars().any(char::is_control)
}

/// Everything the reports in `text` say, as points and artifact URIs.
pub fn parse_log_text(text: &str, attempt: u32, at_ms: u64) -> (Vec<MetricPoint>, Vec<String>) {
    let mut points = Vec::new();
    let mut artifacts = Vec::new();
    for line in text.lines() {
        match parse_log_line(line) {
            Some(LogReport::Metrics { step, values }) => {
                points.extend(values.into_iter().map(|(name, value)| MetricPoint {
                    name,
                    value,
                    step,
                    at_ms,
                    attempt,
                }));
            }
            Some(LogReport::Artifact(uri)) => artifacts.push(uri),
            None => {}
        }
    }
    (points, artifacts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_metrics_line() {
        let report =
            parse_log_line(r#"RAYBROKER_METRICS {"step": 3, "reward": 0.51, "loss": 1.2}"#);
        assert_eq!(
            report,
            Some(LogReport::Metrics {
                step: Some(3),
                values: vec![("loss".into(), 1.2), ("reward".into(), 0.51)],
            })
        );
    }

    #[test]
    fn finds_the_prefix_after_a_logger_prefix_and_without_step() {
        let report = parse_log_line("2026-01-01 INFO RAYBROKER_METRICS {\"acc\": 1}\r\n");
        assert_eq!(
            report,
            Some(LogReport::Metrics {
                step: None,
                values: vec![("acc".into(), 1.0)]
            })
        );
    }

    #[test]
    fn ignores_malformed_and_non_numeric_lines() {
        for line in [
            "RAYBROKER_METRICS not json",
            "RAYBROKER_METRICS [1, 2]",
            r#"RAYBROKER_METRICS {"step": -1, "x": 1}"#,
            r#"RAYBROKER_METRICS {"step": 1.5, "x": 1}"#,
            r#"RAYBROKER_METRICS {"name": "run", "ok": true}"#,
            r#"RAYBROKER_METRICS{"x": 1}"#,
            "RAYBROKER_ARTIFACT ",
            "RAYBROKER_ARTIFACT two words",
            "plain text",
        ] {
            assert_eq!(parse_log_line(line), None, "{line}");
        }
    }

    #[test]
    fn keeps_only_numeric_fields() {
        let report = parse_log_line(r#"RAYBROKER_METRICS {"tag": "a", "x": 2, "": 3}"#);
        assert_eq!(
            report,
            Some(LogReport::Metrics {
                step: None,
                values: vec![("x".into(), 2.0)]
            })
        );
    }

    #[test]
    fn reads_artifacts_and_whole_texts() {
        let text = "start\nRAYBROKER_METRICS {\"step\": 1, \"r\": 0.5}\nRAYBROKER_ARTIFACT s3://b/m.pt\nRAYBROKER_METRICS {\"step\": 2, \"r\": 0.7}\n";
        let (points, artifacts) = parse_log_text(text, 2, 1000);
        assert_eq!(artifacts, vec!["s3://b/m.pt".to_string()]);
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].step, Some(2));
        assert_eq!(points[1].attempt, 2);
        assert_eq!(points[1].value, 0.7);
    }
}
