//! raybroker's adapter for plain Ray clusters, over the Ray Jobs REST API of
//! the cluster's dashboard (verified against Ray 2.31.0 and 2.60.0).
//!
//! Same layout as every adapter: [`config`] (one cluster's entry),
//! [`client`] (wire calls only), [`convert`] (pure tables: job states, HTTP
//! failures, submit body, capacity) and [`RayAdapter`] (the
//! [`ClusterAdapter`](raybroker_adapter::ClusterAdapter) implementation).
//! The end-to-end tests in `tests/` run the shared conformance suite against
//! real Ray heads started by `deploy/local/ray.sh`.
//!
//! Every job the adapter submits carries the metadata `raybroker.origin`,
//! `raybroker.tenant`, `raybroker.job_id` and `raybroker.attempt`; the origin
//! is how [`list_owned`](raybroker_adapter::ClusterAdapter::list_owned) tells
//! this broker's jobs from anyone else's.

#![warn(missing_docs)]

mod adapter;
pub mod client;
pub mod config;
pub mod convert;

pub use adapter::RayAdapter;
pub use config::{ConfigError, GpuModelResource, RayClusterConfig};
