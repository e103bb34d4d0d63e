//! The broker's long-running loops, each a named task with its own span:
//! - `snapshots`: refreshes every cluster's capacity snapshot;
//! - `dispatch`: places queued jobs and submits them ([`dispatch`]);
//! - `reconcile`: follows jobs on clusters, keeps logs, carries cancels,
//!   collects orphans ([`reconcile`]);
//! - `groups`: releases job groups' members and runs sweeps ([`groups`]).
//!
//! Every loop stops when the shutdown signal turns true.

pub mod dispatch;
pub mod groups;
pub mod reconcile;
pub mod retry;
pub mod usage;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raybroker_queue::JobQueue;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::clusters::ClusterRegistry;
use crate::raystore::delivery::PackageDelivery;
pub use dispatch::{DispatchSettings, Dispatcher};
pub use groups::{GroupController, GroupSettings};
pub use reconcile::{ReconcileSettings, Reconciler};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Settings of every loop.
#[derive(Clone, Debug)]
pub struct LoopSettings {
    /// Pause between capacity snapshots.
    pub snapshot_every: Duration,
    /// A cluster whose last good snapshot is older leaves placement.
    pub snapshot_max_age: Duration,
    /// The dispatch loop's.
    pub dispatch: DispatchSettings,
    /// The reconcile loop's.
    pub reconcile: ReconcileSettings,
    /// When a cluster is written off, and how often it is probed.
    pub breaker: crate::clusters::BreakerSettings,
    /// The group controller's.
    pub groups: GroupSettings,
    /// Trace context and telemetry tokens for attempts (the `telemetry`
    /// config section); exporting spans when `OTEL_EXPORTER_OTLP_*` is set.
    pub telemetry: crate::config::TelemetrySettings,
}

impl Default for LoopSettings {
    fn default() -> Self {
        LoopSettings {
            snapshot_every: Duration::from_secs(2),
            snapshot_max_age: Duration::from_secs(10),
            dispatch: DispatchSettings::default(),
            reconcile: ReconcileSettings::default(),
            breaker: crate::clusters::BreakerSettings::default(),
            groups: GroupSettings::default(),
            telemetry: crate::config::TelemetrySettings::default(),
        }
    }
}

/// Starts every loop; they end when `shutdown` turns true. `packages`
/// delivers uploaded packages (Ray Jobs API) before each submit.
pub fn spawn_all(
    queue: JobQueue,
    clusters: Arc<ClusterRegistry>,
    settings: LoopSettings,
    packages: Option<Arc<PackageDelivery>>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let snapshots = {
        let clusters = clusters.clone();
        let mut shutdown = shutdown.clone();
        let every = settings.snapshot_every;
        async move {
            loop {
                clusters.refresh(now_ms()).await;
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }
        .instrument(tracing::info_span!("loop", name = "snapshots"))
    };
    let mut dispatcher = Dispatcher::new(queue.clone(), clusters.clone(), settings.dispatch);
    if let Some(packages) = packages {
        dispatcher = dispatcher.with_packages(packages);
    }
    let telemetry = Arc::new(crate::telemetry::Telemetry::new(
        settings.telemetry.clone(),
        queue.clone(),
    ));
    dispatcher = dispatcher.with_telemetry(telemetry.clone());
    let span_export = crate::telemetry::export::spawn(telemetry, shutdown.clone());
    let groups = GroupController::new(queue.clone(), settings.groups);
    let reconciler = Reconciler::new(queue, clusters, settings.reconcile);
    span_export
        .into_iter()
        .chain([
            tokio::spawn(snapshots),
            tokio::spawn(
                dispatcher
                    .run(shutdown.clone())
                    .instrument(tracing::info_span!("loop", name = "dispatch")),
            ),
            tokio::spawn(
                groups
                    .run(shutdown.clone())
                    .instrument(tracing::info_span!("loop", name = "groups")),
            ),
            tokio::spawn(
                reconciler
                    .run(shutdown)
                    .instrument(tracing::info_span!("loop", name = "reconcile")),
            ),
        ])
        .collect()
}
