//! The dispatch and reconcile loops end to end: the real `Dispatcher` and
//! `Reconciler` over the real Redis queue and simulated clusters, driven one
//! round at a time on a manual clock (see `support.rs`, which
//! `failover_loops.rs` and `placement_loops.rs` share).
//!
//! - `dispatch`: routing, admission control, a job's run to its end, cancels;
//! - `recovery`: a broker crash around a submit, lost jobs, an unreachable
//!   cluster, and garbage collection of superseded attempts.

mod dispatch;
mod recovery;
mod support;
