//! `raybroker sweep ...`: submit a hyperparameter sweep, follow it with its
//! leaderboard, best trial and plot, export CSV, list and cancel.

use std::path::PathBuf;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use super::error::CliError;
use super::group::{cell, counts_text, get, list_pages, post_file, FileArg};
use super::jobs::{more_hint, PageArgs};
use super::output::{self, plain_table, render, OutputFormat};
use super::Context;

/// What to do with sweeps.
#[derive(Debug, clap::Subcommand)]
pub enum SweepCommand {
    /// Submit a sweep from a YAML or JSON file (see docs/groups-and-sweeps.md).
    Submit(FileArg),
    /// Leaderboard, best trial, and a plot of the objective per trial.
    Status(StatusArgs),
    /// List your sweeps, newest first (a page; --all for every one).
    List(PageArgs),
    /// Cancel a sweep: no new trials; running ones are cancelled.
    Cancel(SweepArg),
}

/// A sweep named on the command line.
#[derive(Debug, clap::Args)]
pub struct SweepArg {
    /// The sweep's id, as printed by `sweep submit` and `sweep list`.
    #[arg(value_name = "SWEEP")]
    pub sweep: String,
}

/// The flags of `sweep status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The sweep.
    #[command(flatten)]
    pub sweep: SweepArg,
    /// Print the leaderboard as CSV instead (to FILE, or stdout with `-`).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub csv: Option<String>,
    /// Where to write the plot (SVG); default `sweep-<SWEEP>.svg` here.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Do not write the plot.
    #[arg(long, conflicts_with = "plot")]
    pub no_plot: bool,
}

/// Runs a `sweep` subcommand.
pub async fn run(ctx: &Context, command: &SweepCommand) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    match command {
        SweepCommand::Submit(arg) => {
            let (raw, body) = post_file(ctx, "v1/sweeps", &arg.file, "submit the sweep").await?;
            show(ctx, &raw, || sweep_detail(&body))
        }
        SweepCommand::Status(args) => status(ctx, args).await,
        SweepCommand::List(args) => {
            let (raw, body, left) = list_pages(ctx, "v1/sweeps", "sweeps", args).await?;
            let shown = show(ctx, &raw, || sweeps_table(&body));
            more_hint("sweeps", left.as_deref());
            shown
        }
        SweepCommand::Cancel(arg) => {
            let path = format!("v1/sweeps/{}/cancel", arg.sweep);
            let request = client.request(Method::POST, &path)?;
            let reply = client.call::<Value>(request, "cancel the sweep").await?;
            show(ctx, &reply.raw, || sweep_detail(&reply.body))
        }
    }
}

fn show(ctx: &Context, raw: &str, table: impl FnOnce() -> String) -> Result<ExitCode, CliError> {
    let text = match ctx.output {
        OutputFormat::Json => output::raw_json(raw),
        OutputFormat::Table => table(),
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `sweep status`: the CSV when asked; else the leaderboard, then the plot
/// written to a file whose path is printed.
async fn status(ctx: &Context, args: &StatusArgs) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    let id = &args.sweep.sweep;
    if let Some(target) = &args.csv {
        let path = format!("v1/sweeps/{id}/leaderboard.csv");
        let csv = client
            .get_text(&path, &[], "export the leaderboard")
            .await?;
        if target == "-" {
            output::print(&csv)?;
        } else {
            std::fs::write(target, csv)
                .map_err(|err| CliError::failed(format!("cannot write {target}: {err}")))?;
            eprintln!("leaderboard written to {target}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (raw, body) = get(ctx, &format!("v1/sweeps/{id}"), "read the sweep").await?;
    let mut text = match ctx.output {
        OutputFormat::Json => output::raw_json(&raw),
        OutputFormat::Table => sweep_detail(&body),
    };
    if !args.no_plot {
        let svg = client
            .get_text(&format!("v1/sweeps/{id}/plot.svg"), &[], "draw the plot")
            .await?;
        let path = args
            .plot
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("sweep-{}.svg", id.to_lowercase())));
        std::fs::write(&path, svg).map_err(|err| {
            CliError::failed(format!(
                "cannot write the plot to {}: {err}",
                path.display()
            ))
            .with_hint("choose another place with --plot FILE, or skip it with --no-plot")
        })?;
        // On stderr with --output json, so stdout stays one JSON document.
        let line = format!("plot: {}\n", path.display());
        match ctx.output {
            OutputFormat::Json => eprint!("{line}"),
            OutputFormat::Table => text.push_str(&format!("\n{line}")),
        }
    }
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn sweeps_table(body: &Value) -> String {
    let mut table = plain_table(&["ID", "NAME", "ALGORITHM", "STATE", "TRIALS", "BEST"]);
    for sweep in body["sweeps"].as_array().into_iter().flatten() {
        table.add_row(vec![
            cell(&sweep["id"]),
            cell(&sweep["name"]),
            cell(&sweep["algorithm"]),
            cell(&sweep["state"]),
            counts_text(&sweep["counts"]),
            cell(&sweep["best"]["objective"]),
        ]);
    }
    render(&table)
}

/// Parameters as `name=value name=value`.
fn params_text(params: &Value) -> String {
    params
        .as_object()
        .map(|all| {
            all.iter()
                .map(|(name, value)| format!("{name}={}", cell(value)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn sweep_detail(sweep: &Value) -> String {
    let objective = &sweep["objective"];
    let mut text = format!(
        "sweep      {}\nname       {}\nalgorithm  {}\nobjective  {} ({})\nstate      {}: {}\ntrials     {} of {}\n",
        cell(&sweep["id"]),
        cell(&sweep["name"]),
        cell(&sweep["algorithm"]),
        cell(&objective["metric"]),
        cell(&objective["mode"]),
        cell(&sweep["state"]),
        cell(&sweep["reason"]),
        counts_text(&sweep["counts"]),
        cell(&sweep["total_trials"]),
    );
    let best = &sweep["best"];
    if best.is_object() {
        text.push_str(&format!(
            "best       trial {}: {} = {} with {}\n",
            cell(&best["index"]),
            cell(&objective["metric"]),
            cell(&best["objective"]),
            params_text(&best["params"]),
        ));
    }
    text.push('\n');
    let mut table = plain_table(&["TRIAL", "PARAMETERS", "OBJECTIVE", "STATE", "CLUSTER"]);
    for trial in sweep["leaderboard"].as_array().into_iter().flatten() {
        let mut state = cell(&trial["state"]);
        if let Some(rung) = trial["stopped_at_rung"].as_u64() {
            state = format!("{state} (rung {rung})");
        }
        table.add_row(vec![
            cell(&trial["index"]),
            params_text(&trial["params"]),
            cell(&trial["objective"]),
            state,
            cell(&trial["cluster"]),
        ]);
    }
    text.push_str(&render(&table));
    text
}
