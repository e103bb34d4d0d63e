//! raybroker's adapter for Slurm clusters: each job runs as a Ray cluster
//! inside a Slurm allocation, submitted through slurmrestd (verified against
//! Slurm 22.05's API v0.0.38; the shapes of v0.0.39 to v0.0.42 live in
//! [`versions`]).
//!
//! Same layout as every adapter: [`config`] (one cluster's entry),
//! [`client`] (wire calls and JWT auth), [`convert`] (pure tables: job
//! states, exit codes, capacity, the job description), [`script`] (the
//! batch script) and [`SlurmAdapter`] (the
//! [`ClusterAdapter`](raybroker_adapter::ClusterAdapter) implementation).
//! [`jobdir`] is each job's directory on the filesystem the broker shares
//! with the cluster. The tests in `tests/` run the shared conformance suite
//! against the real Slurm that `deploy/local/slurm.sh` starts.
//!
//! Every job carries the comment `raybroker origin=O tenant=T job=J
//! attempt=N` and is named after its submission id; the origin is how
//! [`list_owned`](raybroker_adapter::ClusterAdapter::list_owned) tells this
//! broker's jobs from anyone else's.

#![warn(missing_docs)]

mod adapter;
pub mod client;
pub mod config;
pub mod convert;
pub mod jobdir;
pub mod script;
pub mod versions;

pub use adapter::SlurmAdapter;
pub use config::{ConfigError, SlurmAuth, SlurmClusterConfig};
