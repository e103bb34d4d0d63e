//! An optional capability: listing and deleting every object the broker
//! created on a cluster, whatever state it is in (an operator's "clean this
//! cluster of us" before decommissioning it or after a broken upgrade).
//! Backends whose only footprint is jobs that [`ClusterAdapter::cleanup`]
//! already removes do not implement it.
//!
//! [`ClusterAdapter::cleanup`]: crate::ClusterAdapter::cleanup

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::AdapterError;

/// One object on a cluster that carries this broker's origin.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CreatedObject {
    /// Its kind, e.g. `RayJob`.
    pub kind: String,
    /// Its namespace, empty for cluster-wide objects.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Lists and deletes everything tagged with this broker's origin.
#[async_trait]
pub trait CreatedObjects: Send + Sync {
    /// Every object of ours on the cluster, sorted by kind and name.
    async fn list_created(&self) -> Result<Vec<CreatedObject>, AdapterError>;

    /// Deletes every object of ours (running jobs are stopped by their
    /// deletion); returns what it deleted. Objects gone meanwhile are fine.
    async fn delete_created(&self) -> Result<Vec<CreatedObject>, AdapterError>;
}
