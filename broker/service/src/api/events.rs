//! `/v1/jobs/{id}/events`: a job's state changes as server-sent events.
//!
//! The stream first replays the job's recorded history, then passes on the
//! job's live events from the [`EventHub`](super::hub::EventHub). It subscribes to the hub *before*
//! reading the job, so a change made in between is seen at least once; the
//! ones that are also in the history are dropped. The stream ends after a
//! terminal state, when the client goes away, or when the server shuts down.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use raybroker_core::{Job, JobEvent, JobId, JobState, TenantId, Transition};
use raybroker_queue::JobQueue;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::error::{ApiError, ErrorBody};
use super::jobs::visible_job;
use super::AppState;
use crate::auth::Caller;

/// How often a follower re-reads its job, so a change that never came through
/// the hub (trimmed from the stream, or lost while Redis was away) still arrives.
const RECHECK: Duration = Duration::from_secs(15);
/// Interval of keep-alive comments, so proxies keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One state change, as sent in an `event: transition`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TransitionEvent {
    /// The job.
    job_id: JobId,
    /// Its tenant.
    tenant: TenantId,
    /// The state before (`null` for the creation).
    from: Option<JobState>,
    /// The state after.
    to: JobState,
    /// The attempt the change belongs to (0 before the first dispatch).
    attempt: u32,
    /// Why, in words.
    reason: String,
    /// When, in milliseconds since the Unix epoch.
    at_ms: u64,
}

/// What identifies a change, for dropping the ones seen twice.
type ChangeKey = (Option<JobState>, JobState, u32, u64, String);

impl TransitionEvent {
    fn new(job_id: &JobId, tenant: &TenantId, t: &Transition) -> TransitionEvent {
        TransitionEvent {
            job_id: job_id.clone(),
            tenant: tenant.clone(),
            from: t.from,
            to: t.to,
            attempt: t.attempt,
            reason: t.reason.clone(),
            at_ms: t.at_ms,
        }
    }

    fn key(&self) -> ChangeKey {
        (
            self.from,
            self.to,
            self.attempt,
            self.at_ms,
            self.reason.clone(),
        )
    }
}

/// Follow a job's state changes (server-sent events).
///
/// Each `event: transition` carries a JSON [`TransitionEvent`]; the stream
/// ends after the job reaches a terminal state. An `event: error` ends it
/// early when the queue becomes unreachable.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "`text/event-stream` of `transition` events", content_type = "text/event-stream", body = TransitionEvent),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such job for this tenant", body = ErrorBody),
        (status = 503, description = "Queue unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = id.map_err(|_| ApiError::job_not_found())?;
    let live = state.events.subscribe();
    let job = visible_job(&state, &caller, &id).await?;
    tracing::debug!(tenant = %caller.tenant, job_id = %job.id, "following job events");

    let mut follow = Follow {
        queue: state.queue.clone(),
        job_id: job.id.clone(),
        tenant: job.tenant.clone(),
        live,
        next_check: Instant::now() + RECHECK,
        seen: HashSet::new(),
        pending: VecDeque::new(),
        finished: false,
    };
    follow.take_history(&job);

    let mut shutdown = state.shutdown.clone();
    let stopped = async move {
        // An error means the server is gone: stop as well.
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let events = stream::unfold(follow, |mut follow| async move {
        let event = follow.next_event().await?;
        Some((Ok(event), follow))
    })
    .take_until(stopped);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The state of one follower.
struct Follow {
    queue: JobQueue,
    job_id: JobId,
    tenant: TenantId,
    /// Every job's live events, from the hub.
    live: broadcast::Receiver<Arc<JobEvent>>,
    /// When to re-read the job next.
    next_check: Instant,
    /// Changes already sent.
    seen: HashSet<ChangeKey>,
    /// Events ready to send.
    pending: VecDeque<Event>,
    /// Nothing more to send: the job reached a terminal state or vanished,
    /// the queue failed, or the server is stopping.
    finished: bool,
}

impl Follow {
    /// Queues the history entries not sent yet; finishes on a terminal state.
    fn take_history(&mut self, job: &Job) {
        for transition in &job.history {
            self.push(TransitionEvent::new(&self.job_id, &self.tenant, transition));
        }
        if job.state.is_terminal() {
            self.finished = true;
        }
    }

    /// Queues a change unless it was sent already.
    fn push(&mut self, change: TransitionEvent) {
        if !self.seen.insert(change.key()) {
            return;
        }
        match Event::default().event("transition").json_data(&change) {
            Ok(event) => self.pending.push_back(event),
            Err(err) => tracing::error!(error = %err, "cannot encode a job event"),
        }
    }

    /// The next event to send, waiting as needed; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.finished {
                return None;
            }
            let recheck = match tokio::time::timeout_at(self.next_check, self.live.recv()).await {
                Ok(Ok(event)) => {
                    if event.job_id == self.job_id {
                        self.push(TransitionEvent::new(
                            &self.job_id,
                            &self.tenant,
                            &event.transition,
                        ));
                        self.finished = event.transition.to.is_terminal();
                    }
                    Instant::now() >= self.next_check
                }
                // Fell behind the hub: the job's history has what was missed.
                Ok(Err(RecvError::Lagged(_))) | Err(_) => true,
                Ok(Err(RecvError::Closed)) => {
                    self.finished = true;
                    false
                }
            };
            if recheck && !self.finished {
                if let Err(event) = self.reread().await {
                    return Some(event);
                }
            }
        }
    }

    /// Re-reads the job and queues what the hub did not deliver. On a queue
    /// error, finishes with an `error` event.
    async fn reread(&mut self) -> Result<(), Event> {
        self.next_check = Instant::now() + RECHECK;
        match self.queue.get(&self.job_id).await {
            Ok(Some(job)) => {
                self.take_history(&job);
                Ok(())
            }
            Ok(None) => {
                self.finished = true;
                Ok(())
            }
            Err(err) => {
                tracing::warn!(job_id = %self.job_id, error = %err, "event stream ends: queue error");
                self.finished = true;
                let message = serde_json::json!({
                    "message": "the job queue became unavailable; reconnect to resume"
                });
                Err(Event::default()
                    .event("error")
                    .json_data(message)
                    .unwrap_or_default())
            }
        }
    }
}
