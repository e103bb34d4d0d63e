//! The clusters the broker knows: each one's adapter, configuration and the
//! latest capacity snapshot with its health.
//!
//! The snapshot loop refreshes every cluster concurrently; a cluster whose
//! last good snapshot is older than `snapshot_max_age` leaves placement until
//! it answers again (its jobs keep running; the reconcile loop handles them).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use raybroker_adapter::{CapacitySnapshot, ClusterAdapter};
use raybroker_core::Resources;
use raybroker_placement::ClusterView;
use serde::Serialize;

/// What the broker knows of one cluster besides its adapter.
#[derive(Clone, Debug)]
pub struct ClusterMeta {
    /// Configured name.
    pub name: String,
    /// Backend kind, for display (`ray`, `kuberay`, `slurm`, `simulated`).
    pub kind: String,
    /// 0 = on-prem, higher = burst tiers.
    pub tier: u32,
    /// Cost of one GPU-hour.
    pub cost_per_gpu_hour: f64,
    /// Labels matched by `placement.required_labels`.
    pub labels: BTreeMap<String, String>,
    /// Jobs the cluster may hold pending beyond what starts now.
    pub pending_allowance: u32,
}

/// A cluster's health as the broker sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    /// The last good snapshot.
    #[serde(skip)]
    pub snapshot: Option<CapacitySnapshot>,
    /// When it was taken, ms since the epoch.
    pub last_ok_ms: Option<u64>,
    /// The last error, while the cluster is failing.
    pub last_error: Option<String>,
}

struct Entry {
    meta: ClusterMeta,
    adapter: Arc<dyn ClusterAdapter>,
    health: RwLock<Health>,
}

/// Every configured cluster. Cheap to share behind an `Arc`.
pub struct ClusterRegistry {
    entries: Vec<Entry>,
    snapshot_max_age: Duration,
    call_timeout: Duration,
}

/// One cluster's state for `GET /v1/clusters`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// Configured name.
    pub name: String,
    /// Backend kind.
    pub kind: String,
    /// Tier.
    pub tier: u32,
    /// True while the cluster takes new jobs.
    pub healthy: bool,
    /// Health details.
    #[serde(flatten)]
    pub health: Health,
    /// Total and free GPUs by model, from the last snapshot.
    pub gpus: BTreeMap<String, (f64, f64)>,
    /// Backend version.
    pub version: Option<String>,
}

impl ClusterRegistry {
    /// A registry over `clusters`; snapshots older than `snapshot_max_age`
    /// take a cluster out of placement.
    pub fn new(
        clusters: Vec<(ClusterMeta, Arc<dyn ClusterAdapter>)>,
        snapshot_max_age: Duration,
        call_timeout: Duration,
    ) -> ClusterRegistry {
        let entries = clusters
            .into_iter()
            .map(|(meta, adapter)| Entry {
                meta,
                adapter,
                health: RwLock::new(Health::default()),
            })
            .collect();
        ClusterRegistry {
            entries,
            snapshot_max_age,
            call_timeout,
        }
    }

    /// The adapter of a cluster by name.
    pub fn adapter(&self, name: &str) -> Option<Arc<dyn ClusterAdapter>> {
        self.entries
            .iter()
            .find(|e| e.meta.name == name)
            .map(|e| e.adapter.clone())
    }

    /// Every cluster's name and adapter.
    pub fn adapters(&self) -> impl Iterator<Item = (&str, &Arc<dyn ClusterAdapter>)> {
        self.entries
            .iter()
            .map(|e| (e.meta.name.as_str(), &e.adapter))
    }

    /// Takes a snapshot of every cluster concurrently, each within the call
    /// timeout, and records the results.
    pub async fn refresh(&self, now_ms: u64) {
        let calls = self.entries.iter().map(|entry| async move {
            let result = tokio::time::timeout(self.call_timeout, entry.adapter.snapshot()).await;
            let mut health = entry.health.write().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(Ok(snapshot)) => {
                    health.snapshot = Some(snapshot);
                    health.last_ok_ms = Some(now_ms);
                    health.last_error = None;
                }
                Ok(Err(err)) => {
                    tracing::warn!(cluster = %entry.meta.name, error = %err, "snapshot failed");
                    health.last_error = Some(err.to_string());
                }
                Err(_) => {
                    tracing::warn!(cluster = %entry.meta.name, "snapshot timed out");
                    health.last_error = Some(format!("no answer within {:?}", self.call_timeout));
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Marks a cluster as failing now (a dispatch call met a transient error),
    /// so placement skips it until the next good snapshot.
    pub fn mark_failing(&self, name: &str, error: &str) {
        if let Some(entry) = self.entries.iter().find(|e| e.meta.name == name) {
            let mut health = entry.health.write().unwrap_or_else(|e| e.into_inner());
            health.last_ok_ms = None;
            health.last_error = Some(error.to_string());
        }
    }

    /// Takes a job placed on `nodes` off the cluster's last snapshot, so that
    /// dispatch rounds before the next snapshot (several run per snapshot)
    /// see that capacity as used. Only its resources count: it was placed on
    /// free capacity, so it starts rather than waits. The next snapshot
    /// replaces the estimate with what the cluster reports.
    pub fn reserve(&self, name: &str, resources: &Resources, nodes: &[String]) {
        let Some(entry) = self.entries.iter().find(|e| e.meta.name == name) else {
            return;
        };
        let mut health = entry.health.write().unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = health.snapshot.as_mut() {
            raybroker_placement::reserve(snapshot, resources, nodes);
        }
    }

    fn is_fresh(&self, health: &Health, now_ms: u64) -> bool {
        health.last_error.is_none()
            && health.last_ok_ms.is_some_and(|at| {
                now_ms.saturating_sub(at) <= self.snapshot_max_age.as_millis() as u64
            })
    }

    /// What placement needs of every cluster, now.
    pub fn views(&self, now_ms: u64) -> Vec<ClusterView> {
        self.entries
            .iter()
            .map(|entry| {
                let health = entry.health.read().unwrap_or_else(|e| e.into_inner());
                ClusterView {
                    name: entry.meta.name.clone(),
                    tier: entry.meta.tier,
                    cost_per_gpu_hour: entry.meta.cost_per_gpu_hour,
                    labels: entry.meta.labels.clone(),
                    capabilities: entry.adapter.capabilities(),
                    snapshot: health.snapshot.clone(),
                    fresh: self.is_fresh(&health, now_ms),
                    pending_allowance: entry.meta.pending_allowance,
                }
            })
            .collect()
    }

    /// Every cluster's state, for the API.
    pub fn statuses(&self, now_ms: u64) -> Vec<ClusterStatus> {
        self.entries
            .iter()
            .map(|entry| {
                let health = entry
                    .health
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let mut gpus: BTreeMap<String, (f64, f64)> = BTreeMap::new();
                for node in health.snapshot.iter().flat_map(|s| &s.nodes) {
                    if node.total.gpus.is_zero() {
                        continue;
                    }
                    let model = node
                        .gpu_model
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "unknown".into());
                    let slot = gpus.entry(model).or_default();
                    slot.0 += node.total.gpus.as_f64();
                    slot.1 += node.free.gpus.as_f64();
                }
                ClusterStatus {
                    name: entry.meta.name.clone(),
                    kind: entry.meta.kind.clone(),
                    tier: entry.meta.tier,
                    healthy: self.is_fresh(&health, now_ms),
                    version: health.snapshot.as_ref().map(|s| s.version.clone()),
                    health,
                    gpus,
                }
            })
            .collect()
    }
}
