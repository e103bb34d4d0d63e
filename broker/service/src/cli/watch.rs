//! `raybroker watch` (and `submit --wait`): follows a job's server-sent
//! events, printing one line per state change, until the job is terminal.
//!
//! The broker replays the job's history first, then follows it live, so a
//! watch started late still shows every change. The stream is a convenience
//! and the job record is the truth: when the stream ends or goes quiet before
//! a terminal state, the job is read again and, if it is still live, the
//! stream is reopened; changes already printed are not printed twice.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt as _;
use raybroker_core::{Job, JobId, JobState};

use super::error::{CliError, EXIT_FAILED};
use super::output::{self, OutputFormat};
use super::sse::SseParser;
use super::wire::TransitionEvent;
use super::Context;

/// Reopen the stream when nothing (not even a keep-alive) arrived for this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Consecutive reopen attempts without a new event before giving up.
const MAX_RECONNECTS: u32 = 8;

/// Runs `raybroker watch JOB`.
pub async fn run(ctx: &Context, id: &JobId) -> Result<ExitCode, CliError> {
    follow(ctx, id).await
}

/// The exit status for a finished job: 0 only when it succeeded.
pub fn exit_for(state: JobState) -> ExitCode {
    if state == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// What identifies one change, to print it once across reconnects.
type ChangeKey = (Option<JobState>, JobState, u32, u64, String);

/// Follows `id` until it is terminal; the exit status says how it ended.
pub async fn follow(ctx: &Context, id: &JobId) -> Result<ExitCode, CliError> {
    let client = ctx.client()?;
    let mut printed: HashSet<ChangeKey> = HashSet::new();
    let mut last_event_id: Option<String> = None;
    let mut connected_once = false;
    let mut quiet_reconnects = 0;
    loop {
        match follow_stream(ctx, id, &mut printed, &mut last_event_id).await {
            Ok(StreamEnd::Terminal(state)) => return Ok(exit_for(state)),
            Ok(StreamEnd::Ended { printed_new }) => {
                connected_once = true;
                if printed_new {
                    quiet_reconnects = 0;
                }
            }
            // A broker that was never reached is reported at once, not retried.
            Err(err) if err.transient && connected_once => {}
            Err(err) => return Err(err),
        }
        // The stream ended early: the job record decides whether we are done.
        match client.job(id).await {
            Ok(reply) if reply.body.state.is_terminal() => {
                print_final(ctx.output, &reply.body)?;
                return Ok(exit_for(reply.body.state));
            }
            Ok(_) => {}
            Err(err) if err.transient => {}
            Err(err) => return Err(err),
        }
        quiet_reconnects += 1;
        if quiet_reconnects > MAX_RECONNECTS {
            return Err(CliError::failed(format!(
                "lost the event stream of job {id} and could not get it back"
            ))
            .with_hint(format!(
                "the job itself is unaffected; check it with `raybroker status {id}`"
            )));
        }
        tokio::time::sleep(backoff(quiet_reconnects)).await;
    }
}

/// 1s, 2s, 4s, ... capped at 30s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.saturating_sub(1).min(5)).min(30))
}

/// How one stream connection ended.
enum StreamEnd {
    /// A terminal transition arrived.
    Terminal(JobState),
    /// The stream closed, broke or went quiet first.
    Ended {
        /// True when this connection brought at least one change not printed before.
        printed_new: bool,
    },
}

async fn follow_stream(
    ctx: &Context,
    id: &JobId,
    printed: &mut HashSet<ChangeKey>,
    last_event_id: &mut Option<String>,
) -> Result<StreamEnd, CliError> {
    let client = ctx.client()?;
    let response = client.events(id, last_event_id.as_deref()).await?;
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    let mut printed_new = false;
    loop {
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            // Closed, broken or silent: the caller checks the job and reconnects.
            Ok(None) | Ok(Some(Err(_))) | Err(_) => return Ok(StreamEnd::Ended { printed_new }),
        };
        let events = parser
            .push(&chunk)
            .map_err(|err| CliError::failed(err.to_string()))?;
        for event in events {
            if event.id.is_some() {
                last_event_id.clone_from(&event.id);
            }
            if event.event == "error" {
                eprintln!(
                    "warning: {}; reconnecting",
                    stream_error_message(&event.data)
                );
                return Ok(StreamEnd::Ended { printed_new });
            }
            if event.event != "transition" {
                continue;
            }
            let change: TransitionEvent = match serde_json::from_str(&event.data) {
                Ok(change) => change,
                Err(err) => {
                    eprintln!("warning: skipped an event this CLI cannot read: {err}");
                    continue;
                }
            };
            if change.job_id != *id {
                continue;
            }
            let key = (
                change.from,
                change.to,
                change.attempt,
                change.at_ms,
                change.reason.clone(),
            );
            if printed.insert(key) {
                printed_new = true;
                match ctx.output {
                    OutputFormat::Json => output::print(&format!("{}\n", event.data.trim()))?,
                    OutputFormat::Table => {
                        output::print(&format!("{}\n", output::transition_line(&change)))?
                    }
                }
            }
            if change.to.is_terminal() {
                return Ok(StreamEnd::Terminal(change.to));
            }
        }
    }
}

/// The message of an `event: error` (`{"message": ...}`), or its raw data.
fn stream_error_message(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("the event stream reported an error: {data}"))
}

/// `job 01J... is running on onprem-a (attempt 1): started`.
fn current_line(job: &Job) -> String {
    let mut line = format!("job {} is {}", job.id, job.state);
    if let Some(cluster) = &job.cluster {
        line.push_str(&format!(" on {cluster}"));
    }
    if job.attempt > 0 {
        line.push_str(&format!(" (attempt {})", job.attempt));
    }
    if !job.reason.is_empty() {
        line.push_str(&format!(": {}", job.reason));
    }
    line
}

/// Reports a job found finished by reading it (not from an event).
fn print_final(format: OutputFormat, job: &Job) -> Result<(), CliError> {
    match format {
        // Scripts read the exit status; the event lines stay one kind of object.
        OutputFormat::Json => Ok(()),
        OutputFormat::Table => output::print(&format!("{}\n", current_line(job))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_success_exits_zero() {
        assert_eq!(exit_for(JobState::Succeeded), ExitCode::SUCCESS);
        assert_eq!(exit_for(JobState::Failed), ExitCode::from(EXIT_FAILED));
        assert_eq!(exit_for(JobState::Cancelled), ExitCode::from(EXIT_FAILED));
    }

    #[test]
    fn stream_errors_show_their_message() {
        assert_eq!(
            stream_error_message(r#"{"message": "the job queue became unavailable"}"#),
            "the job queue became unavailable"
        );
        assert_eq!(
            stream_error_message("oops"),
            "the event stream reported an error: oops"
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
