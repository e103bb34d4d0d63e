//! The shapes slurmrestd answers with, read tolerantly across API versions:
//! a number may be plain or `{"set", "infinite", "number"}`, a state may be
//! a string or a list of strings, an exit code may be a raw wait status or an
//! object. Unknown fields are ignored; missing ones take defaults.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One entry of an answer's `errors` list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SlurmError {
    /// Slurm's error number (2017: invalid job id; 2014: impossible request;
    /// -1: unspecified, which is also what an expired token gets).
    pub error_number: i64,
    /// Short text.
    pub error: String,
    /// Longer text.
    pub description: String,
}

/// The `errors` of any answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Errors {
    /// Empty on success.
    pub errors: Vec<SlurmError>,
}

/// A failed wire call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No answer: connection refused, reset, or timed out.
    #[error("{call}: {message}")]
    Transport {
        /// `METHOD path`.
        call: String,
        /// What went wrong.
        message: String,
        /// The request ran out of time.
        timeout: bool,
    },
    /// An HTTP error status.
    #[error("{call}: HTTP {status}: {}", describe(.errors, .body))]
    Status {
        /// `METHOD path`.
        call: String,
        /// The HTTP status.
        status: u16,
        /// Slurm's errors, when the body had them.
        errors: Vec<SlurmError>,
        /// The body's start, when it was not Slurm's JSON.
        body: String,
    },
    /// An answer the adapter cannot read.
    #[error("{call}: cannot read the answer: {message}")]
    Decode {
        /// `METHOD path`.
        call: String,
        /// What was wrong.
        message: String,
    },
    /// The token could not be read or minted.
    #[error("credentials: {0}")]
    Credentials(String),
}

fn describe(errors: &[SlurmError], body: &str) -> String {
    if errors.is_empty() {
        return body.to_string();
    }
    errors
        .iter()
        .map(|e| format!("{} (error {}: {})", e.description, e.error_number, e.error))
        .collect::<Vec<_>>()
        .join("; ")
}

impl WireError {
    /// Slurm's error numbers in a status error.
    pub fn error_numbers(&self) -> Vec<i64> {
        match self {
            WireError::Status { errors, .. } => errors.iter().map(|e| e.error_number).collect(),
            _ => Vec::new(),
        }
    }
}

/// A number that v0.0.39+ wraps as `{"set", "infinite", "number"}`; unset
/// and infinite read as `None`.
fn maybe_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(number_of(&Value::deserialize(d)?))
}

fn number_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::Object(map) => {
            let set = map.get("set").and_then(Value::as_bool).unwrap_or(true);
            let infinite = map
                .get("infinite")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if set && !infinite {
                map.get("number").and_then(Value::as_u64)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A state: `"RUNNING"` (v0.0.38, v0.0.39) or `["RUNNING", "COMPLETING"]`.
fn states<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s.split('+').map(|s| s.to_ascii_uppercase()).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_uppercase)
            .collect(),
        _ => Vec::new(),
    })
}

/// How a job's batch script ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExitCode {
    /// Not known (still running, or not reported).
    #[default]
    Unknown,
    /// The raw wait status (v0.0.38: exit 3 reads 768).
    WaitStatus(i64),
    /// Decoded (v0.0.39+): the return code, or the terminating signal.
    Decoded {
        /// The exit code when the script exited.
        return_code: Option<i64>,
        /// The signal when a signal ended it.
        signal: Option<i64>,
    },
}

fn exit_code<'de, D: Deserializer<'de>>(d: D) -> Result<ExitCode, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().map_or(ExitCode::Unknown, ExitCode::WaitStatus),
        Value::Object(map) => {
            let as_i64 = |v: Option<&Value>| match v {
                Some(Value::Number(n)) => n.as_i64(),
                Some(other) => number_of(other).and_then(|n| i64::try_from(n).ok()),
                None => None,
            };
            let signal = map
                .get("signal")
                .and_then(|s| as_i64(s.get("id").or_else(|| s.get("signal_id"))))
                .filter(|&s| s > 0);
            ExitCode::Decoded {
                return_code: as_i64(map.get("return_code")),
                signal,
            }
        }
        _ => ExitCode::Unknown,
    })
}

/// One job as `/job/{id}` and `/jobs` describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct JobInfo {
    /// Slurm's job id.
    #[serde(deserialize_with = "maybe_number")]
    pub job_id: Option<u64>,
    /// The name (the broker's submission id).
    pub name: String,
    /// The comment (the origin tags).
    pub comment: Option<String>,
    /// States, upper case: one in v0.0.38, possibly several with flags later.
    #[serde(deserialize_with = "states")]
    pub job_state: Vec<String>,
    /// Why it is pending or why it ended.
    pub state_reason: Option<String>,
    /// How the batch script ended.
    #[serde(deserialize_with = "exit_code")]
    pub exit_code: ExitCode,
    /// Epoch seconds; 0 or unset before it starts.
    #[serde(deserialize_with = "maybe_number")]
    pub start_time: Option<u64>,
    /// Epoch seconds; the projected end while it runs.
    #[serde(deserialize_with = "maybe_number")]
    pub end_time: Option<u64>,
    /// Epoch seconds.
    #[serde(deserialize_with = "maybe_number")]
    pub submit_time: Option<u64>,
}

/// `GET /jobs` and `GET /job/{id}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct JobsAnswer {
    /// The jobs.
    pub jobs: Vec<JobInfo>,
}

/// One node as `/nodes` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// States, upper case (`IDLE`, `MIXED`, `ALLOCATED`, `DOWN`, `DRAIN`, ...).
    #[serde(deserialize_with = "states")]
    pub state: Vec<String>,
    /// More state flags (`DRAIN`, `NOT_RESPONDING`, ...), v0.0.38.
    pub state_flags: Vec<String>,
    /// CPUs.
    #[serde(deserialize_with = "maybe_number")]
    pub cpus: Option<u64>,
    /// Allocated CPUs.
    #[serde(deserialize_with = "maybe_number")]
    pub alloc_cpus: Option<u64>,
    /// Memory, MiB.
    #[serde(deserialize_with = "maybe_number")]
    pub real_memory: Option<u64>,
    /// Allocated memory, MiB.
    #[serde(deserialize_with = "maybe_number")]
    pub alloc_memory: Option<u64>,
    /// e.g. `gpu:a100:4`.
    pub gres: String,
    /// e.g. `gpu:a100:1(IDX:0)`.
    pub gres_used: String,
    /// Partitions the node belongs to.
    pub partitions: Vec<String>,
}

/// `GET /nodes`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct NodesAnswer {
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
    /// The server's version.
    pub meta: Meta,
}

/// `meta` of an answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// `Slurm.release`, e.g. `22.05.8`.
    #[serde(rename = "Slurm", alias = "slurm")]
    pub slurm: SlurmRelease,
}

/// Which Slurm answered.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlurmRelease {
    /// e.g. `22.05.8`.
    pub release: String,
}

/// One partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PartitionInfo {
    /// Its name.
    pub name: String,
    /// `DEFAULT` marks the default partition (a string list in v0.0.38, an
    /// object with `default` in later versions).
    pub flags: Value,
    /// `UP`, `DOWN`, ... (v0.0.38: `state`; later `partition.state`).
    #[serde(deserialize_with = "states")]
    pub state: Vec<String>,
    /// Later versions nest the state here.
    pub partition: Value,
}

impl PartitionInfo {
    /// True for the cluster's default partition.
    pub fn is_default(&self) -> bool {
        match &self.flags {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .any(|f| f.eq_ignore_ascii_case("default")),
            Value::Object(map) => map.get("default").and_then(Value::as_bool) == Some(true),
            _ => false,
        }
    }
}

/// `GET /partitions`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PartitionsAnswer {
    /// The partitions.
    pub partitions: Vec<PartitionInfo>,
}

/// `POST /job/submit`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubmitAnswer {
    /// The new job's id.
    #[serde(deserialize_with = "maybe_number")]
    pub job_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v0038_job_reads() {
        let job: JobInfo = serde_json::from_value(json!({
            "job_id": 7, "name": "sub", "comment": "c", "job_state": "FAILED",
            "exit_code": 768, "start_time": 10, "end_time": 12, "extra": [1]
        }))
        .unwrap();
        assert_eq!(job.job_id, Some(7));
        assert_eq!(job.job_state, vec!["FAILED"]);
        assert_eq!(job.exit_code, ExitCode::WaitStatus(768));
        assert_eq!(job.end_time, Some(12));
    }

    #[test]
    fn newer_job_shapes_read() {
        let job: JobInfo = serde_json::from_value(json!({
            "job_id": 7, "name": "sub", "job_state": ["CANCELLED", "COMPLETING"],
            "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "number": 0},
                          "signal": {"id": {"set": true, "number": 15}, "name": "TERM"}},
            "start_time": {"set": true, "infinite": false, "number": 10},
            "end_time": {"set": false, "infinite": false, "number": 0}
        }))
        .unwrap();
        assert_eq!(job.job_state, vec!["CANCELLED", "COMPLETING"]);
        assert_eq!(
            job.exit_code,
            ExitCode::Decoded {
                return_code: Some(0),
                signal: Some(15)
            }
        );
        assert_eq!(job.start_time, Some(10));
        assert_eq!(job.end_time, None);
    }

    #[test]
    fn partitions_know_their_default() {
        let old: PartitionInfo =
            serde_json::from_value(json!({"name": "debug", "flags": ["default"], "state": "UP"}))
                .unwrap();
        assert!(old.is_default());
        let new: PartitionInfo = serde_json::from_value(
            json!({"name": "gpu", "flags": {"default": false}, "partition": {"state": ["UP"]}}),
        )
        .unwrap();
        assert!(!new.is_default());
    }

    #[test]
    fn status_errors_show_slurms_words() {
        let error = WireError::Status {
            call: "GET /slurm/v0.0.38/job/9".into(),
            status: 500,
            errors: vec![SlurmError {
                error_number: 2017,
                error: "Invalid job id specified".into(),
                description: "Unable to find JobId=9".into(),
            }],
            body: String::new(),
        };
        assert!(error
            .to_string()
            .contains("Unable to find JobId=9 (error 2017"));
        assert_eq!(error.error_numbers(), vec![2017]);
    }
}
