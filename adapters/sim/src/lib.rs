//! A simulated cluster behind raybroker's adapter contract, for the loop
//! tests and for replaying traces against a virtual clock.
//!
//! Same layout as every adapter: [`config`] (the cluster's entry),
//! [`program`] (how an entrypoint is read: the simulator's "wire format"),
//! [`cluster`] (the model: nodes, allocations, FIFO-with-backfill start
//! order), [`clock`] (real or manual time) and [`SimAdapter`] (the
//! [`ClusterAdapter`](raybroker_adapter::ClusterAdapter) implementation, plus
//! fault injection for tests). `tests/conformance.rs` runs the shared
//! conformance suite against it.
//!
//! The model is played lazily: every call reads the clock and first plays
//! what happened since (jobs ending, pending jobs starting), so no task runs
//! in the background and a [`ManualClock`] makes every run repeatable.

mod adapter;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod program;

pub use adapter::SimAdapter;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, NodeShape, SimClusterConfig};
