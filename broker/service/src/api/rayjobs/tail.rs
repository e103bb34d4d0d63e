//! `GET /api/jobs/{id}/logs/tail`: the job's log as a WebSocket stream of
//! text messages, from the start, closed normally (1000) once the job has
//! finished and its whole log was sent, as a Ray head does. Ray 2.60's
//! client raises on an abnormal closure, so every way out closes properly:
//! 1001 when the broker shuts down, 1011 when the queue fails.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use raybroker_core::JobId;

use super::{find_job, RayCaller, RayError};
use crate::api::AppState;

/// How often the kept log is read for new text.
const POLL: Duration = Duration::from_millis(500);

/// Upgrades to a WebSocket that follows the caller's job `id`.
pub(crate) async fn tail(
    State(state): State<AppState>,
    RayCaller(caller): RayCaller,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, RayError> {
    let job = find_job(&state, &caller, &id).await?;
    let upgrade = upgrade.map_err(|e| RayError::bad_request(e.to_string()))?;
    tracing::debug!(job_id = %job.id, "following a log over a websocket");
    Ok(upgrade.on_upgrade(move |socket| follow(state, job.id, socket)))
}

/// Why following ended.
enum End {
    /// The job finished and its log was sent.
    Finished,
    /// The broker is shutting down.
    ShuttingDown,
    /// The queue failed.
    Failed,
    /// The client went away; nothing more can be sent.
    Gone,
}

async fn follow(state: AppState, id: JobId, mut socket: WebSocket) {
    let end = stream_log(&state, &id, &mut socket).await;
    let (code, reason) = match end {
        End::Finished => (close_code::NORMAL, "job finished"),
        End::ShuttingDown => (close_code::AWAY, "broker shutting down"),
        End::Failed => (close_code::ERROR, "broker error; see its log"),
        End::Gone => return,
    };
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Sends new log text every [`POLL`] until the job has finished and its log
/// was sent in full.
async fn stream_log(state: &AppState, id: &JobId, socket: &mut WebSocket) -> End {
    let mut offset = 0;
    let mut shutdown = state.shutdown.clone();
    loop {
        // The state is read before the log: the log of a job seen finished
        // is complete (the reconcile loop keeps it before finishing a job).
        let finished = match state.queue.get(id).await {
            Ok(job) => job.is_none_or(|job| job.state.is_terminal()),
            Err(err) => {
                tracing::warn!(job_id = %id, error = %err, "log tail: cannot read the job");
                return End::Failed;
            }
        };
        match state.queue.logs(id, offset).await {
            Ok((text, next)) => {
                offset = next;
                if !text.is_empty() && socket.send(Message::Text(text.into())).await.is_err() {
                    return End::Gone;
                }
            }
            Err(err) => {
                tracing::warn!(job_id = %id, error = %err, "log tail: cannot read the log");
                return End::Failed;
            }
        }
        if finished {
            return End::Finished;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return End::ShuttingDown,
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::Gone,
                Some(Ok(_)) => {} // pings are answered by the library; text is ignored
            },
        }
    }
}
