//! raybroker's adapter for KubeRay: each attempt of a job is one RayJob
//! (`ray.io/v1`) created through the Kubernetes API, either with a Ray cluster
//! of its own built from the cluster's template (ephemeral mode) or on an
//! existing RayCluster (shared mode).
//!
//! Same layout as every adapter: [`config`] (one cluster's entry, checked
//! strictly), [`client`] (wire calls only, kube-rs), [`convert`] (pure tables:
//! names and labels, states, API failures, the RayJob, capacity) and
//! [`KubeRayAdapter`] (the [`ClusterAdapter`](raybroker_adapter::ClusterAdapter)
//! implementation, plus the optional
//! [`CreatedObjects`](raybroker_adapter::CreatedObjects) capability behind
//! `raybroker clusters cleanup`).
//!
//! Everything the adapter creates carries the labels `raybroker.io/origin`,
//! `raybroker.io/job-id`, `raybroker.io/attempt` and `raybroker.io/tenant`
//! (pods too, through the cluster template) and the annotation
//! `raybroker.io/submission-id`; the origin label is how
//! [`list_owned`](raybroker_adapter::ClusterAdapter::list_owned) and the
//! cleanup command find this broker's objects. The tests in `tests/` run
//! against the Kubernetes API test server in `adapters/kube-testserver`.

#![warn(missing_docs)]

mod adapter;
pub mod client;
pub mod config;
pub mod convert;

pub use adapter::KubeRayAdapter;
pub use config::{CancelMode, ConfigError, KubeRayClusterConfig, Mode};
