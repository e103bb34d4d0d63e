//! `raybroker group ...`: submit many jobs as one group (parallel up to a
//! concurrency, or in series), follow, list, cancel, and read results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::Value;

use super::error::CliError;
use super::jobs::{more_hint, PageArgs, MAX_PAGES};
use super::output::{self, plain_table, render, OutputFormat};
use super::Context;

/// What to do with groups.
#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Submit a group from a YAML or JSON file (see docs/groups-and-sweeps.md).
    Submit(FileArg),
    /// Show a group: state, counts by state, every member.
    Status(GroupArg),
    /// Show every member's state, exit code and last metric values.
    Results(GroupArg),
    /// List your groups, newest first (a page; --all for every one).
    List(PageArgs),
    /// Cancel a group: members not started never start, running ones are cancelled.
    Cancel(GroupArg),
}

/// A spec file.
#[derive(Debug, clap::Args)]
pub struct FileArg {
    /// The YAML (or `.json`) file.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}

/// A group named on the command line.
#[derive(Debug, clap::Args)]
pub struct GroupArg {
    /// The group's id, as printed by `group submit` and `group list`.
    #[arg(value_name = "GROUP")]
    pub group: String,
}

/// Runs a `group` subcommand.
pub async fn run(ctx: &Context, command: &GroupCommand) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    let mut more = None;
    let (raw, body) = match command {
        GroupCommand::Submit(arg) => {
            post_file(ctx, "v1/groups", &arg.file, "submit the group").await?
        }
        GroupCommand::Status(arg) => {
            get(ctx, &format!("v1/groups/{}", arg.group), "read the group").await?
        }
        GroupCommand::Results(arg) => {
            let path = format!("v1/groups/{}/results", arg.group);
            get(ctx, &path, "read the group's results").await?
        }
        GroupCommand::List(args) => {
            let (raw, body, left) = list_pages(ctx, "v1/groups", "groups", args).await?;
            more = left;
            (raw, body)
        }
        GroupCommand::Cancel(arg) => {
            let path = format!("v1/groups/{}/cancel", arg.group);
            let request = client.request(Method::POST, &path)?;
            let reply = client.call::<Value>(request, "cancel the group").await?;
            (reply.raw, reply.body)
        }
    };
    let text = match ctx.output {
        OutputFormat::Json => output::raw_json(&raw),
        OutputFormat::Table => match command {
            GroupCommand::List(_) => groups_table(&body),
            GroupCommand::Results(_) => group_detail(&body, true),
            _ => group_detail(&body, false),
        },
    };
    output::print(&text)?;
    more_hint("groups", more.as_deref());
    Ok(ExitCode::SUCCESS)
}

/// `GET path` (a listing of `field`), one page or, with `--all`, every page:
/// the raw body (a page as the broker sent it, or every page's items under
/// `field`), its parsed value, and the cursor of the page after it, if any.
pub async fn list_pages(
    ctx: &Context,
    path: &str,
    field: &str,
    args: &PageArgs,
) -> Result<(String, Value, Option<String>), CliError> {
    let client = ctx.client()?;
    let what = format!("list {field}");
    let mut cursor = args.cursor.clone();
    let mut items: Vec<Value> = Vec::new();
    let mut pages = 0;
    loop {
        let mut query = Vec::new();
        if let Some(limit) = args.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let reply = client.get::<Value>(path, &query, &what).await?;
        pages += 1;
        let next = reply.body["next_cursor"].as_str().map(String::from);
        if !args.all {
            return Ok((reply.raw, reply.body, next));
        }
        if let Some(Value::Array(page)) = reply.body.get(field) {
            items.extend(page.iter().cloned());
        }
        match next {
            Some(next) if cursor.as_deref() == Some(next.as_str()) || pages >= MAX_PAGES => {
                let why = format!("the broker keeps returning the same page of {field}");
                return Err(CliError::failed(why));
            }
            Some(next) => cursor = Some(next),
            None => {
                let body = serde_json::json!({ field: items });
                return Ok((format!("{body}"), body, None));
            }
        }
    }
}

/// `GET path` as JSON: the raw body and the parsed value.
pub async fn get(ctx: &Context, path: &str, what: &str) -> Result<(String, Value), CliError> {
    let reply = ctx.client()?.get::<Value>(path, &[], what).await?;
    Ok((reply.raw, reply.body))
}

/// `POST path` with the file's text, as YAML unless it ends in `.json`.
pub async fn post_file(
    ctx: &Context,
    path: &str,
    file: &Path,
    what: &str,
) -> Result<(String, Value), CliError> {
    let text = std::fs::read_to_string(file).map_err(|err| {
        CliError::usage(format!("cannot read {}: {err}", file.display()))
            .with_hint("pass the spec file with -f FILE")
    })?;
    let json = file.extension().is_some_and(|e| e == "json");
    let content_type = if json {
        "application/json"
    } else {
        "application/yaml"
    };
    let client = ctx.client()?;
    let request = client
        .request(Method::POST, path)?
        .header(CONTENT_TYPE, content_type)
        .body(text);
    let reply = client.call::<Value>(request, what).await?;
    Ok((reply.raw, reply.body))
}

/// A JSON value as a short cell: strings bare, absent as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `state: n, state: n` from a `counts` object.
pub fn counts_text(counts: &Value) -> String {
    counts
        .as_object()
        .map(|all| {
            all.iter()
                .map(|(state, n)| format!("{state}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn groups_table(body: &Value) -> String {
    let mut table = plain_table(&["ID", "NAME", "MODE", "STATE", "MEMBERS"]);
    for group in body["groups"].as_array().into_iter().flatten() {
        table.add_row(vec![
            cell(&group["id"]),
            cell(&group["name"]),
            cell(&group["mode"]),
            cell(&group["state"]),
            counts_text(&group["counts"]),
        ]);
    }
    render(&table)
}

fn group_detail(group: &Value, with_metrics: bool) -> String {
    let limit = match &group["max_concurrency"] {
        Value::Null if group["mode"] == "parallel" => ", no concurrency limit".to_string(),
        Value::Null => format!(", on failure: {}", cell(&group["on_failure"])),
        n => format!(", at most {n} at once"),
    };
    let mut text = format!(
        "group    {}\nname     {}\nmode     {}{limit}\nstate    {}: {}\nmembers  {}\n\n",
        cell(&group["id"]),
        cell(&group["name"]),
        cell(&group["mode"]),
        cell(&group["state"]),
        cell(&group["reason"]),
        counts_text(&group["counts"]),
    );
    let header: &[&str] = if with_metrics {
        &["#", "JOB", "NAME", "STATE", "CLUSTER", "EXIT", "METRICS"]
    } else {
        &["#", "JOB", "NAME", "STATE", "CLUSTER", "REASON"]
    };
    let mut table = plain_table(header);
    for member in group["members"].as_array().into_iter().flatten() {
        let state = match &member["state"] {
            Value::Null => "not started".to_string(),
            s => cell(s),
        };
        let mut row = vec![
            cell(&member["index"]),
            cell(&member["job_id"]),
            cell(&member["name"]),
            state,
            cell(&member["cluster"]),
        ];
        if with_metrics {
            row.push(cell(&member["exit_code"]));
            row.push(
                member["metrics"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default(),
            );
        } else {
            row.push(
                member["reason"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect(),
            );
        }
        table.add_row(row);
    }
    text.push_str(&render(&table));
    text
}
