//! The `raybroker` command line: the subcommands and global flags (clap),
//! and the client commands that talk to a running broker over HTTP.
//!
//! `serve` and `hash-token` are run by `main.rs` with the service library;
//! everything else is a client command run here on a small tokio runtime.

pub mod client;
pub mod clusters;
pub mod error;
pub mod group;
pub mod import;
pub mod jobs;
pub mod logs;
pub mod output;
pub mod results;
pub mod spec;
pub mod sse;
pub mod submit;
pub mod sweep;
pub mod token;
pub mod trace;
pub mod watch;
pub mod wire;

use std::cell::OnceCell;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _};
use raybroker_core::JobId;

use self::client::Client;
use self::error::CliError;
use self::output::OutputFormat;

/// The whole command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "raybroker",
    version,
    about = "Submit and follow Ray jobs across clusters through a raybroker, or run the broker.",
    after_help = "Exit status: 0 ok, 1 the job or the operation failed, 2 bad usage or an invalid job."
)]
pub struct Cli {
    /// Flags every client command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the global flags, so they stand apart from a subcommand's own.
const GLOBAL: &str = "Global options";

/// Flags every subcommand accepts, before or after its name.
#[derive(Clone, Debug, clap::Args)]
pub struct GlobalArgs {
    /// The broker's URL.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "RAYBROKER_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,
    /// Your API token (prefer RAYBROKER_TOKEN or --token-file: arguments show up in `ps`).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "RAYBROKER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// A file holding your API token.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "RAYBROKER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub token_file: Option<PathBuf>,
    /// `table` for people, `json` for scripts (the broker's JSON, unchanged).
    #[arg(
        short = 'o',
        long,
        global = true,
        help_heading = GLOBAL,
        env = "RAYBROKER_OUTPUT",
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,
    /// Where clap found `token` (command line or environment).
    #[arg(skip)]
    pub token_source: Option<ValueSource>,
    /// Where clap found `token_file`.
    #[arg(skip)]
    pub token_file_source: Option<ValueSource>,
}

impl GlobalArgs {
    /// `--token-file` only when given on the command line (for `hash-token`,
    /// which must not silently hash the file named by RAYBROKER_TOKEN_FILE).
    pub fn token_file_from_command_line(&self) -> Option<&std::path::Path> {
        match self.token_file_source {
            Some(ValueSource::CommandLine) => self.token_file.as_deref(),
            _ => None,
        }
    }
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Commands that talk to a running broker.
    #[command(flatten)]
    Client(ClientCommand),
    /// Run the broker: the HTTP API over the Redis job queue.
    Serve(ServeArgs),
    /// Read a token from stdin (or --token-file) and print the SHA-256 hex to put in the config.
    HashToken,
}

/// The subcommands that talk to a running broker.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Submit a job from a spec file and/or flags: `raybroker submit --gpus 1 -- python train.py`.
    #[command(after_help = submit::EXAMPLES)]
    Submit(Box<submit::SubmitArgs>),
    /// Show one job: state, reason, resources, attempts and history.
    Status(JobArg),
    /// List your jobs, newest first.
    List(jobs::ListArgs),
    /// Cancel a job.
    Cancel(JobArg),
    /// Follow a job's state changes until it finishes; exit 0 only if it succeeded.
    Watch(JobArg),
    /// Print a job's log, kept by the broker (`--follow` until it finishes).
    Logs(logs::LogsArgs),
    /// The configured clusters: list them (the default), or clean one up.
    Clusters(clusters::ClustersArgs),
    /// Explain a job's placement: why it waits, cluster by cluster, or where it went.
    Explain(JobArg),
    /// Many jobs as one group, in parallel (up to a concurrency) or in series.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Hyperparameter sweeps: grid, random or TPE search, ASHA early stopping.
    #[command(subcommand)]
    Sweep(sweep::SweepCommand),
    /// Show a job's whole trace: broker, cluster and job spans as one tree.
    Trace(trace::TraceArgs),
    /// Show what jobs came to: one job, or many per job or grouped (--by), as a table, JSON or --csv.
    Results(results::ResultsArgs),
}

/// A job named on the command line.
#[derive(Debug, clap::Args)]
pub struct JobArg {
    /// The job's id, as printed by `submit` and `list`.
    #[arg(value_name = "JOB")]
    pub job: JobId,
}

/// The flags of `raybroker serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The broker's config file.
    #[arg(long, env = "RAYBROKER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Log lines as text or JSON; RUST_LOG sets the filter (default: info).
    #[arg(
        long,
        env = "RAYBROKER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// How `serve` writes its logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Cli {
    /// Parses the process's arguments (exiting with status 2 on bad usage)
    /// and records where the token flags came from.
    pub fn parse_args() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = match Cli::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(err) => err.format(&mut Cli::command()).exit(),
        };
        cli.global.token_source = matches.value_source("token");
        cli.global.token_file_source = matches.value_source("token_file");
        cli
    }
}

/// What every client command needs: the output format and, built on first
/// use, the HTTP client (so `submit --dry-run` needs no server or token).
pub struct Context {
    /// `--output`.
    pub output: OutputFormat,
    /// The flags the client is built from.
    global: GlobalArgs,
    /// Built by [`Context::client`].
    client: OnceCell<Client>,
}

impl Context {
    /// A context for these flags.
    pub fn new(global: GlobalArgs) -> Context {
        Context {
            output: global.output,
            global,
            client: OnceCell::new(),
        }
    }

    /// The HTTP client, resolving the token and checking the URL on first use.
    pub fn client(&self) -> Result<&Client, CliError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let global = &self.global;
        let token = token::resolve(
            global.token.as_deref().map(|value| token::Given {
                value,
                source: global.token_source,
            }),
            global.token_file.as_deref().map(|value| token::Given {
                value,
                source: global.token_file_source,
            }),
        )?;
        let client = Client::new(&global.server, token)?;
        Ok(self.client.get_or_init(|| client))
    }
}

/// Runs a client command to completion.
pub fn run(global: GlobalArgs, command: ClientCommand) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::failed(format!("cannot start the async runtime: {err}")))?;
    let ctx = Context::new(global);
    runtime.block_on(async {
        match &command {
            ClientCommand::Submit(args) => submit::run(&ctx, args).await,
            ClientCommand::Status(arg) => jobs::status(&ctx, &arg.job).await,
            ClientCommand::List(args) => jobs::list(&ctx, args).await,
            ClientCommand::Cancel(arg) => jobs::cancel(&ctx, &arg.job).await,
            ClientCommand::Watch(arg) => watch::run(&ctx, &arg.job).await,
            ClientCommand::Logs(args) => logs::run(&ctx, args).await,
            ClientCommand::Clusters(args) => clusters::run(&ctx, args).await,
            ClientCommand::Explain(arg) => jobs::explain(&ctx, &arg.job).await,
            ClientCommand::Group(command) => group::run(&ctx, command).await,
            ClientCommand::Sweep(command) => sweep::run(&ctx, command).await,
            ClientCommand::Trace(args) => trace::run(&ctx, args).await,
            ClientCommand::Results(args) => results::run(&ctx, args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "raybroker",
            "list",
            "--output",
            "json",
            "--server",
            "http://b:1",
        ])
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.server, "http://b:1");
        let cli = Cli::try_parse_from(["raybroker", "-o", "json", "clusters"]).unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
    }

    #[test]
    fn job_ids_are_checked_by_the_parser() {
        let err = Cli::try_parse_from(["raybroker", "status", "not-a-job"]).unwrap_err();
        assert!(err.to_string().contains("is not a job id"), "{err}");
        let cli =
            Cli::try_parse_from(["raybroker", "status", "01jdq3zk8v6x9t2m4n5p7r8s9a"]).unwrap();
        match cli.command {
            Command::Client(ClientCommand::Status(arg)) => {
                assert_eq!(arg.job.as_str(), "01JDQ3ZK8V6X9T2M4N5P7R8S9A")
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn submit_takes_the_entrypoint_after_the_double_dash() {
        let cli = Cli::try_parse_from([
            "raybroker",
            "submit",
            "--gpus",
            "1",
            "--submission-id",
            "k1",
            "--priority",
            "-5",
            "--",
            "python",
            "train.py",
            "--lr",
            "0.1",
        ])
        .unwrap();
        let Command::Client(ClientCommand::Submit(args)) = cli.command else {
            panic!("not a submit");
        };
        assert_eq!(args.entrypoint, ["python", "train.py", "--lr", "0.1"]);
        assert_eq!(args.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(args.priority.as_deref(), Some("-5"));
        assert_eq!(args.gpus.as_deref(), Some("1"));
    }
}
