//! The config file as written, and its validation into a [`Config`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raybroker_core::{Bytes, FieldError, GpuModel, TenantId};
use serde::Deserialize;

use super::placement::{PlacementSection, QuotaEntry, TenantPlacementEntry};
use super::{
    ApiSettings, ClusterConfig, ClusterKind, Config, QueueSettings, RedisConfig, Tenant,
    CONFIG_VERSION, MIN_TOKEN_LEN,
};
use crate::auth::TokenHash;

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
}

/// A tenant as written: exactly one of the three token sources.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    name: String,
    #[serde(default)]
    admin: bool,
    token_sha256: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    /// Fair-share weight, > 0 (default 1).
    weight: Option<f64>,
    /// Bounds on what the tenant has in flight over all tiers.
    quota: Option<QuotaEntry>,
    /// Bounds per cluster tier.
    #[serde(default)]
    tier_quotas: BTreeMap<u32, QuotaEntry>,
    /// Whether its jobs may burst to higher tiers (default true).
    burst: Option<bool>,
    /// How long a job waits for its lowest tier before bursting (default 10m).
    max_wait: Option<String>,
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
        let body = self.api.max_body_bytes;
        if body < Bytes(1024) || body > Bytes(64 << 20) {
            bad(
                "api.max_body_bytes",
                format!("{body} is out of range; use 1KiB to 64MiB"),
            );
        }

        let mut tenants: Vec<Tenant> = Vec::new();
        let mut tenant_policies = BTreeMap::new();
        if self.tenants.is_empty() {
            bad("tenants", "no tenants: add at least one, e.g. {name: ops, admin: true, token_env: RAYBROKER_ADMIN_TOKEN}".into());
        }
        for (i, entry) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            let id = match TenantId::new(&entry.name) {
                Ok(id) => id,
                Err(e) => {
                    bad(&format!("{at}.name"), e.to_string());
                    continue;
                }
            };
            if tenants.iter().any(|t| t.id == id) {
                bad(
                    &format!("{at}.name"),
                    format!("tenant '{id}' is listed twice"),
                );
                continue;
            }
            let policy = TenantPlacementEntry {
                weight: entry.weight,
                quota: entry.quota.as_ref(),
                tier_quotas: &entry.tier_quotas,
                burst: entry.burst,
                max_wait: entry.max_wait.as_deref(),
            }
            .read(&at, &mut bad);
            tenant_policies.insert(id.to_string(), policy);
            let token = match entry.token_hash(base_dir, env) {
                Ok(token) => token,
                Err((field, message)) => {
                    bad(&format!("{at}.{field}"), message);
                    continue;
                }
            };
            if let Some(other) = tenants.iter().find(|t| t.token.ct_eq(&token)) {
                bad(
                    &at,
                    format!(
                        "has the same token as tenant '{}'; give each tenant its own token",
                        other.id
                    ),
                );
                continue;
            }
            tenants.push(Tenant {
                id,
                admin: entry.admin,
                token,
            });
        }

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
        for (i, cluster) in clusters.iter_mut().enumerate() {
            let at = format!("clusters[{i}]");
            cluster.read_backend(&at, &self.origin, &mut bad);
        }

        let mut names = BTreeSet::new();
        for (i, cluster) in clusters.iter().enumerate() {
            let at = format!("clusters[{i}]");
            if !is_dns_label(&cluster.name) {
                bad(&format!("{at}.name"), format!("'{}' is not a cluster name: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", cluster.name));
            } else if !names.insert(cluster.name.as_str()) {
                bad(
                    &format!("{at}.name"),
                    format!("cluster '{}' is listed twice", cluster.name),
                );
            }
            if !cluster.cost_per_gpu_hour.is_finite() || cluster.cost_per_gpu_hour < 0.0 {
                bad(
                    &format!("{at}.cost_per_gpu_hour"),
                    "must be a number of at least 0".into(),
                );
            }
            for key in cluster.labels.keys() {
                if key.is_empty() || key.len() > 63 {
                    bad(
                        &format!("{at}.labels"),
                        format!("label key '{key}' must be 1-63 characters"),
                    );
                }
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen,
            redis: self.redis,
            queue: QueueSettings {
                lease_ttl,
                event_stream_max_len: self.queue.event_stream_max_len,
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

impl ClusterConfig {
    /// Reads the backend section that goes with `kind`; the broker's origin
    /// is filled in unless the section sets its own.
    fn read_backend(&mut self, at: &str, origin: &str, bad: &mut dyn FnMut(&str, String)) {
        let sections = [
            (ClusterKind::Ray, "ray", self.ray_section.is_some()),
            (ClusterKind::Slurm, "slurm", self.slurm_section.is_some()),
            (
                ClusterKind::Kuberay,
                "kuberay",
                self.kuberay_section.is_some(),
            ),
        ];
        for (kind, name, present) in sections {
            if present && kind != self.kind {
                bad(
                    &format!("{at}.{name}"),
                    format!(
                        "only `kind: {name}` clusters take a `{name}:` section, this one is `kind: {}`",
                        format!("{:?}", self.kind).to_lowercase()
                    ),
                );
            }
        }
        match self.kind {
            ClusterKind::Ray => {
                let needs = "a `kind: ray` cluster needs a `ray:` section with at least `address: http://HEAD:8265`";
                let section = with_origin(&self.ray_section, origin);
                self.ray_config = read_section(section, &format!("{at}.ray"), needs, bad, |c: &raybroker_ray::RayClusterConfig| {
                    c.validate().map_err(|e| (String::new(), e.to_string()))
                });
            }
            ClusterKind::Slurm => {
                let needs = "a `kind: slurm` cluster needs a `slurm:` section with `address`, `user`, `auth`, `ray_bin_dir` and `jobs_dir` (see docs/slurm.md)";
                let section = with_origin(&self.slurm_section, origin);
                self.slurm_config = read_section(section, &format!("{at}.slurm"), needs, bad, |c: &raybroker_slurm::SlurmClusterConfig| {
                    c.validate().map_err(|e| (String::new(), e.to_string()))
                });
            }
            ClusterKind::Kuberay => {
                let needs = "a `kind: kuberay` cluster needs a `kuberay:` section with at least `namespace` and a `template` (see docs/kuberay.md)";
                let section = with_origin(&self.kuberay_section, origin);
                self.kuberay_config = read_section(section, &format!("{at}.kuberay"), needs, bad, |c: &raybroker_kuberay::KubeRayClusterConfig| {
                    c.validate().map_err(|e| (format!(".{}", e.field), e.message))
                });
            }
            ClusterKind::Simulated => bad(
                &format!("{at}.kind"),
                "simulated clusters exist only in tests and the replay; use `kind: ray`, `kuberay` or `slurm`".into(),
            ),
        }
    }
}

impl TenantEntry {
    /// The token's hash from whichever source is given; on error the field
    /// (relative to the tenant) and the message.
    fn token_hash(
        &self,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TokenHash, (&'static str, String)> {
        let clear = match (&self.token_sha256, &self.token_file, &self.token_env) {
            (Some(hex), None, None) => {
                return TokenHash::from_hex(hex).map_err(|e| ("token_sha256", e.to_string()))
            }
            (None, Some(file), None) => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ("token_file", format!("cannot read {}: {e}", path.display())))?;
                ("token_file", text.trim().to_string())
            }
            (None, None, Some(var)) => {
                let value = env(var).unwrap_or_default();
                if value.is_empty() {
                    return Err((
                        "token_env",
                        format!("environment variable {var} is not set or empty"),
                    ));
                }
                ("token_env", value.trim().to_string())
            }
            _ => {
                return Err((
                    "token_sha256",
                    "give exactly one of token_sha256, token_file or token_env".into(),
                ))
            }
        };
        let (field, token) = clear;
        if token.len() < MIN_TOKEN_LEN {
            return Err((field, format!("the token is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`")));
        }
        Ok(TokenHash::of_token(&token))
    }
}

fn is_key_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn is_dns_label(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 63
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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
fn default_queue() -> QueueSection {
    QueueSection {
        lease_ttl: default_lease_ttl(),
        event_stream_max_len: default_event_stream_max_len(),
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

/// A backend section with the broker's origin filled in unless it sets its own.
fn with_origin(section: &Option<serde_norway::Value>, origin: &str) -> Option<serde_norway::Value> {
    let mut section = section.clone()?;
    if let serde_norway::Value::Mapping(map) = &mut section {
        let key = serde_norway::Value::String("origin".into());
        if !map.contains_key(&key) {
            map.insert(key, serde_norway::Value::String(origin.to_string()));
        }
    }
    Some(section)
}

/// Reads and checks one backend section; a problem is reported under `at`
/// (plus the sub-field the check names) and gives `None`.
fn read_section<T: serde::de::DeserializeOwned>(
    section: Option<serde_norway::Value>,
    at: &str,
    needs: &str,
    bad: &mut dyn FnMut(&str, String),
    check: impl Fn(&T) -> Result<(), (String, String)>,
) -> Option<T> {
    let Some(section) = section else {
        bad(at, needs.to_string());
        return None;
    };
    match serde_norway::from_value::<T>(section) {
        Ok(config) => match check(&config) {
            Ok(()) => Some(config),
            Err((field, message)) => {
                bad(&format!("{at}{field}"), message);
                None
            }
        },
        Err(err) => {
            bad(at, err.to_string());
            None
        }
    }
}
