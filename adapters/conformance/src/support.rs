//! Helpers the checks share: building requests, waiting on states, tidying up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raybroker_adapter::{ClusterAdapter, RemoteState, RemoteStatus, SubmitAck, SubmitRequest};
use raybroker_core::{JobId, JobSpec};

use crate::Fixture;

/// A request for attempt 1 of a fresh broker job running `entrypoint`.
pub(crate) fn request(fixture: &Fixture, submission_id: &str, entrypoint: &str) -> SubmitRequest {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    SubmitRequest {
        submission_id: submission_id.to_string(),
        job_id: JobId::generate(now_ms),
        tenant: fixture.tenant.clone(),
        attempt: 1,
        spec: JobSpec {
            entrypoint: entrypoint.to_string(),
            resources: fixture.resources.clone(),
            ..JobSpec::default()
        },
        extra_env: BTreeMap::new(),
    }
}

/// Submits a fresh job, which must be [`SubmitAck::Created`].
pub(crate) async fn submit_new(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
    submission_id: &str,
    entrypoint: &str,
) -> Result<SubmitRequest, String> {
    let request = request(fixture, submission_id, entrypoint);
    match adapter.submit(&request).await {
        Ok(SubmitAck::Created) => Ok(request),
        Ok(SubmitAck::AlreadyExists) => Err(format!(
            "the first submit of fresh id {submission_id} answered AlreadyExists; \
             expected Created (is the id generator unique, or is the adapter's duplicate \
             detection matching too much?)"
        )),
        Err(e) => Err(format!(
            "submit of {submission_id} ({entrypoint:?}) failed: {e}"
        )),
    }
}

/// The status in one line, for messages.
pub(crate) fn describe(status: &RemoteStatus) -> String {
    let mut message = status.message.replace('\n', " ");
    if message.len() > 300 {
        let mut end = 300;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    format!(
        "{:?} (exit code {:?}, message {message:?})",
        status.state, status.exit_code
    )
}

/// Polls the status of `submission_id` until `done` holds, for at most `within`.
/// Transient adapter errors are retried until the deadline; others fail at once.
pub(crate) async fn wait_until(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
    submission_id: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&RemoteStatus) -> bool,
) -> Result<RemoteStatus, String> {
    let started = Instant::now();
    loop {
        let last = match adapter.status(submission_id).await {
            Ok(status) if done(&status) => return Ok(status),
            Ok(status) => describe(&status),
            Err(e) if e.kind.is_transient() => format!("error {e}"),
            Err(e) => return Err(format!("status of {submission_id} failed: {e}")),
        };
        if started.elapsed() >= within {
            return Err(format!(
                "job {submission_id} was not {what} within {:.0} s; last status: {last}",
                within.as_secs_f64(),
            ));
        }
        tokio::time::sleep(fixture.timeouts.poll).await;
    }
}

/// Waits until the job is final.
pub(crate) async fn wait_final(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
    submission_id: &str,
    within: Duration,
) -> Result<RemoteStatus, String> {
    wait_until(adapter, fixture, submission_id, within, "final", |s| {
        s.state.is_final()
    })
    .await
}

/// Best effort: stop the job, wait for it to be final, remove it. Failures
/// are logged, never reported: the check's own outcome is what matters.
pub(crate) async fn tidy(adapter: &dyn ClusterAdapter, fixture: &Fixture, submission_id: &str) {
    if let Err(e) = adapter.cancel(submission_id).await {
        tracing::warn!(submission_id, error = %e, "tidy: cancel failed");
    }
    let status = wait_until(
        adapter,
        fixture,
        submission_id,
        fixture.timeouts.stop,
        "final",
        |s| s.state.is_final() || s.state == RemoteState::NotFound,
    )
    .await;
    if let Err(message) = status {
        tracing::warn!(submission_id, %message, "tidy: job did not end");
        return;
    }
    if let Err(e) = adapter.cleanup(submission_id).await {
        tracing::warn!(submission_id, error = %e, "tidy: cleanup failed");
    }
}
