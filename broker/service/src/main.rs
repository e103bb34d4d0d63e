//! `raybroker`: the broker's command-line tool.
//!
//! `raybroker serve` runs the broker (the service library); `raybroker
//! hash-token` prints the hash of a token for the config; every other
//! subcommand is a client of a running broker (see `cli`).

mod cli;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::cli::error::{CliError, EXIT_FAILED};
use crate::cli::{Cli, Command, GlobalArgs, LogFormat, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    match cli.command {
        Command::Client(command) => report(cli::run(cli.global, command)),
        Command::Serve(args) => serve(&args),
        Command::HashToken => report(hash_token(&cli.global)),
    }
}

/// Prints a CLI error the way users expect it and picks the exit status.
fn report(result: Result<ExitCode, CliError>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprint!("{}", err.render());
            err.exit_code()
        }
    }
}

/// `raybroker serve --config FILE`: logs as RUST_LOG says, runs until a signal.
fn serve(args: &ServeArgs) -> ExitCode {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(err) => {
            if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() {
                eprintln!("warning: ignoring RUST_LOG ({err}); logging at info");
            }
            EnvFilter::new("info")
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(raybroker::serve::serve_from_file(&args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Plainly for people (a config error spans several lines), and
            // as a log record too when a collector reads JSON logs.
            if args.log_format == LogFormat::Json {
                tracing::error!(error = format!("{err:#}"), "raybroker stopped");
            }
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `raybroker hash-token`: the token from stdin or `--token-file`, hashed
/// the way the broker stores tokens, for pasting into the config.
fn hash_token(global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let token = cli::token::token_to_hash(global.token_file_from_command_line())?;
    if token.len() < raybroker::config::MIN_TOKEN_LEN {
        eprintln!(
            "warning: the token is shorter than {} characters; generate one with `openssl rand -hex 32`",
            raybroker::config::MIN_TOKEN_LEN
        );
    }
    cli::output::print(&format!("{}\n", raybroker::auth::hash_token(&token)))?;
    Ok(ExitCode::SUCCESS)
}
