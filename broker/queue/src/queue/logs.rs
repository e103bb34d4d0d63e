//! Job logs kept in the broker, with the current attempt's read cursor.

use raybroker_core::JobId;
use redis::AsyncCommands;

use super::{JobQueue, QueueError};

impl JobQueue {
    /// Where reading the current attempt's remote log should resume (a byte
    /// offset; 0 for a new attempt).
    pub async fn log_cursor(&self, id: &JobId, attempt: u32) -> Result<u64, QueueError> {
        let mut conn = self.conn().await?;
        let cursor: Option<String> = conn.hget(self.keys.job(id), "logcur").await?;
        Ok(cursor
            .and_then(|c| {
                let (a, offset) = c.split_once(':')?;
                (a.parse::<u32>().ok()? == attempt).then(|| offset.parse().ok())?
            })
            .unwrap_or(0))
    }

    /// Appends log text read from `from` to `to` of the current attempt's
    /// remote log; returns false (and writes nothing) when that stretch was
    /// already kept or the attempt is no longer current.
    pub async fn append_logs(
        &self,
        id: &JobId,
        attempt: u32,
        from: u64,
        to: u64,
        text: &str,
    ) -> Result<bool, QueueError> {
        let mut invocation = self.scripts.append_logs.prepare_invoke();
        invocation
            .key(self.keys.logs(id))
            .key(self.keys.job(id))
            .arg(attempt)
            .arg(from)
            .arg(to)
            .arg(text)
            .arg(self.config.log_cap_bytes);
        let mut conn = self.conn().await?;
        let appended: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(appended == 1)
    }

    /// The job's kept log from byte `offset` on (all attempts, newest
    /// `log_cap_bytes`), and the offset to ask from next time.
    pub async fn logs(&self, id: &JobId, offset: u64) -> Result<(String, u64), QueueError> {
        let mut conn = self.conn().await?;
        let (text, len): (Vec<u8>, u64) = redis::pipe()
            .cmd("GETRANGE")
            .arg(self.keys.logs(id))
            .arg(offset)
            .arg(-1)
            .cmd("STRLEN")
            .arg(self.keys.logs(id))
            .query_async(&mut conn)
            .await?;
        let text = if offset >= len { Vec::new() } else { text };
        Ok((String::from_utf8_lossy(&text).into_owned(), len.max(offset)))
    }
}
