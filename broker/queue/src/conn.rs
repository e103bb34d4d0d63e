//! Connections to Redis.
//!
//! Short commands and scripts go over a few shared multiplexed connections
//! (redis' `ConnectionManager`, which pipelines concurrent requests on one
//! socket and reconnects by itself): no pool checkout, no per-checkout PING,
//! one round trip per call. Blocking reads (`XREAD BLOCK`) take a connection
//! of their own from the deadpool pool, since they would stall a shared one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::Pool;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

use crate::queue::QueueError;

/// A few lazily opened shared connections; opening is retried on the next
/// call after a failure, so the queue works once Redis comes up.
pub(crate) struct Multiplexed {
    client: redis::Client,
    slots: Vec<OnceCell<ConnectionManager>>,
    next: AtomicUsize,
}

impl Multiplexed {
    /// `count` shared connections to the Redis at `client`.
    pub(crate) fn new(client: redis::Client, count: usize) -> Multiplexed {
        Multiplexed {
            client,
            slots: (0..count.max(1)).map(|_| OnceCell::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    async fn get(&self) -> Result<ConnectionManager, QueueError> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let manager = slot
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(3)))
                    .set_response_timeout(Some(Duration::from_secs(10)))
                    .set_number_of_retries(2);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(manager.clone())
    }
}

/// A connection for one call: shared when the queue has multiplexed
/// connections, else taken from the pool.
pub(crate) enum Conn {
    Shared(ConnectionManager),
    Pooled(deadpool_redis::Connection),
}

impl Conn {
    pub(crate) async fn take(mux: Option<&Multiplexed>, pool: &Pool) -> Result<Conn, QueueError> {
        match mux {
            Some(mux) => Ok(Conn::Shared(mux.get().await?)),
            None => Ok(Conn::Pooled(pool.get().await?)),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Shared(c) => c.req_packed_command(cmd),
            Conn::Pooled(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Shared(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Pooled(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Shared(c) => c.get_db(),
            Conn::Pooled(c) => c.get_db(),
        }
    }
}
