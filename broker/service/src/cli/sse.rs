//! A small parser for the server-sent events text format
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>), fed with
//! whatever byte chunks the HTTP body arrives in.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the server sent none.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` seen on the stream, to resume with `Last-Event-ID`.
    pub id: Option<String>,
}

/// A line longer than this is not an event stream we understand.
const MAX_LINE_BYTES: usize = 1 << 20;

/// The stream broke the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event stream sent a line longer than {MAX_LINE_BYTES} bytes")]
pub struct LineTooLong;

/// Incremental parser state: the unfinished line and the event being built.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes after the last complete line.
    pending: Vec<u8>,
    /// `event:` of the event being built.
    event: Option<String>,
    /// `data:` of the event being built, each line followed by `\n`.
    data: String,
    /// True once a `data:` line arrived for the event being built.
    has_data: bool,
    /// Survives across events, as the format says.
    last_id: Option<String>,
}

impl SseParser {
    /// Feeds one chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut at = 0;
        while at < self.pending.len() {
            let byte = self.pending[at];
            if byte != b'\n' && byte != b'\r' {
                at += 1;
                continue;
            }
            let end_of_line = if byte == b'\r' {
                match self.pending.get(at + 1) {
                    Some(b'\n') => at + 2,
                    Some(_) => at + 1,
                    // A '\r' at the end of the chunk may be half of "\r\n": wait.
                    None => break,
                }
            } else {
                at + 1
            };
            let line = String::from_utf8_lossy(&self.pending[start..at]).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            start = end_of_line;
            at = end_of_line;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE_BYTES {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    /// Handles one complete line; a blank line dispatches the event built so far.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            let mut data = std::mem::take(&mut self.data);
            data.pop();
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".to_string()),
                data,
                id: self.last_id.clone(),
            });
        }
        if line.starts_with(':') {
            return None; // a comment, e.g. a keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            _ => {} // `retry` and unknown fields are ignored, as the format says
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        chunks
            .iter()
            .flat_map(|chunk| parser.push(chunk).unwrap())
            .collect()
    }

    #[test]
    fn parses_named_events_with_ids() {
        let events = parse_all(&[b"event: transition\nid: 7\ndata: {\"to\":\"running\"}\n\n"]);
        assert_eq!(
            events,
            [SseEvent {
                event: "transition".into(),
                data: "{\"to\":\"running\"}".into(),
                id: Some("7".into()),
            }]
        );
    }

    #[test]
    fn events_may_arrive_split_anywhere() {
        let text = b"event: transition\r\ndata: a\r\ndata: b\r\n\r\n: keep-alive\n\ndata:c\n\n";
        for split in 0..text.len() {
            let (head, tail) = text.split_at(split);
            let events = parse_all(&[head, tail]);
            assert_eq!(events.len(), 2, "split at {split}");
            assert_eq!(events[0].event, "transition");
            assert_eq!(events[0].data, "a\nb");
            assert_eq!(events[1].event, "message");
            assert_eq!(events[1].data, "c");
        }
    }

    #[test]
    fn comments_and_empty_events_dispatch_nothing() {
        assert!(parse_all(&[b": ping\n\nevent: transition\n\n"]).is_empty());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = SseParser::default();
        let chunk = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(parser.push(&chunk), Err(LineTooLong));
    }
}
