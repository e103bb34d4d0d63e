//! `raybroker submit`: the flags, which mirror `ray job submit`, and the
//! command that posts the spec [`super::spec`] builds from them.

use std::process::ExitCode;

use raybroker_core::JobSpec;
use reqwest::StatusCode;

use super::error::CliError;
use super::output::{self, OutputFormat};
use super::spec::{build_spec, flag_errors, load_file};
use super::{watch, Context};

/// Shown under `raybroker submit --help`.
pub const EXAMPLES: &str = "\
Examples:
  raybroker submit --gpus 1 --gpu-type A100|H100 --memory 32GiB -- python train.py --task Isaac-Ant-v0
  raybroker submit -f job.yaml --priority 5 --wait
  raybroker submit --submission-id ant-seed-1 --working-dir s3://bucket/code.zip -- 'python train.py && echo done'

The command to run goes after `--`. Flags override the fields of the -f file.";

/// The flags of `raybroker submit`. Values stay text here so that
/// [`build_spec`] can explain every bad one in the same way.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SubmitArgs {
    /// A job spec file, YAML or JSON (`-` reads stdin); flags override its fields.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,
    /// Name shown in listings (default: derived from the entrypoint).
    #[arg(long)]
    pub name: Option<String>,
    /// CPUs per node, e.g. 8 or 0.5.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Memory per node, e.g. 32GiB, 512Mi or 2G.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// GPUs per node, e.g. 1, 8 or 0.25 (a quarter of a shared GPU).
    #[arg(long, value_name = "N")]
    pub gpus: Option<String>,
    /// Accepted GPU models, e.g. A100|H100 (repeatable).
    #[arg(long = "gpu-type", value_name = "MODELS")]
    pub gpu_types: Vec<String>,
    /// Nodes started together (a multi-node job); each gets the per-node resources.
    #[arg(long, value_name = "N")]
    pub nodes: Option<String>,
    /// Custom resources per node as JSON, e.g. '{"license_matlab": 1}'.
    #[arg(long, value_name = "JSON")]
    pub resources: Option<String>,
    /// An environment variable for the job (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// URI of the job's code, e.g. s3://bucket/code.zip (local directories are not uploaded).
    #[arg(long, value_name = "URI")]
    pub working_dir: Option<String>,
    /// A pip requirement to install (repeatable).
    #[arg(long = "pip", value_name = "REQUIREMENT")]
    pub pip: Vec<String>,
    /// URI of an extra Python module (repeatable).
    #[arg(long = "py-modules", value_name = "URI")]
    pub py_modules: Vec<String>,
    /// A Ray runtime_env as JSON; replaces the file's, then the flags above apply.
    #[arg(long, value_name = "JSON")]
    pub runtime_env_json: Option<String>,
    /// Higher runs first within your tenant, -1000 to 1000.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub priority: Option<String>,
    /// How many times an attempt lost to the infrastructure is retried.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<String>,
    /// Retries of one failure class, e.g. job_error=2 (repeatable).
    #[arg(long = "retry", value_name = "CLASS=N")]
    pub retry: Vec<String>,
    /// Wall-clock limit of one attempt, e.g. 90m or 2h.
    #[arg(long, value_name = "DURATION")]
    pub time_limit: Option<String>,
    /// A label to find the job by (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Run only on these clusters (repeatable or comma-separated).
    #[arg(long = "allow-cluster", value_name = "CLUSTER", value_delimiter = ',')]
    pub allow_clusters: Vec<String>,
    /// Never run on these clusters (repeatable or comma-separated).
    #[arg(long = "deny-cluster", value_name = "CLUSTER", value_delimiter = ',')]
    pub deny_clusters: Vec<String>,
    /// Run only on clusters with this label (repeatable).
    #[arg(long = "require-label", value_name = "KEY=VALUE")]
    pub require_labels: Vec<String>,
    /// Submitting again with the same key returns the existing job.
    #[arg(long, visible_alias = "submission-id", value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Follow the job until it finishes; exit 1 unless it succeeds.
    #[arg(long)]
    pub wait: bool,
    /// Print the spec that would be submitted, and, when a broker answers,
    /// where it would be placed now; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The command to run, after `--`; one argument is taken as a shell
    /// command as is, several are joined with shell quoting.
    #[arg(last = true, value_name = "ENTRYPOINT")]
    pub entrypoint: Vec<String>,
}

/// Runs `raybroker submit`.
pub async fn run(ctx: &Context, args: &SubmitArgs) -> Result<ExitCode, CliError> {
    let base = match &args.file {
        Some(path) => load_file(path, !args.entrypoint.is_empty())?,
        None => JobSpec::default(),
    };
    let spec = build_spec(base, args).map_err(flag_errors)?;
    if args.dry_run {
        return dry_run(ctx, &spec).await;
    }
    let client = ctx.client()?;
    let reply = client.submit(&spec).await?;
    let job = &reply.body;
    match ctx.output {
        OutputFormat::Json => output::print(&output::raw_json(&reply.raw))?,
        OutputFormat::Table if reply.status == StatusCode::OK => {
            let key = job
                .spec
                .idempotency_key
                .as_deref()
                .or(spec.idempotency_key.as_deref())
                .unwrap_or("-");
            output::print(&format!(
                "job {} already exists (idempotency key {key}); it is {}\n",
                job.id, job.state
            ))?;
        }
        OutputFormat::Table => {
            output::print(&format!("submitted job {} ({})\n", job.id, job.state))?;
        }
    }
    if args.wait {
        watch::follow(ctx, &job.id).await
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints the spec; then, when a broker answers, what placement would do
/// with it now. Without a reachable broker (or a token) the spec alone is
/// printed and a note goes to stderr; a broker refusing the spec is an error.
///
/// `--output json` prints the spec alone offline, and
/// `{"spec": ..., "placement": ...}` when the broker answered.
async fn dry_run(ctx: &Context, spec: &JobSpec) -> Result<ExitCode, CliError> {
    let spec_json = serde_json::to_value(spec)
        .map_err(|err| CliError::failed(format!("cannot encode the spec: {err}")))?;
    let pretty = |value: &serde_json::Value| {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    };
    let report = match ctx.client() {
        Ok(client) => match client.dry_run(spec).await {
            Ok(reply) => Some(reply),
            Err(err) if err.transient => {
                eprintln!(
                    "note: no broker answered at {} ({}); placement not explained",
                    client.server(),
                    err.message
                );
                None
            }
            Err(err) => return Err(err),
        },
        Err(err) => {
            eprintln!("note: placement not explained: {}", err.message);
            None
        }
    };
    match (ctx.output, report) {
        (OutputFormat::Json, Some(reply)) => {
            let placement: serde_json::Value =
                serde_json::from_str(&reply.raw).unwrap_or(serde_json::Value::Null);
            let both = serde_json::json!({"spec": spec_json, "placement": placement});
            output::print(&format!("{}\n", pretty(&both)))?;
        }
        (OutputFormat::Table, Some(reply)) => {
            output::print(&format!(
                "{}\n\nplacement if submitted now:\n{}",
                pretty(&spec_json),
                super::jobs::with_newline(&reply.body.text)
            ))?;
        }
        (_, None) => output::print(&format!("{}\n", pretty(&spec_json)))?,
    }
    Ok(ExitCode::SUCCESS)
}
