//! Metrics of the broker's loops and clusters: queue depth, wait and
//! dispatch latency, free capacity, cluster health, failures by class,
//! retries and adapter call latency. Labels are configured names (tenants,
//! clusters, GPU models), fixed operation names and failure classes — never a
//! job id.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use raybroker_core::FailureClass;

/// A tenant.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// A cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

/// A cluster's GPUs of one model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    cluster: String,
    gpu_model: String,
}

/// One adapter call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    cluster: String,
    /// `snapshot`, `submit`, `status`, `logs`, `cancel`, `cleanup`, `list_owned`.
    operation: String,
    /// `ok` or `error` (timeouts included).
    outcome: String,
}

/// A failed attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    class: String,
    cluster: String,
}

/// A retry.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn histogram_from_ms() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn histogram_from_s() -> Histogram {
    // 0.1 s to ~2.3 days.
    Histogram::new(exponential_buckets(0.1, 2.0, 22))
}

/// The families, shared by the loops and the cluster registry (cheap to
/// clone: each family is a handle on shared state). Unregistered ones (tests,
/// tools) count without being exported.
#[derive(Clone, Debug)]
pub struct BrokerMetrics {
    queue_depth: Family<TenantLabel, Gauge>,
    wait: Family<TenantLabel, Histogram, fn() -> Histogram>,
    dispatch_latency: Family<ClusterLabel, Histogram, fn() -> Histogram>,
    gpus_free: Family<GpuLabels, FloatGauge>,
    gpus_total: Family<GpuLabels, FloatGauge>,
    cpus_free: Family<ClusterLabel, FloatGauge>,
    health: Family<ClusterLabel, Gauge>,
    failures: Family<FailureLabels, Counter>,
    retries: Family<ClassLabel, Counter>,
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics {
            queue_depth: Family::default(),
            wait: Family::new_with_constructor(histogram_from_s),
            dispatch_latency: Family::new_with_constructor(histogram_from_ms),
            gpus_free: Family::default(),
            gpus_total: Family::default(),
            cpus_free: Family::default(),
            health: Family::default(),
            failures: Family::default(),
            retries: Family::default(),
            calls: Family::new_with_constructor(histogram_from_ms),
        }
    }
}

impl BrokerMetrics {
    /// Registers every family in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "queue_depth",
            "Jobs queued, by tenant",
            self.queue_depth.clone(),
        );
        registry.register(
            "job_wait_seconds",
            "Time from queueing (submit or retry) to dispatch, by tenant",
            self.wait.clone(),
        );
        registry.register(
            "dispatch_latency_seconds",
            "Time from lease to the cluster's acknowledgement of the submit, by cluster",
            self.dispatch_latency.clone(),
        );
        registry.register(
            "cluster_free_gpus",
            "Free GPUs by cluster and GPU model, from the last snapshot",
            self.gpus_free.clone(),
        );
        registry.register(
            "cluster_gpus",
            "GPUs by cluster and GPU model, from the last snapshot",
            self.gpus_total.clone(),
        );
        registry.register(
            "cluster_free_cpus",
            "Free CPUs by cluster, from the last snapshot",
            self.cpus_free.clone(),
        );
        registry.register(
            "cluster_health",
            "Cluster health: 0 healthy, 1 degraded, 2 down",
            self.health.clone(),
        );
        registry.register(
            "job_failures",
            "Failed attempts by failure class and cluster",
            self.failures.clone(),
        );
        registry.register(
            "job_retries",
            "Attempts queued again after a failure, by failure class",
            self.retries.clone(),
        );
        registry.register(
            "adapter_call_duration_seconds",
            "Cluster adapter calls by cluster, operation and outcome",
            self.calls.clone(),
        );
    }

    /// Sets a tenant's queued job count.
    pub fn set_queue_depth(&self, tenant: &str, depth: u64) {
        self.queue_depth
            .get_or_create(&TenantLabel {
                tenant: tenant.to_string(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// A job waited `waited` in the queue before its dispatch.
    pub fn observe_wait(&self, tenant: &str, waited: Duration) {
        self.wait
            .get_or_create(&TenantLabel {
                tenant: tenant.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    /// A dispatch to `cluster` took `took` from lease to acknowledgement.
    pub fn observe_dispatch(&self, cluster: &str, took: Duration) {
        self.dispatch_latency
            .get_or_create(&ClusterLabel {
                cluster: cluster.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// A cluster's GPUs of one model: total and free.
    pub fn set_gpus(&self, cluster: &str, model: &str, total: f64, free: f64) {
        let labels = GpuLabels {
            cluster: cluster.to_string(),
            gpu_model: model.to_string(),
        };
        self.gpus_total.get_or_create(&labels).set(total);
        self.gpus_free.get_or_create(&labels).set(free);
    }

    /// A cluster's free CPUs.
    pub fn set_free_cpus(&self, cluster: &str, free: f64) {
        self.cpus_free
            .get_or_create(&ClusterLabel {
                cluster: cluster.to_string(),
            })
            .set(free);
    }

    /// A cluster's health level (see `HealthState::level`).
    pub fn set_health(&self, cluster: &str, level: i64) {
        self.health
            .get_or_create(&ClusterLabel {
                cluster: cluster.to_string(),
            })
            .set(level);
    }

    /// An attempt on `cluster` failed with `class`.
    pub fn failure(&self, class: FailureClass, cluster: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                class: class.as_str().to_string(),
                cluster: cluster.to_string(),
            })
            .inc();
    }

    /// A job was queued again after a failure of `class`.
    pub fn retry(&self, class: FailureClass) {
        self.retries
            .get_or_create(&ClassLabel {
                class: class.as_str().to_string(),
            })
            .inc();
    }

    /// One adapter call and how long it took.
    pub fn observe_call(&self, cluster: &str, operation: &str, ok: bool, took: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                cluster: cluster.to_string(),
                operation: operation.to_string(),
                outcome: if ok { "ok" } else { "error" }.to_string(),
            })
            .observe(took.as_secs_f64());
    }
}
