//! Trace replay: the Alibaba GPU cluster trace (openb, 2023) through
//! raybroker's placement and three baselines, on simulated clusters with a
//! virtual clock.
//!
//! [`trace`] reads nodes and tasks, [`split`] groups nodes into clusters
//! with tiers and costs, [`federation`] is the simulated clusters,
//! [`policy`] the compared policies behind one [`policy::Scheduler`] trait,
//! [`fill`] and [`queueing`] the two replay protocols the trace's README
//! describes, [`summary`] the per-policy numbers, and [`report`],
//! [`figures`] and [`svg`] turn them into text; [`parallel`] runs replays
//! side by side. No IO here: the binary reads and writes files.

pub mod federation;
pub mod figures;
pub mod fill;
pub mod metrics;
pub mod parallel;
pub mod policy;
pub mod queueing;
pub mod report;
pub mod split;
pub mod summary;
pub mod svg;
pub mod trace;

#[cfg(test)]
mod testkit;
