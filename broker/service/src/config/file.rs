//! The config file as written, and its validation into a [`Config`]; the
//! `tenants` and `clusters` sections are read in modules of their own.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use raybroker_core::{Bytes, FieldError, GpuModel};
use serde::Deserialize;

use super::placement::PlacementSection;
use super::{ApiSettings, ClusterConfig, Config, QueueSettings, RedisConfig, CONFIG_VERSION};

mod clusters;
mod tenants;

use tenants::TenantEntry;

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    version: u32,
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_redis")]
    redis: RedisConfig,
    #[serde(default = "default_queue")]
    queue: QueueSection,
    #[serde(default = "default_api")]
    api: ApiSettings,
    tenants: Vec<TenantEntry>,
    #[serde(default)]
    gpu_models: Vec<String>,
    #[serde(default)]
    clusters: Vec<ClusterConfig>,
    #[serde(default = "default_origin")]
    origin: String,
    #[serde(default)]
    loops: LoopsSection,
    #[serde(default)]
    ray_jobs_api: super::ray_jobs::RayJobsApiSection,
    #[serde(default)]
    placement: PlacementSection,
    #[serde(default)]
    retry: super::retry::RetrySection,
    #[serde(default)]
    circuit_breaker: super::retry::BreakerSection,
    #[serde(default)]
    telemetry: super::telemetry::TelemetrySection,
}

/// The `loops` section as written: how often each loop runs.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LoopsSection {
    snapshot_every: Option<String>,
    snapshot_max_age: Option<String>,
    dispatch_every: Option<String>,
    reconcile_every: Option<String>,
    lost_grace: Option<String>,
    gc_every: Option<String>,
}

/// The `queue` section as written; durations are read during validation so
/// their errors name the field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSection {
    #[serde(default = "default_lease_ttl")]
    lease_ttl: String,
    #[serde(default = "default_event_stream_max_len")]
    event_stream_max_len: u64,
    #[serde(default = "default_submit_batch_max")]
    submit_batch_max: usize,
    #[serde(default = "default_submit_batches_in_flight")]
    submit_batches_in_flight: usize,
}

impl ConfigFile {
    pub(super) fn validate(
        self,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<FieldError>> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, message: String| problems.push(FieldError::new(field, message));

        if self.version != CONFIG_VERSION {
            bad(
                "version",
                format!(
                    "unsupported version {}; this broker reads version {CONFIG_VERSION}",
                    self.version
                ),
            );
        }
        let listen = self.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            bad(
                "listen",
                format!(
                    "'{}' is not an address; write ip:port such as 127.0.0.1:8080 or [::]:8080",
                    self.listen
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        if redis::IntoConnectionInfo::into_connection_info(self.redis.url.as_str()).is_err() {
            // The URL may carry a password, so it is not repeated here.
            bad(
                "redis.url",
                "is not a Redis URL; write redis://host:port[/db] or rediss://host:port for TLS"
                    .into(),
            );
        }
        if !is_key_prefix(&self.redis.key_prefix) {
            bad(
                "redis.key_prefix",
                "use 1-64 letters, digits, '-', '_', '.' or ':'".into(),
            );
        }
        if !(1..=1024).contains(&self.redis.pool_size) {
            bad("redis.pool_size", "must be between 1 and 1024".into());
        }
        let lease_ttl = match humantime::parse_duration(&self.queue.lease_ttl) {
            Ok(ttl) if ttl < Duration::from_secs(1) => {
                bad("queue.lease_ttl", "must be at least 1s".into());
                ttl
            }
            Ok(ttl) => ttl,
            Err(e) => {
                let text = &self.queue.lease_ttl;
                bad(
                    "queue.lease_ttl",
                    format!("'{text}' is not a duration ({e}); write e.g. 30s or 2m"),
                );
                Duration::ZERO
            }
        };
        if self.queue.event_stream_max_len < 100 {
            bad("queue.event_stream_max_len", "must be at least 100".into());
        }
        if !(1..=MAX_SUBMIT_BATCH).contains(&self.queue.submit_batch_max) {
            bad(
                "queue.submit_batch_max",
                format!("must be 1 to {MAX_SUBMIT_BATCH} (1 turns group commit off)"),
            );
        }
        if !(1..=MAX_SUBMIT_BATCHES_IN_FLIGHT).contains(&self.queue.submit_batches_in_flight) {
            bad(
                "queue.submit_batches_in_flight",
                format!("must be 1 to {MAX_SUBMIT_BATCHES_IN_FLIGHT}"),
            );
        }
        let body = self.api.max_body_bytes;
        if body < Bytes(1024) || body > Bytes(64 << 20) {
            bad(
                "api.max_body_bytes",
                format!("{body} is out of range; use 1KiB to 64MiB"),
            );
        }

        let (tenants, tenant_policies) =
            tenants::read_tenants(&self.tenants, base_dir, env, &mut bad);

        let mut gpu_models = Vec::new();
        for (i, name) in self.gpu_models.iter().enumerate() {
            match GpuModel::parse(name) {
                Ok(model) => gpu_models.push(model),
                Err(e) => bad(&format!("gpu_models[{i}]"), e.to_string()),
            }
        }

        if self.origin.is_empty()
            || self.origin.len() > 128
            || self.origin.contains(char::is_whitespace)
        {
            bad(
                "origin",
                "must be 1-128 characters without whitespace, e.g. raybroker-prod".into(),
            );
        }
        let mut loops = self.loops.read(&mut bad);
        loops.reconcile.retry = self.retry.read(&mut bad);
        loops.breaker = self.circuit_breaker.read(&mut bad);
        let ray_jobs_api = self.ray_jobs_api.read(&mut bad);
        let placement = self.placement.read(tenant_policies, &mut bad);
        let telemetry = self.telemetry.read(listen, base_dir, env, &mut bad);
        loops.telemetry = telemetry.clone();
        loops.dispatch.policy = placement.clone();
        let mut clusters = self.clusters;
        clusters::read_clusters(&mut clusters, &self.origin, &mut bad);

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen,
            redis: self.redis,
            queue: QueueSettings {
                lease_ttl,
                event_stream_max_len: self.queue.event_stream_max_len,
                submit_batch_max: self.queue.submit_batch_max,
                submit_batches_in_flight: self.queue.submit_batches_in_flight,
            },
            api: self.api,
            tenants,
            gpu_models,
            clusters,
            origin: self.origin,
            loops,
            ray_jobs_api,
            placement,
            telemetry,
        })
    }
}

impl LoopsSection {
    /// The loop settings, defaults for what is not given.
    fn read(&self, bad: &mut dyn FnMut(&str, String)) -> crate::loops::LoopSettings {
        let mut settings = crate::loops::LoopSettings::default();
        let mut set = |field: &str, text: &Option<String>, target: &mut Duration| {
            if let Some(text) = text {
                match humantime::parse_duration(text) {
                    Ok(d) if !d.is_zero() => *target = d,
                    _ => bad(
                        &format!("loops.{field}"),
                        format!("'{text}' is not a positive duration; write e.g. 500ms or 30s"),
                    ),
                }
            }
        };
        set(
            "snapshot_every",
            &self.snapshot_every,
            &mut settings.snapshot_every,
        );
        set(
            "snapshot_max_age",
            &self.snapshot_max_age,
            &mut settings.snapshot_max_age,
        );
        set(
            "dispatch_every",
            &self.dispatch_every,
            &mut settings.dispatch.tick,
        );
        set(
            "reconcile_every",
            &self.reconcile_every,
            &mut settings.reconcile.tick,
        );
        set(
            "lost_grace",
            &self.lost_grace,
            &mut settings.reconcile.lost_grace,
        );
        set("gc_every", &self.gc_every, &mut settings.reconcile.gc_every);
        settings
    }
}

fn is_key_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn default_origin() -> String {
    "raybroker".to_string()
}

pub(super) fn default_pending_allowance() -> u32 {
    2
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
pub(super) fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}
pub(super) fn default_key_prefix() -> String {
    "rb".into()
}
pub(super) fn default_pool_size() -> usize {
    32
}
fn default_redis() -> RedisConfig {
    RedisConfig {
        url: default_redis_url(),
        key_prefix: default_key_prefix(),
        pool_size: default_pool_size(),
    }
}
fn default_lease_ttl() -> String {
    "30s".into()
}
fn default_event_stream_max_len() -> u64 {
    100_000
}
/// Most jobs one group-commit script call may carry: larger batches hold
/// Redis's one thread for longer without saving more.
const MAX_SUBMIT_BATCH: usize = 1024;
/// Most group-commit calls in flight at once.
const MAX_SUBMIT_BATCHES_IN_FLIGHT: usize = 16;
fn default_submit_batch_max() -> usize {
    raybroker_queue::QueueConfig::default().submit_batch_max
}
fn default_submit_batches_in_flight() -> usize {
    raybroker_queue::QueueConfig::default().submit_batches_in_flight
}
fn default_queue() -> QueueSection {
    QueueSection {
        lease_ttl: default_lease_ttl(),
        event_stream_max_len: default_event_stream_max_len(),
        submit_batch_max: default_submit_batch_max(),
        submit_batches_in_flight: default_submit_batches_in_flight(),
    }
}
pub(super) fn default_max_body_bytes() -> Bytes {
    Bytes(1 << 20)
}
fn default_api() -> ApiSettings {
    ApiSettings {
        max_body_bytes: default_max_body_bytes(),
    }
}
