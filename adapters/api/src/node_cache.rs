//! The nodes of an adapter's last capacity snapshot, kept for submit: the
//! Ray, Slurm and KubeRay adapters pick a GPU model (or worker group) present
//! on the cluster from them.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{AdapterError, CapacitySnapshot, ErrorKind, NodeCapacity};

/// The nodes of the last snapshot; the lock is never held across an await.
#[derive(Debug, Default)]
pub struct NodeCache(Mutex<Option<Arc<Vec<NodeCapacity>>>>);

impl NodeCache {
    /// An empty cache.
    pub fn new() -> NodeCache {
        NodeCache::default()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Vec<NodeCapacity>>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The nodes of the last snapshot, if one was taken.
    pub fn get(&self) -> Option<Arc<Vec<NodeCapacity>>> {
        self.lock().clone()
    }

    /// Keeps the nodes of a new snapshot.
    pub fn remember(&self, nodes: Vec<NodeCapacity>) {
        *self.lock() = Some(Arc::new(nodes));
    }

    /// The nodes of the last snapshot, taking one with `snapshot` (which
    /// must [`remember`](NodeCache::remember) its nodes) when there is none yet.
    pub async fn get_or_snapshot<F, Fut>(
        &self,
        snapshot: F,
    ) -> Result<Arc<Vec<NodeCapacity>>, AdapterError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CapacitySnapshot, AdapterError>>,
    {
        if let Some(nodes) = self.get() {
            return Ok(nodes);
        }
        snapshot().await?;
        self.get().ok_or_else(|| {
            AdapterError::new(
                ErrorKind::Internal,
                "snapshot did not record the cluster's nodes",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn snapshot_of(nodes: usize) -> CapacitySnapshot {
        CapacitySnapshot {
            taken_at_ms: 1,
            nodes: (0..nodes)
                .map(|i| NodeCapacity {
                    id: format!("n{i}"),
                    gpu_model: None,
                    total: crate::NodeResources::default(),
                    free: crate::NodeResources::default(),
                })
                .collect(),
            pending_jobs: 0,
            version: "test".to_string(),
        }
    }

    #[tokio::test]
    async fn a_snapshot_is_taken_only_when_none_is_kept() {
        let cache = NodeCache::new();
        let taken = AtomicU32::new(0);
        let take = || async {
            taken.fetch_add(1, Ordering::SeqCst);
            let snapshot = snapshot_of(2);
            cache.remember(snapshot.nodes.clone());
            Ok(snapshot)
        };
        assert_eq!(cache.get_or_snapshot(take).await.unwrap().len(), 2);
        assert_eq!(cache.get_or_snapshot(take).await.unwrap().len(), 2);
        assert_eq!(taken.load(Ordering::SeqCst), 1);
        // A snapshot that forgets to remember its nodes is an internal error.
        let forgetful = NodeCache::new();
        let err = forgetful
            .get_or_snapshot(|| async { Ok(snapshot_of(1)) })
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
    }
}
