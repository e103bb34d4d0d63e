//! `raybroker logs JOB [--follow]`: the job's log as the broker kept it.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use raybroker_core::JobId;

use super::error::CliError;
use super::output::OutputFormat;
use super::Context;

/// How often `--follow` asks for new text.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The flags of `raybroker logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The job's id.
    #[arg(value_name = "JOB")]
    pub job: JobId,
    /// Keep printing new lines until the job finishes.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// Prints the log (and follows it with `--follow`).
pub async fn run(ctx: &Context, args: &LogsArgs) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    let mut offset = 0;
    loop {
        let reply = client.logs(&args.job, offset).await?;
        if ctx.output == OutputFormat::Json {
            println!("{}", reply.raw.trim_end());
        } else {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            if out
                .write_all(reply.body.text.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return Ok(ExitCode::SUCCESS);
            }
        }
        offset = reply.body.next_offset;
        if !args.follow || reply.body.complete {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}
