//! `raybroker-e2e-broker CONFIG`: the broker as a process of its own.
//!
//! The end-to-end tests spawn this binary so they can kill it with SIGKILL
//! at any moment and start it again on the same config, as a crash would.
//! It runs exactly what `raybroker serve` runs ([`serve_from_file`]), with
//! logs on stderr (`RUST_LOG`, default `info`) so a test can keep them.

use std::path::PathBuf;
use std::process::ExitCode;

use raybroker::serve::serve_from_file;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let Some(config) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: raybroker-e2e-broker CONFIG");
        return ExitCode::from(2);
    };
    match serve_from_file(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
