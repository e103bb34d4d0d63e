//! Running the HTTP server.
//!
//! [`run`] takes its listener and a shutdown future as arguments, so a test
//! binds port 0, starts the server in-process and stops it deterministically.
//! [`serve_from_file`] is the production entry: it binds the configured
//! address and stops on SIGINT or SIGTERM (a second signal exits at once).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deadpool_redis::{PoolConfig, Runtime, Timeouts};
use raybroker_queue::JobQueue;
use redis::AsyncConnectionConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, AppState, EventHub};
use crate::clusters::{ClusterMeta, ClusterRegistry};
use crate::config::{ClusterKind, Config};
use crate::metrics::Metrics;
use crate::raystore::delivery::PackageDelivery;
use crate::raystore::RayStore;
use raybroker_adapter::ClusterAdapter;
use raybroker_kuberay::KubeRayAdapter;
use raybroker_ray::client::RayClient;
use raybroker_ray::RayAdapter;
use raybroker_slurm::SlurmAdapter;

/// How long taking a connection from the pool may wait before the request
/// is answered 503.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for one cluster's capacity snapshot.
const CLUSTER_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Multiplexed Redis connections shared by all short calls.
const SHARED_CONNECTIONS: usize = 4;
/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for the answer to one call on a pooled connection: above
/// the longest blocking read the service makes (the event hub's, 5 s).
const POOL_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the API on `listener` until `shutdown` completes, then stops
/// accepting, ends open event streams and waits for requests in flight.
///
/// Redis need not be up: requests that need it answer 503 and `/readyz`
/// reports it until it is.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = redis_pool(&config)?;
    let queue = connect_queue(&config, pool.clone())?;
    let metrics = Arc::new(Metrics::new());
    let clusters = Arc::new(
        build_clusters(&config, &queue)?
            .with_metrics(metrics.broker.clone())
            .with_breaker(config.loops.breaker),
    );
    let ray_store = RayStore::new(
        pool,
        &config.redis.key_prefix,
        config.ray_jobs_api.package_ttl,
    );
    let packages = Arc::new(build_package_delivery(&config, ray_store.clone())?);
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let events = EventHub::start(queue.clone(), metrics.clone(), stopping_rx.clone());
    let loops = crate::loops::spawn_all(
        queue.clone(),
        clusters.clone(),
        config.loops.clone(),
        Some(packages),
        stopping_rx.clone(),
    );
    let state = AppState::new(
        config,
        queue,
        ray_store,
        metrics,
        clusters,
        events,
        stopping_rx,
    );
    let app = api::router(state);

    let addr = listener.local_addr().context("listener has no address")?;
    tracing::info!(%addr, "raybroker api listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests");
            // Ends event streams (which would otherwise hold the shutdown
            // open) and the event hub.
            let _ = stopping_tx.send(true);
        })
        .await
        .context("http server failed")?;
    for task in loops {
        let _ = task.await;
    }
    tracing::info!("raybroker stopped");
    Ok(())
}

/// An adapter for every configured cluster.
/// Every adapter's calls about a job are recorded as spans of its trace.
pub fn build_clusters(config: &Config, queue: &JobQueue) -> anyhow::Result<ClusterRegistry> {
    let mut entries: Vec<(ClusterMeta, Arc<dyn ClusterAdapter>)> = Vec::new();
    for cluster in &config.clusters {
        let adapter: Arc<dyn ClusterAdapter> = match (&cluster.kind, &cluster.ray_config) {
            (ClusterKind::Ray, Some(ray)) => Arc::new(
                RayAdapter::new(cluster.name.clone(), ray.clone())
                    .with_context(|| format!("cluster {}", cluster.name))?,
            ),
            (ClusterKind::Slurm, _) => {
                let slurm = cluster.slurm_config.clone().with_context(|| {
                    format!("cluster {}: the slurm section was not read", cluster.name)
                })?;
                Arc::new(
                    SlurmAdapter::new(cluster.name.clone(), slurm)
                        .with_context(|| format!("cluster {}", cluster.name))?,
                )
            }
            (ClusterKind::Kuberay, _) => {
                let kuberay = cluster.kuberay_config.clone().with_context(|| {
                    format!("cluster {}: the kuberay section was not read", cluster.name)
                })?;
                Arc::new(
                    KubeRayAdapter::new(cluster.name.clone(), kuberay)
                        .with_context(|| format!("cluster {}", cluster.name))?,
                )
            }
            (kind, _) => {
                anyhow::bail!("cluster {}: no adapter for {kind:?} clusters", cluster.name)
            }
        };
        let meta = ClusterMeta {
            name: cluster.name.clone(),
            kind: format!("{:?}", cluster.kind).to_lowercase(),
            tier: cluster.tier,
            cost_per_gpu_hour: cluster.cost_per_gpu_hour,
            labels: cluster.labels.clone(),
            pending_allowance: cluster.pending_allowance,
        };
        entries.push((
            meta,
            crate::telemetry::calls::traced(adapter, queue.clone()),
        ));
    }
    Ok(ClusterRegistry::new(
        entries,
        config.loops.snapshot_max_age,
        CLUSTER_CALL_TIMEOUT,
    ))
}

/// What copies uploaded packages to the Ray clusters' heads before a submit.
fn build_package_delivery(config: &Config, store: RayStore) -> anyhow::Result<PackageDelivery> {
    let mut heads = HashMap::new();
    for cluster in &config.clusters {
        if let (ClusterKind::Ray, Some(ray)) = (&cluster.kind, &cluster.ray_config) {
            let client =
                RayClient::new(ray).with_context(|| format!("cluster {}", cluster.name))?;
            heads.insert(cluster.name.clone(), client);
        }
    }
    Ok(PackageDelivery::new(store, heads))
}

/// Loads the config at `path`, binds its `listen` address and serves until
/// SIGINT or SIGTERM; a second signal exits the process at once.
pub async fn serve_from_file(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    run(config, listener, shutdown_signal()).await
}

/// The Redis connection pool as configured. Connects lazily.
fn redis_pool(config: &Config) -> anyhow::Result<deadpool_redis::Pool> {
    let mut pool_config = PoolConfig::new(config.redis.pool_size);
    pool_config.timeouts = Timeouts {
        wait: Some(POOL_WAIT),
        create: Some(CONNECT_TIMEOUT),
        recycle: Some(CONNECT_TIMEOUT),
    };
    // The pool serves blocking reads (the event hub's XREAD BLOCK), which
    // redis-rs's default response timeout (500 ms) would cut short.
    let connection = AsyncConnectionConfig::new().set_response_timeout(Some(POOL_RESPONSE_TIMEOUT));
    // Errors may quote the URL, which may hold a password: say less.
    let bad_url = |_| anyhow::anyhow!("cannot use redis.url; check its form (redis://host:port)");
    let manager = deadpool_redis::Manager::new_with_config(config.redis.url.as_str(), connection)
        .map_err(bad_url)?;
    deadpool_redis::Pool::builder(manager)
        .config(pool_config)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|_| anyhow::anyhow!("cannot set up the redis connection pool; check redis.url"))
}

/// The queue over `pool` as configured. Connects lazily.
fn connect_queue(config: &Config, pool: deadpool_redis::Pool) -> anyhow::Result<JobQueue> {
    // Short calls share a few multiplexed connections (one round trip each,
    // concurrent requests pipelined); the pool serves blocking reads.
    JobQueue::with_shared_connections(
        &config.redis.url,
        SHARED_CONNECTIONS,
        pool,
        config.queue_config(),
    )
    .map_err(|_| anyhow::anyhow!("cannot use redis.url; check its form (redis://host:port)"))
}

/// Completes on the first SIGINT or SIGTERM, and arms a second one to exit
/// the process at once (for a shutdown stuck on a request).
pub async fn shutdown_signal() {
    termination().await;
    tracing::info!("signal received: shutting down (send another to exit now)");
    tokio::spawn(async {
        termination().await;
        tracing::warn!("second signal: exiting without waiting");
        std::process::exit(130);
    });
}

/// The next SIGINT or SIGTERM.
async fn termination() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
