//! raybroker's durable job queue on Redis.
//!
//! - [`keys`] names every Redis key and says what it holds;
//! - `lua/*.lua` hold every multi-key state change, one script each, so a
//!   change is atomic and a crash at any point leaves a consistent queue;
//! - [`JobQueue`] is the typed API the service, the loops and the benchmark use.
//!
//! Durability: with Redis AOF and `appendfsync always`, a job acknowledged by
//! [`JobQueue::submit`] survives a Redis crash (see `docs/operations.md`).

mod codec;
mod conn;
pub mod keys;
mod queue;
mod scripts;

pub use queue::{
    AttemptEnd, CancelEffect, CancelOutcome, GroupCancelEffect, GroupCommitStats, GroupCursor,
    GroupKind, GroupPage, GroupRecord, JobQueue, Lease, ListFilter, Page, PeekCache, QueueConfig,
    QueueError, RemoteTimes, SpanSource, SubmitOutcome, TelemetryDrops, TelemetryLimits,
};
pub use raybroker_core::{JobMetrics, MetricPoint};

#[cfg(any(test, feature = "test-support"))]
pub mod testing;
