//! Test support: every test gets its own key prefix on the shared test Redis,
//! so tests run in parallel and never need FLUSHDB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use deadpool_redis::{Config, Pool, Runtime};

use crate::{JobQueue, QueueConfig};

/// The test Redis: `RAYBROKER_TEST_REDIS_URL`, default `redis://127.0.0.1:6390`
/// (the port `deploy/local/redis.sh` uses).
pub fn redis_url() -> String {
    std::env::var("RAYBROKER_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6390".to_string())
}

/// A key prefix no other test (or test run) uses.
pub fn unique_prefix(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "test-{label}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pool on `url`.
pub fn pool(url: &str) -> Pool {
    Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .expect("a redis URL from the test environment")
}

/// A queue on the test Redis under a fresh prefix.
pub fn queue(label: &str) -> JobQueue {
    JobQueue::new(
        pool(&redis_url()),
        QueueConfig {
            key_prefix: unique_prefix(label),
            ..QueueConfig::default()
        },
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
