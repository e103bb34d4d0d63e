//! The batch script every job runs: a Ray cluster over the allocation, the
//! entrypoint inside it, its exit code passed back, Ray shut down on every
//! exit path. The script itself is `job.sh` beside this file (readable as
//! shell); [`render`] fills in its `@@NAME@@` placeholders, every value
//! single-quoted for the shell.

use std::time::Duration;

use crate::config::{SlurmClusterConfig, PORT_BLOCK_SIZE};

const TEMPLATE: &str = include_str!("job.sh");

/// What one job's script needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptParams<'a> {
    /// The broker's submission id (a comment in the script).
    pub submission_id: &'a str,
    /// The job's directory (outcome, logs).
    pub job_dir: &'a str,
    /// The shell command to run.
    pub entrypoint: &'a str,
    /// The job's exact time limit, enforced by the script.
    pub time_limit: Option<Duration>,
    /// The GPU model, advertised to Ray as `accelerator_type:<MODEL>`.
    pub gpu_model: Option<&'a str>,
}

/// Quotes `value` for the shell: `'...'` with every `'` as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The script for one job on a cluster.
pub fn render(params: &ScriptParams<'_>, config: &SlurmClusterConfig) -> String {
    let path = |p: &std::path::Path| shell_quote(&p.to_string_lossy());
    let replacements = [
        // A comment line: no newlines, no quoting needed.
        (
            "@@SUBMISSION_ID@@",
            params.submission_id.replace(['\n', '\r'], " "),
        ),
        ("@@JOB_DIR@@", shell_quote(params.job_dir)),
        ("@@RAY_BIN@@", path(&config.ray_bin_dir)),
        ("@@ENTRYPOINT@@", shell_quote(params.entrypoint)),
        (
            "@@TIME_LIMIT_S@@",
            params
                .time_limit
                .map_or(0, |limit| limit.as_secs().max(1))
                .to_string(),
        ),
        (
            "@@START_TIMEOUT_S@@",
            config.ray_start_timeout.as_secs().to_string(),
        ),
        (
            "@@OBJECT_STORE_BYTES@@",
            config.object_store_bytes.to_string(),
        ),
        (
            "@@GPU_MODEL@@",
            shell_quote(params.gpu_model.unwrap_or_default()),
        ),
        ("@@PORT_RANGE_START@@", config.port_range_start.to_string()),
        ("@@PORT_BLOCKS@@", config.port_blocks().to_string()),
        ("@@PORT_BLOCK_SIZE@@", PORT_BLOCK_SIZE.to_string()),
        ("@@TMP_ROOT@@", path(&config.ray_tmp_root)),
    ];
    let mut script = TEMPLATE.to_string();
    for (placeholder, value) in replacements {
        script = script.replace(placeholder, &value);
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SlurmClusterConfig {
        crate::config::test_config("/opt/ray env/bin", "o")
    }

    fn params(entrypoint: &str) -> ScriptParams<'_> {
        ScriptParams {
            submission_id: "rb-x-1",
            job_dir: "/shared/jobs/o/rb-x-1",
            entrypoint,
            time_limit: Some(Duration::from_millis(90_500)),
            gpu_model: Some("A100"),
        }
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let script = render(&params("echo 'hi' && exit 3"), &config());
        assert!(!script.contains("@@"), "{script}");
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(script.contains(r"RB_ENTRYPOINT='echo '\''hi'\'' && exit 3'"));
        assert!(script.contains("RB_RAY_BIN='/opt/ray env/bin'"));
        assert!(script.contains("RB_TIME_LIMIT_S=90\n"));
        assert!(script.contains("RB_PORT_BLOCKS=34\n"));
        assert!(script.contains("RB_GPU_MODEL='A100'"));
    }

    #[test]
    fn the_script_is_valid_bash() {
        let script = render(&params("python -c 'print(1)'"), &config());
        let path = std::env::temp_dir().join(format!("rb-slurm-script-{}.sh", std::process::id()));
        std::fs::write(&path, &script).unwrap();
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        std::fs::remove_file(path).unwrap();
        assert!(status.success(), "bash -n rejected the script");
    }
}
