//! The service's Prometheus metrics. Labels stay low-cardinality: route
//! templates, status classes, configured tenant names and fixed reasons —
//! never a job id.

use std::fmt::Write as _;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use raybroker_core::TenantId;

pub mod broker;
pub use broker::BrokerMetrics;

/// Labels of one HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template, e.g. `/v1/jobs/{id}`.
    route: String,
    /// The HTTP method.
    method: String,
    /// `2xx`, `4xx`, ...
    status: String,
}

/// Labels of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    /// The route template.
    route: String,
    /// The HTTP method.
    method: String,
}

/// Labels of a submission.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    /// A configured tenant.
    tenant: String,
}

/// Why a submission was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RejectReason {
    /// The body is not a readable JSON or YAML document.
    Malformed,
    /// A field is unknown, mistyped or out of range.
    Invalid,
    /// The body is over `api.max_body_bytes`.
    TooLarge,
    /// The content type is neither JSON nor YAML.
    UnsupportedMediaType,
    /// The queue could not be reached.
    Unavailable,
}

impl RejectReason {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Invalid => "invalid",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnsupportedMediaType => "unsupported_media_type",
            RejectReason::Unavailable => "unavailable",
        }
    }
}

impl EncodeLabelValue for RejectReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Labels of a refused submission.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// Why it was refused.
    reason: RejectReason,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric the service exports, and the registry that renders them.
pub struct Metrics {
    /// Owns the metric families below (they share state with it).
    registry: Registry,
    /// Requests by route template, method and status class.
    http_requests: Family<RequestLabels, Counter>,
    /// Request latency by route template and method.
    http_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Jobs created (not idempotent replays), by tenant.
    jobs_submitted: Family<TenantLabels, Counter>,
    /// Refused submissions by reason.
    submissions_rejected: Family<ReasonLabels, Counter>,
    /// Job events read from the queue and passed to event streams.
    job_events_relayed: Counter,
    /// Failed reads of the queue's event stream.
    event_hub_errors: Counter,
    /// The loops' and clusters' metrics (queue, capacity, failures, calls).
    pub broker: BrokerMetrics,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("raybroker");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let jobs_submitted = Family::<TenantLabels, Counter>::default();
        let submissions_rejected = Family::<ReasonLabels, Counter>::default();
        let job_events_relayed = Counter::default();
        let event_hub_errors = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status class",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method",
            http_latency.clone(),
        );
        registry.register(
            "jobs_submitted",
            "Jobs created through the API, by tenant",
            jobs_submitted.clone(),
        );
        registry.register(
            "submissions_rejected",
            "Job submissions refused, by reason",
            submissions_rejected.clone(),
        );
        registry.register(
            "job_events_relayed",
            "Job events read from the queue for event streams",
            job_events_relayed.clone(),
        );
        registry.register(
            "event_hub_errors",
            "Failed reads of the queue's event stream",
            event_hub_errors.clone(),
        );
        let broker = BrokerMetrics::default();
        broker.register(&mut registry);
        Metrics {
            registry,
            broker,
            http_requests,
            http_latency,
            jobs_submitted,
            submissions_rejected,
            job_events_relayed,
            event_hub_errors,
        }
    }

    /// Counts one finished request. `route` must be a template, never a raw path.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status: format!("{}xx", status / 100),
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a created job.
    pub fn job_submitted(&self, tenant: &TenantId) {
        self.jobs_submitted
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .inc();
    }

    /// Counts a refused submission.
    pub fn submission_rejected(&self, reason: RejectReason) {
        self.submissions_rejected
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts events passed from the queue to event streams.
    pub fn job_events_relayed(&self, count: usize) {
        self.job_events_relayed
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Counts a failed read of the queue's event stream.
    pub fn event_hub_error(&self) {
        self.event_hub_errors.inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_their_labels() {
        let metrics = Metrics::new();
        let tenant = TenantId::new("robotics").unwrap();
        metrics.job_submitted(&tenant);
        metrics.job_submitted(&tenant);
        metrics.submission_rejected(RejectReason::TooLarge);
        metrics.observe_request("/v1/jobs/{id}", "GET", 404, Duration::from_millis(3));
        let text = metrics.render();
        assert!(
            text.contains(r#"raybroker_jobs_submitted_total{tenant="robotics"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"raybroker_submissions_rejected_total{reason="too_large"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"raybroker_http_requests_total{route="/v1/jobs/{id}",method="GET",status="4xx"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("raybroker_http_request_duration_seconds_bucket"),
            "{text}"
        );
    }
}
