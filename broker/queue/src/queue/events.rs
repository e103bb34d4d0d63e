//! The event stream of state changes.
//!
//! Each script call appends one stream entry holding every change it made
//! (`commit` in lua/prelude.lua): one field per change, named by the job id,
//! whose value is `tenant from to attempt at_ms reason` (`from` is `-` for a
//! job's first change; the reason, last, may hold spaces). One entry per call
//! instead of one per change keeps a batch's events to a single stream append
//! and a single AOF record.
//!
//! A cursor names a position between two events: `<entry id>` is after the
//! whole entry, `<entry id>.<k>` after its event `k` (counted from 0), so a
//! reader can stop and resume in the middle of a batch.

use std::str::FromStr;
use std::time::Duration;

use raybroker_core::{JobEvent, JobId, JobState, TenantId, Transition};

use super::{JobQueue, QueueError};

/// XRANGE's answer: (entry id, [field, value, ...]) per entry.
type Entries = Vec<(String, Vec<String>)>;

impl JobQueue {
    /// The cursor of the newest event (start a follow from here); `0-0` when
    /// the stream is empty.
    pub async fn last_event_cursor(&self) -> Result<String, QueueError> {
        let mut conn = self.conn().await?;
        let newest: Entries = redis::cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(newest
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .unwrap_or_else(|| "0-0".to_string()))
    }

    /// Up to `count` events after `cursor`, waiting up to `block` for the
    /// first one (zero: don't wait). Holds one pooled connection while it
    /// waits, so a service should run one follower and fan events out, not
    /// one per watcher.
    pub async fn events_after(
        &self,
        cursor: &str,
        block: Duration,
        count: usize,
    ) -> Result<Vec<JobEvent>, QueueError> {
        let count = count.max(1);
        let (entry, seen) = parse_cursor(cursor)?;
        let mut conn = self.pool.get().await?;
        let mut events = Vec::new();
        if let Some(seen) = seen {
            // The rest of the entry the cursor stopped in, if any is left.
            let rest: Entries = redis::cmd("XRANGE")
                .arg(self.keys.events())
                .arg(entry)
                .arg(entry)
                .query_async(&mut conn)
                .await?;
            events = expand(rest, Some(seen), count)?;
            if events.len() == count {
                return Ok(events);
            }
        }
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT").arg(count - events.len());
        // Events in hand: answer with what follows them now, without waiting.
        if !block.is_zero() && events.is_empty() {
            read.arg("BLOCK").arg(block.as_millis() as u64);
        }
        read.arg("STREAMS").arg(self.keys.events()).arg(entry);
        let reply: Option<Vec<(String, Entries)>> = read.query_async(&mut conn).await?;
        let entries = reply.into_iter().flatten().flat_map(|(_, e)| e).collect();
        let more = count - events.len();
        events.extend(expand(entries, None, more)?);
        Ok(events)
    }
}

/// Splits a cursor into its entry id and, when it stops inside the entry,
/// the index of the last event read there.
fn parse_cursor(cursor: &str) -> Result<(&str, Option<usize>), QueueError> {
    let bad = || QueueError::Corrupt {
        id: cursor.to_string(),
        detail: "not an event cursor (expected <ms>-<seq> or <ms>-<seq>.<k>)".into(),
    };
    let (entry, seen) = match cursor.split_once('.') {
        Some((entry, k)) => (entry, Some(k.parse::<usize>().map_err(|_| bad())?)),
        None => (cursor, None),
    };
    let (ms, seq) = entry.split_once('-').ok_or_else(bad)?;
    if ms.parse::<u64>().is_err() || seq.parse::<u64>().is_err() {
        return Err(bad());
    }
    Ok((entry, seen))
}

/// The events of `entries`, in order, skipping those of the first entry up
/// to and including event `skip`, at most `count`. An event's cursor is its
/// entry's id when it is the entry's last, else `id.k`.
fn expand(
    entries: Entries,
    skip: Option<usize>,
    count: usize,
) -> Result<Vec<JobEvent>, QueueError> {
    let mut events = Vec::new();
    for (n, (id, fields)) in entries.into_iter().enumerate() {
        let decoded = decode_entry(&id, &fields)?;
        let last = decoded.len().saturating_sub(1);
        for (k, mut event) in decoded.into_iter().enumerate() {
            if n == 0 && skip.is_some_and(|seen| k <= seen) {
                continue;
            }
            if events.len() == count {
                return Ok(events);
            }
            event.cursor = if k == last {
                id.clone()
            } else {
                format!("{id}.{k}")
            };
            events.push(event);
        }
    }
    Ok(events)
}

/// The events of one stream entry (cursors left empty).
fn decode_entry(id: &str, fields: &[String]) -> Result<Vec<JobEvent>, QueueError> {
    let corrupt = |detail: String| QueueError::Corrupt {
        id: id.to_string(),
        detail,
    };
    if !fields.len().is_multiple_of(2) {
        return Err(corrupt("odd number of fields in an event entry".into()));
    }
    if fields.first().map(String::as_str) == Some("job") {
        // One change per entry, a field each: written by brokers before
        // events were batched; still read, so an upgrade skips nothing.
        return Ok(vec![legacy_event(id, fields)?]);
    }
    fields
        .chunks_exact(2)
        .map(|pair| event(id, &pair[0], &pair[1]))
        .collect()
}

/// An entry of the format before batching: fields job, tenant, from, to,
/// attempt, reason, at (`from` empty for the first change), read as the
/// packed event it would be now.
fn legacy_event(id: &str, fields: &[String]) -> Result<JobEvent, QueueError> {
    let field = |name: &str| -> Result<&str, QueueError> {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
            .ok_or_else(|| QueueError::Corrupt {
                id: id.to_string(),
                detail: format!("event field '{name}' missing"),
            })
    };
    let from = match field("from")? {
        "" => "-",
        from => from,
    };
    let packed = format!(
        "{} {from} {} {} {} {}",
        field("tenant")?,
        field("to")?,
        field("attempt")?,
        field("at")?,
        field("reason")?
    );
    event(id, field("job")?, &packed)
}

/// One event of entry `id`: the job's id and its packed value
/// `tenant from to attempt at_ms reason` (cursor left empty).
fn event(id: &str, job: &str, packed: &str) -> Result<JobEvent, QueueError> {
    let corrupt = |detail: String| QueueError::Corrupt {
        id: id.to_string(),
        detail,
    };
    let parts: Vec<&str> = packed.splitn(6, ' ').collect();
    let [tenant, from, to, attempt, at, reason] = parts[..] else {
        return Err(corrupt(format!("event '{packed}' has too few parts")));
    };
    let state = |text: &str| JobState::from_str(text).map_err(|e| corrupt(e.to_string()));
    Ok(JobEvent {
        cursor: String::new(),
        job_id: JobId::from_str(job).map_err(|e| corrupt(e.to_string()))?,
        tenant: TenantId::new(tenant).map_err(|e| corrupt(e.to_string()))?,
        transition: Transition {
            from: if from == "-" {
                None
            } else {
                Some(state(from)?)
            },
            to: state(to)?,
            at_ms: at
                .parse()
                .map_err(|_| corrupt(format!("event time '{at}' is not a number")))?,
            attempt: attempt
                .parse()
                .map_err(|_| corrupt(format!("event attempt '{attempt}' is not a number")))?,
            reason: reason.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "01JDQ4Z5X2M3N4P5Q6R7S8T9V0";
    const B: &str = "01JDQ4Z5X2M3N4P5Q6R7S8T9V1";

    fn entry(id: &str, events: &[(&str, &str)]) -> (String, Vec<String>) {
        let fields = events
            .iter()
            .flat_map(|(job, value)| [job.to_string(), value.to_string()])
            .collect();
        (id.to_string(), fields)
    }

    #[test]
    fn cursors_stop_inside_a_batch_and_after_its_last_event() {
        let entries = vec![
            entry(
                "5-0",
                &[
                    (A, "t - queued 0 5 submitted"),
                    (B, "t - queued 0 5 submitted"),
                ],
            ),
            entry(
                "6-0",
                &[(A, "t queued dispatching 0 6 leased for dispatch")],
            ),
        ];
        let all = expand(entries.clone(), None, 10).unwrap();
        let cursors: Vec<_> = all.iter().map(|e| e.cursor.as_str()).collect();
        assert_eq!(cursors, ["5-0.0", "5-0", "6-0"]);
        assert_eq!(all[2].transition.reason, "leased for dispatch");
        assert_eq!(all[2].transition.from, Some(JobState::Queued));
        assert_eq!(all[0].transition.from, None);
        assert_eq!(all[1].job_id.as_str(), B);

        let first = expand(entries.clone(), None, 1).unwrap();
        assert_eq!(first[0].cursor, "5-0.0");
        let (entry_id, seen) = parse_cursor(&first[0].cursor).unwrap();
        assert_eq!((entry_id, seen), ("5-0", Some(0)));
        let rest = expand(entries[..1].to_vec(), seen, 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].job_id.as_str(), B);
        assert_eq!(rest[0].cursor, "5-0");
    }

    #[test]
    fn entries_written_before_batching_still_read() {
        let fields = [
            ("job", A),
            ("tenant", "t"),
            ("from", ""),
            ("to", "queued"),
            ("attempt", "0"),
            ("reason", "submitted"),
            ("at", "7"),
        ];
        let entry = (
            "7-0".to_string(),
            fields
                .iter()
                .flat_map(|(f, v)| [f.to_string(), v.to_string()])
                .collect(),
        );
        let events = expand(vec![entry], None, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].transition.from, None);
        assert_eq!(events[0].transition.at_ms, 7);
        assert_eq!(events[0].cursor, "7-0");
    }

    #[test]
    fn malformed_cursors_and_events_are_errors() {
        for bad in ["", "x", "5", "5-0.", "5-0.x", "a-b"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
        let short = entry("8-0", &[(A, "t - queued")]);
        assert!(expand(vec![short], None, 10).is_err());
        let bad_state = entry("9-0", &[(A, "t - floating 0 9 why")]);
        assert!(expand(vec![bad_state], None, 10).is_err());
    }
}
