//! The event stream of state changes.

use std::str::FromStr;
use std::time::Duration;

use raybroker_core::{JobEvent, JobId, JobState, TenantId, Transition};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;

use super::{JobQueue, QueueError};

impl JobQueue {
    /// The cursor of the newest event (start a follow from here); `0-0` when
    /// the stream is empty.
    pub async fn last_event_cursor(&self) -> Result<String, QueueError> {
        let mut conn = self.conn().await?;
        let reply: StreamRangeReply = conn
            .xrevrange_count(self.keys.events(), "+", "-", 1)
            .await?;
        Ok(reply
            .ids
            .first()
            .map(|e| e.id.clone())
            .unwrap_or_else(|| "0-0".to_string()))
    }

    /// Events after `cursor`, waiting up to `block` for the first one (zero:
    /// don't wait). Holds one pooled connection while it waits, so a service
    /// should run one follower and fan events out, not one per watcher.
    pub async fn events_after(
        &self,
        cursor: &str,
        block: Duration,
        count: usize,
    ) -> Result<Vec<JobEvent>, QueueError> {
        let mut options = StreamReadOptions::default().count(count.max(1));
        if !block.is_zero() {
            options = options.block(block.as_millis() as usize);
        }
        let mut conn = self.pool.get().await?;
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[self.keys.events()], &[cursor], &options)
            .await?;
        let mut events = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                events.push(event_from_entry(&entry)?);
            }
        }
        Ok(events)
    }
}

fn event_from_entry(entry: &redis::streams::StreamId) -> Result<JobEvent, QueueError> {
    let field = |name: &str| -> Result<String, QueueError> {
        entry
            .get::<String>(name)
            .ok_or_else(|| QueueError::Corrupt {
                id: entry.id.clone(),
                detail: format!("event field '{name}' missing"),
            })
    };
    let corrupt = |detail: String| QueueError::Corrupt {
        id: entry.id.clone(),
        detail,
    };
    let from = field("from")?;
    Ok(JobEvent {
        cursor: entry.id.clone(),
        job_id: JobId::from_str(&field("job")?).map_err(|e| corrupt(e.to_string()))?,
        tenant: TenantId::new(&field("tenant")?).map_err(|e| corrupt(e.to_string()))?,
        transition: Transition {
            from: if from.is_empty() {
                None
            } else {
                Some(JobState::from_str(&from).map_err(|e| corrupt(e.to_string()))?)
            },
            to: JobState::from_str(&field("to")?).map_err(|e| corrupt(e.to_string()))?,
            at_ms: field("at")?
                .parse()
                .map_err(|_| corrupt("event 'at' is not a number".into()))?,
            attempt: field("attempt")?
                .parse()
                .map_err(|_| corrupt("event 'attempt' is not a number".into()))?,
            reason: field("reason")?,
        },
    })
}
