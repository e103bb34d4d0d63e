//! Every difference between the slurmrestd API versions the adapter speaks,
//! in one place.
//!
//! Slurm 22.05 serves `v0.0.36`-`v0.0.38`; 23.02 adds `v0.0.39`; 23.11 to
//! 25.05 serve `v0.0.39`-`v0.0.42` and drop the old ones. The adapter asks the
//! server which versions it serves (`GET /openapi/v3`: every path names its
//! version) and uses the newest one it knows.
//!
//! What changes between versions, and what this module does about it:
//! - the path prefix `/slurm/<version>/`;
//! - `job.environment`: an object `{KEY: VALUE}` in v0.0.38, a list of
//!   `KEY=VALUE` strings from v0.0.39 on;
//! - numbers that may be unset (`time_limit`, `memory_per_node`): plain
//!   integers in v0.0.38, `{"set": true, "infinite": false, "number": N}`
//!   from v0.0.39 on;
//! - node count: `[min, max]` in v0.0.38, `"min-max"` text later;
//! - GPUs per node: `gres` in v0.0.38/v0.0.39, `tres_per_node`
//!   (`gres/gpu:TYPE:N`) from v0.0.40 on;
//! - answers: `job_state` and node `state` become lists, times and exit codes
//!   become objects. Reading is version-tolerant: the wire types in
//!   [`crate::client`] accept both shapes, so only requests differ here.

use serde_json::{json, Map, Value};

/// An API version of slurmrestd the adapter speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// Slurm 22.05 (and 23.02).
    V0038,
    /// Slurm 23.02 to 24.05.
    V0039,
    /// Slurm 23.11 to 24.11.
    V0040,
    /// Slurm 24.05 to 25.05.
    V0041,
    /// Slurm 24.11 and later.
    V0042,
}

impl ApiVersion {
    /// Every known version, oldest first.
    pub const ALL: [ApiVersion; 5] = [
        ApiVersion::V0038,
        ApiVersion::V0039,
        ApiVersion::V0040,
        ApiVersion::V0041,
        ApiVersion::V0042,
    ];

    /// The version's name in paths, e.g. `v0.0.38`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V0038 => "v0.0.38",
            ApiVersion::V0039 => "v0.0.39",
            ApiVersion::V0040 => "v0.0.40",
            ApiVersion::V0041 => "v0.0.41",
            ApiVersion::V0042 => "v0.0.42",
        }
    }

    /// Reads a name such as `v0.0.38` (the leading `v` is optional).
    pub fn parse(name: &str) -> Option<ApiVersion> {
        let name = name.trim();
        let name = name.strip_prefix('v').unwrap_or(name);
        ApiVersion::ALL
            .into_iter()
            .find(|version| &version.as_str()[1..] == name)
    }

    /// Every known version's name, for error messages.
    pub fn known_names() -> Vec<&'static str> {
        ApiVersion::ALL.iter().map(|v| v.as_str()).collect()
    }

    /// The newest version the adapter knows among the paths of a served
    /// OpenAPI document (`/slurm/v0.0.38/jobs`, ...).
    pub fn newest_served<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<ApiVersion> {
        paths
            .into_iter()
            .filter_map(|path| path.strip_prefix("/slurm/"))
            .filter_map(|rest| rest.split('/').next())
            .filter_map(ApiVersion::parse)
            .max()
    }

    /// `/slurm/<version>/` followed by `tail`.
    pub fn path(self, tail: &str) -> String {
        format!("/slurm/{}/{}", self.as_str(), tail.trim_start_matches('/'))
    }

    /// A number field that may be unset.
    fn number(self, value: u64) -> Value {
        if self == ApiVersion::V0038 {
            json!(value)
        } else {
            json!({"set": true, "infinite": false, "number": value})
        }
    }

    /// The job's environment.
    fn environment<'a>(self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        if self == ApiVersion::V0038 {
            Value::Object(
                vars.into_iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect(),
            )
        } else {
            Value::Array(
                vars.into_iter()
                    .map(|(k, v)| Value::String(format!("{k}={v}")))
                    .collect(),
            )
        }
    }

    /// The `job` object of a submit, in this version's shapes.
    pub fn job_description(self, job: &JobDescription) -> Value {
        let mut out = Map::new();
        let mut put = |key: &str, value: Value| {
            out.insert(key.to_string(), value);
        };
        put("name", json!(job.name));
        put("comment", json!(job.comment));
        put("current_working_directory", json!(job.working_dir));
        put("standard_output", json!(job.output_file));
        put("standard_error", json!(job.output_file));
        put(
            "environment",
            self.environment(
                job.environment
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        );
        put("nodes", self.nodes(job.nodes));
        put("tasks", json!(job.nodes));
        put("cpus_per_task", json!(job.cpus_per_node));
        if job.memory_mb_per_node > 0 {
            put("memory_per_node", self.number(job.memory_mb_per_node));
        }
        if let Some(minutes) = job.time_limit_minutes {
            put("time_limit", self.number(minutes));
        }
        if let Some(gres) = &job.gres_per_node {
            if self >= ApiVersion::V0040 {
                put("tres_per_node", json!(format!("gres/{gres}")));
            } else {
                put("gres", json!(gres));
            }
        }
        for (key, value) in [
            ("partition", &job.partition),
            ("account", &job.account),
            ("qos", &job.qos),
        ] {
            if let Some(value) = value {
                put(key, json!(value));
            }
        }
        Value::Object(out)
    }

    /// Node count, exactly: `[min, max]` in v0.0.38, a `min-max` string
    /// from v0.0.39 on.
    fn nodes(self, nodes: u32) -> Value {
        if self == ApiVersion::V0038 {
            json!([nodes, nodes])
        } else {
            json!(format!("{nodes}-{nodes}"))
        }
    }

    /// The whole submit body: `{"script": ..., "job": {...}}`.
    pub fn submit_body(self, script: &str, job: &JobDescription) -> Value {
        json!({"script": script, "job": self.job_description(job)})
    }
}

/// What a submit asks of Slurm, independent of the API version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDescription {
    /// The job's name: the broker's submission id (how a replay finds it).
    pub name: String,
    /// The origin tags (see [`crate::convert::tags`]).
    pub comment: String,
    /// Working directory: the job's directory.
    pub working_dir: String,
    /// stdout and stderr of the batch script.
    pub output_file: String,
    /// Environment of the batch script (Slurm requires one, even empty).
    pub environment: Vec<(String, String)>,
    /// Nodes, all started together.
    pub nodes: u32,
    /// CPUs per node (one task per node).
    pub cpus_per_node: u32,
    /// Memory per node in MiB; 0 leaves the partition's default.
    pub memory_mb_per_node: u64,
    /// Whole minutes.
    pub time_limit_minutes: Option<u64>,
    /// `gpu:TYPE:N` or `gpu:N` per node.
    pub gres_per_node: Option<String>,
    /// Where it runs.
    pub partition: Option<String>,
    /// Charged to.
    pub account: Option<String>,
    /// Under which QOS.
    pub qos: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobDescription {
        JobDescription {
            name: "sub-1".into(),
            comment: "raybroker;origin=o".into(),
            working_dir: "/j/sub-1".into(),
            output_file: "/j/sub-1/output.log".into(),
            environment: vec![("PATH".into(), "/bin".into()), ("A".into(), "x=y".into())],
            nodes: 2,
            cpus_per_node: 4,
            memory_mb_per_node: 1024,
            time_limit_minutes: Some(3),
            gres_per_node: Some("gpu:a100:2".into()),
            partition: Some("gpu".into()),
            account: None,
            qos: None,
        }
    }

    #[test]
    fn names_parse_and_order() {
        assert_eq!(ApiVersion::parse("v0.0.38"), Some(ApiVersion::V0038));
        assert_eq!(ApiVersion::parse("0.0.41"), Some(ApiVersion::V0041));
        assert_eq!(ApiVersion::parse("v0.0.37"), None);
        assert!(ApiVersion::V0042 > ApiVersion::V0038);
        assert_eq!(ApiVersion::V0040.path("job/7"), "/slurm/v0.0.40/job/7");
    }

    #[test]
    fn newest_served_version_wins() {
        let paths = [
            "/slurm/v0.0.36/jobs",
            "/slurm/v0.0.38/job/submit",
            "/slurmdb/v0.0.39/jobs",
            "/openapi/v3",
        ];
        assert_eq!(ApiVersion::newest_served(paths), Some(ApiVersion::V0038));
        let newer = [
            "/slurm/v0.0.40/jobs",
            "/slurm/v0.0.42/jobs",
            "/slurm/v0.0.43/x",
        ];
        assert_eq!(ApiVersion::newest_served(newer), Some(ApiVersion::V0042));
        assert_eq!(ApiVersion::newest_served(["/slurm/v0.0.36/jobs"]), None);
    }

    #[test]
    fn v0038_uses_objects_and_plain_numbers() {
        let body = ApiVersion::V0038.job_description(&job());
        assert_eq!(body["environment"], json!({"PATH": "/bin", "A": "x=y"}));
        assert_eq!(body["time_limit"], json!(3));
        assert_eq!(body["memory_per_node"], json!(1024));
        assert_eq!(body["gres"], json!("gpu:a100:2"));
        assert_eq!(body["nodes"], json!([2, 2]));
        assert_eq!(body["partition"], json!("gpu"));
        assert!(body.get("account").is_none());
    }

    #[test]
    fn newer_versions_use_lists_and_set_numbers() {
        let body = ApiVersion::V0039.job_description(&job());
        assert_eq!(body["environment"], json!(["PATH=/bin", "A=x=y"]));
        assert_eq!(
            body["time_limit"],
            json!({"set": true, "infinite": false, "number": 3})
        );
        assert_eq!(body["gres"], json!("gpu:a100:2"));
        assert_eq!(body["nodes"], json!("2-2"));
        let body = ApiVersion::V0041.job_description(&job());
        assert_eq!(body["tres_per_node"], json!("gres/gpu:a100:2"));
        assert!(body.get("gres").is_none());
    }
}
