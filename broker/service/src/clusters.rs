//! The clusters the broker knows: each one's adapter, configuration and the
//! latest capacity snapshot with its health.
//!
//! The snapshot loop refreshes every cluster concurrently; a cluster whose
//! last good snapshot is older than `snapshot_max_age` leaves placement until
//! it answers again (its jobs keep running; the reconcile loop handles them).
//!
//! Every adapter call the loops make goes through [`ClusterRegistry::call`]:
//! it times the call out, counts it in the metrics and feeds the cluster's
//! circuit breaker ([`health`]), which takes a failing cluster out of
//! placement and out of the loops' calls until a probe succeeds.

pub mod health;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use raybroker_adapter::{AdapterError, CapacitySnapshot, ClusterAdapter, ErrorKind};
use raybroker_core::Resources;
use raybroker_placement::ClusterView;
use serde::Serialize;

pub use health::{Breaker, BreakerSettings, HealthState};

use crate::metrics::BrokerMetrics;

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
    /// The circuit breaker: healthy, degraded or down.
    #[serde(flatten)]
    pub breaker: Breaker,
}

/// Why a call through [`ClusterRegistry::call`] did not return a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The cluster answered with an error.
    #[error("{0}")]
    Adapter(AdapterError),
    /// No answer within the call timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The cluster is down and not due for a probe: the call was not made.
    #[error("cluster is down (circuit open)")]
    Down,
    /// No cluster of that name is configured.
    #[error("no such cluster")]
    Unknown,
}

impl CallError {
    /// The adapter's error kind, when the cluster answered.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            CallError::Adapter(err) => Some(err.kind),
            _ => None,
        }
    }
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
    /// When the breakers open and for how long.
    breaker: BreakerSettings,
    /// Call latency, health and capacity gauges.
    metrics: BrokerMetrics,
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
            breaker: BreakerSettings::default(),
            metrics: BrokerMetrics::default(),
        }
    }

    /// The same registry reporting to `metrics`.
    pub fn with_metrics(mut self, metrics: BrokerMetrics) -> ClusterRegistry {
        self.metrics = metrics;
        self
    }

    /// The same registry with other breaker settings.
    pub fn with_breaker(mut self, settings: BreakerSettings) -> ClusterRegistry {
        self.breaker = settings;
        self
    }

    /// The metrics the loops report to.
    pub fn metrics(&self) -> &BrokerMetrics {
        &self.metrics
    }

    /// Calls cluster `name` through its breaker: refused without a call
    /// while the cluster is down (unless this call is its probe), timed
    /// out after the call timeout, counted in the metrics, and its outcome
    /// fed back into the breaker. An answer that the cluster gave (a job it
    /// does not know, a spec it refuses) counts as the cluster working.
    pub async fn call<T, F>(
        &self,
        name: &str,
        operation: &str,
        now_ms: u64,
        call: impl FnOnce(Arc<dyn ClusterAdapter>) -> F,
    ) -> Result<T, CallError>
    where
        F: Future<Output = Result<T, AdapterError>>,
    {
        self.call_within(name, operation, now_ms, self.call_timeout, call)
            .await
    }

    /// [`ClusterRegistry::call`] with its own time limit (a submit that
    /// first copies packages takes longer than a status read).
    pub async fn call_within<T, F>(
        &self,
        name: &str,
        operation: &str,
        now_ms: u64,
        timeout: Duration,
        call: impl FnOnce(Arc<dyn ClusterAdapter>) -> F,
    ) -> Result<T, CallError>
    where
        F: Future<Output = Result<T, AdapterError>>,
    {
        let Some(entry) = self.entries.iter().find(|e| e.meta.name == name) else {
            return Err(CallError::Unknown);
        };
        if !entry.health_mut().breaker.allows_call(now_ms) {
            return Err(CallError::Down);
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, call(entry.adapter.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(CallError::Adapter(err)),
            Err(_) => Err(CallError::Timeout(timeout)),
        };
        let cluster_failed = match &result {
            Ok(_) => false,
            Err(err) => !matches!(
                err.kind(),
                Some(ErrorKind::NotFound) | Some(ErrorKind::Rejected)
            ),
        };
        self.metrics
            .observe_call(name, operation, !cluster_failed, started.elapsed());
        self.record(entry, !cluster_failed, result.as_ref().err(), now_ms);
        result
    }

    /// Feeds one call's outcome into the cluster's breaker.
    fn record(&self, entry: &Entry, ok: bool, error: Option<&CallError>, now_ms: u64) {
        let mut health = entry.health_mut();
        let before = health.breaker.state;
        if ok {
            health.breaker.succeeded();
        } else {
            health.breaker.failed(&self.breaker, now_ms);
            if let Some(err) = error {
                health.last_error = Some(err.to_string());
            }
        }
        let after = health.breaker.state;
        drop(health);
        if before != after {
            tracing::info!(cluster = %entry.meta.name, from = before.as_str(), to = after.as_str(), "cluster health changed");
        }
        self.metrics.set_health(&entry.meta.name, after.level());
    }

    /// The cluster's breaker state now.
    pub fn health_state(&self, name: &str) -> Option<HealthState> {
        self.entries
            .iter()
            .find(|e| e.meta.name == name)
            .map(|e| e.health_read().breaker.state)
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
    /// timeout, and records the results. A down cluster is skipped until
    /// its next probe is due; that snapshot is the probe.
    pub async fn refresh(&self, now_ms: u64) {
        let calls = self.entries.iter().map(|entry| async move {
            let name = entry.meta.name.as_str();
            if !entry.health_read().breaker.is_callable(now_ms) {
                return;
            }
            let result = self
                .call(name, "snapshot", now_ms, |adapter| async move {
                    adapter.snapshot().await
                })
                .await;
            let mut health = entry.health_mut();
            match result {
                Ok(snapshot) => {
                    self.export_capacity(name, &snapshot);
                    health.snapshot = Some(snapshot);
                    health.last_ok_ms = Some(now_ms);
                    health.last_error = None;
                }
                Err(CallError::Down) => {} // another call took the probe
                Err(err) => {
                    tracing::warn!(cluster = %name, error = %err, "snapshot failed");
                    health.last_error = Some(err.to_string());
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Sets the capacity gauges of one cluster from its snapshot.
    fn export_capacity(&self, name: &str, snapshot: &CapacitySnapshot) {
        let mut gpus: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        let mut free_cpus = 0.0;
        for node in &snapshot.nodes {
            free_cpus += node.free.cpus.as_f64();
            if node.total.gpus.is_zero() {
                continue;
            }
            let slot = gpus.entry(gpu_model_name(node)).or_default();
            slot.0 += node.total.gpus.as_f64();
            slot.1 += node.free.gpus.as_f64();
        }
        for (model, (total, free)) in gpus {
            self.metrics.set_gpus(name, &model, total, free);
        }
        self.metrics.set_free_cpus(name, free_cpus);
    }

    /// Marks a cluster as failing now (a dispatch call met a transient error),
    /// so placement skips it until the next good snapshot.
    pub fn mark_failing(&self, name: &str, error: &str) {
        if let Some(entry) = self.entries.iter().find(|e| e.meta.name == name) {
            let mut health = entry.health_mut();
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
        health.breaker.state != HealthState::Down
            && health.last_error.is_none()
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
                    let slot = gpus.entry(gpu_model_name(node)).or_default();
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

impl Entry {
    fn health_read(&self) -> std::sync::RwLockReadGuard<'_, Health> {
        self.health.read().unwrap_or_else(|e| e.into_inner())
    }

    fn health_mut(&self) -> std::sync::RwLockWriteGuard<'_, Health> {
        self.health.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A node's GPU model as a label, `unknown` when the cluster does not say.
fn gpu_model_name(node: &raybroker_adapter::NodeCapacity) -> String {
    node.gpu_model
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| "unknown".into())
}
