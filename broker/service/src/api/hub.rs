//! One follower of the queue's event stream, fanned out to every open event
//! stream of the API.
//!
//! Reading the stream blocks a pooled Redis connection, so the service runs a
//! single reader (as the queue asks) instead of one per watcher. A watcher
//! subscribes *before* it reads its job, so every change committed after that
//! read reaches it through the hub.

use std::sync::Arc;
use std::time::Duration;

use raybroker_core::JobEvent;
use raybroker_queue::JobQueue;
use tokio::sync::{broadcast, watch};
use tracing::Instrument as _;

use crate::metrics::Metrics;

/// How long one read waits for news before looking again.
const READ_BLOCK: Duration = Duration::from_secs(5);
/// Most events read at once.
const READ_BATCH: usize = 512;
/// Pause after a failed read, so a Redis outage is not a busy loop.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Events buffered per subscriber; one that falls further behind re-reads its job.
const CAPACITY: usize = 4096;

/// Hands out subscriptions to the live event stream. Cheap to clone.
#[derive(Clone)]
pub(crate) struct EventHub {
    /// Every event read, to every subscriber.
    sender: broadcast::Sender<Arc<JobEvent>>,
}

impl EventHub {
    /// Starts the reader task; it stops when `shutdown` turns `true`.
    pub(crate) fn start(
        queue: JobQueue,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> EventHub {
        let (sender, _) = broadcast::channel(CAPACITY);
        let hub = EventHub {
            sender: sender.clone(),
        };
        tokio::spawn(
            relay(queue, sender, metrics, shutdown).instrument(tracing::info_span!("event_hub")),
        );
        hub
    }

    /// Events read from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<JobEvent>> {
        self.sender.subscribe()
    }
}

/// Reads the event stream from its current end and broadcasts every event,
/// until shutdown.
async fn relay(
    queue: JobQueue,
    sender: broadcast::Sender<Arc<JobEvent>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut cursor: Option<String> = None;
    tracing::debug!("event hub started");
    loop {
        let step = async {
            let from = match &cursor {
                Some(from) => from.clone(),
                None => queue.last_event_cursor().await?,
            };
            let events = queue.events_after(&from, READ_BLOCK, READ_BATCH).await?;
            Ok::<_, raybroker_queue::QueueError>((from, events))
        };
        let result = tokio::select! {
            _ = shutdown.wait_for(|stopping| *stopping) => break,
            result = step => result,
        };
        match result {
            Ok((from, events)) => {
                cursor = Some(events.last().map_or(from, |e| e.cursor.clone()));
                metrics.job_events_relayed(events.len());
                for event in events {
                    // An error only means nobody is listening right now.
                    let _ = sender.send(Arc::new(event));
                }
            }
            Err(err) => {
                metrics.event_hub_error();
                tracing::warn!(error = %err, "cannot read the job event stream; retrying");
                tokio::select! {
                    _ = shutdown.wait_for(|stopping| *stopping) => break,
                    () = tokio::time::sleep(RETRY_AFTER) => {}
                }
            }
        }
    }
    tracing::debug!("event hub stopped");
}
