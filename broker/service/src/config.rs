//! The broker's configuration: one versioned YAML file.
//!
//! Reading it takes three steps, each with errors that say what to fix:
//! 1. `${VAR}` and `${VAR:-default}` are expanded in the raw text
//!    ([`expand_env`]; `$${` writes a literal `${`);
//! 2. the text is parsed strictly: an unknown field anywhere is an error;
//! 3. the parsed file is validated and turned into a [`Config`], reading
//!    tokens from files or the environment and keeping only their hashes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raybroker_core::{Bytes, FieldError, GpuCatalog, GpuModel, TenantId, ValidationContext};
use serde::Deserialize;

use crate::auth::TokenHash;

mod expand;
mod file;
mod placement;
mod ray_jobs;
mod retry;
mod telemetry;

pub use telemetry::TelemetrySettings;

pub use expand::{expand_env, ExpandError};

/// The only config version this broker reads.
pub const CONFIG_VERSION: u32 = 1;

/// Tokens read in clear (file or env) must be at least this long.
pub const MIN_TOKEN_LEN: usize = 16;

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Where the queue lives.
    pub redis: RedisConfig,
    /// How the queue behaves.
    pub queue: QueueSettings,
    /// Limits of the HTTP API.
    pub api: ApiSettings,
    /// Who may call the API, each with the hash of its token.
    pub tenants: Vec<Tenant>,
    /// GPU models accepted beyond raybroker_core's built-in ones.
    pub gpu_models: Vec<GpuModel>,
    /// The clusters jobs may be placed on.
    pub clusters: Vec<ClusterConfig>,
    /// Tag on everything this broker creates on a cluster.
    pub origin: String,
    /// How often the loops run.
    pub loops: crate::loops::LoopSettings,
    /// The Ray Jobs API compatible endpoint (`/api/...`).
    pub ray_jobs_api: RayJobsApiSettings,
    /// Tenants' weights, quotas and bursting, aging and reservations.
    pub placement: raybroker_placement::Policy,
    /// Where jobs send OTLP data, their token secret, the collector.
    pub telemetry: TelemetrySettings,
}

/// The `ray_jobs_api` section: the Ray Jobs API compatible endpoint that
/// `ray job submit` and `JobSubmissionClient` talk to (docs/ray-jobs-api.md).
#[derive(Clone, Debug)]
pub struct RayJobsApiSettings {
    /// Serve `/api/version`, `/api/jobs/...` and `/api/packages/...` on the
    /// API's listener.
    pub enabled: bool,
    /// Largest package (a zipped `working_dir` or `py_modules` entry) a
    /// client may upload; larger ones get 413.
    pub max_package_bytes: Bytes,
    /// How long an uploaded package is kept after its last upload, check,
    /// or use by a submitted or dispatched job.
    pub package_ttl: Duration,
}

/// The `redis` section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...`.
    #[serde(default = "file::default_redis_url")]
    pub url: String,
    /// Prefix of every key, so several brokers can share one Redis.
    #[serde(default = "file::default_key_prefix")]
    pub key_prefix: String,
    /// Most connections held open to Redis.
    #[serde(default = "file::default_pool_size")]
    pub pool_size: usize,
}

/// The `queue` section.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// How long a dispatcher holds a job before it returns to the queue.
    pub lease_ttl: Duration,
    /// Approximate number of events kept in the event stream.
    pub event_stream_max_len: u64,
    /// Most concurrent submits committed in one script call (1: each alone).
    pub submit_batch_max: usize,
    /// Group-commit calls in flight at once.
    pub submit_batches_in_flight: usize,
}

/// The `api` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Largest request body accepted (e.g. `1MiB`); larger ones get 413.
    #[serde(default = "file::default_max_body_bytes")]
    pub max_body_bytes: Bytes,
}

/// A tenant allowed to call the API.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The tenant's name; every job it submits belongs to it.
    pub id: TenantId,
    /// Admins see every tenant's jobs.
    pub admin: bool,
    /// SHA-256 of its token; the clear token is never kept.
    pub token: TokenHash,
}

/// What software runs a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterKind {
    /// A Ray cluster reached through its job submission API.
    Ray,
    /// A RayCluster managed by KubeRay on Kubernetes.
    Kuberay,
    /// A Slurm cluster that starts Ray inside an allocation.
    Slurm,
    /// An in-process fake, for tests and demos.
    Simulated,
}

/// One entry of `clusters`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Unique DNS-style name; placement constraints refer to it.
    pub name: String,
    /// What runs the cluster.
    pub kind: ClusterKind,
    /// Placement preference: lower tiers fill first (0 = on-prem).
    #[serde(default)]
    pub tier: u32,
    /// What one GPU hour costs there, for cost-aware placement.
    #[serde(default)]
    pub cost_per_gpu_hour: f64,
    /// Free key/values that placement constraints match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Jobs the cluster may hold pending beyond what it can start now
    /// (admission control: the queue stays in the broker).
    #[serde(default = "file::default_pending_allowance")]
    pub pending_allowance: u32,
    /// The `ray` section of a `kind: ray` cluster, as written; read into
    /// [`ClusterConfig::ray_config`] during validation.
    #[serde(default, rename = "ray")]
    pub ray_section: Option<serde_norway::Value>,
    /// The checked settings of a `kind: ray` cluster.
    #[serde(skip)]
    pub ray_config: Option<raybroker_ray::RayClusterConfig>,
    /// The `slurm` section of a `kind: slurm` cluster, as written; read into
    /// [`ClusterConfig::slurm_config`] during validation.
    #[serde(default, rename = "slurm")]
    pub slurm_section: Option<serde_norway::Value>,
    /// The checked settings of a `kind: slurm` cluster.
    #[serde(skip)]
    pub slurm_config: Option<raybroker_slurm::SlurmClusterConfig>,
    /// The `kuberay` section of a `kind: kuberay` cluster, as written; read
    /// into [`ClusterConfig::kuberay_config`] during validation.
    #[serde(default, rename = "kuberay")]
    pub kuberay_section: Option<serde_norway::Value>,
    /// The checked settings of a `kind: kuberay` cluster.
    #[serde(skip)]
    pub kuberay_config: Option<raybroker_kuberay::KubeRayClusterConfig>,
}

/// Why a config could not be loaded. Every variant names the source and says
/// what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `${VAR}` reference could not be expanded.
    #[error("{source_name}: line {line}: {message}")]
    Expand {
        /// The file (or other source) name.
        source_name: String,
        /// 1-based line of the reference.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The YAML is malformed or has an unknown or mistyped field.
    #[error("{source_name}: {message}")]
    Parse {
        /// The file (or other source) name.
        source_name: String,
        /// The parser's message, with the field path and position.
        message: String,
    },
    /// The file parsed but some values are not acceptable.
    #[error("{source_name}: invalid configuration:{}", list(problems))]
    Invalid {
        /// The file (or other source) name.
        source_name: String,
        /// Every problem found, each naming its field.
        problems: Vec<FieldError>,
    },
}

fn list(problems: &[FieldError]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

impl Config {
    /// Reads, expands, parses and validates the file at `path`. Relative
    /// `token_file` paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &path.display().to_string(), &base_dir, &|name| {
            std::env::var(name).ok()
        })
    }

    /// Parses config text from the process environment; `source_name` names
    /// it in errors and relative `token_file` paths resolve against the
    /// working directory.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        Config::parse(text, source_name, Path::new(""), &|name| {
            std::env::var(name).ok()
        })
    }

    /// Parses config text with `env` standing in for the environment (both for
    /// `${VAR}` expansion and `token_env`), so tests need not touch it.
    pub fn parse(
        text: &str,
        source_name: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let expanded = expand_env(text, env).map_err(|e| ConfigError::Expand {
            source_name: source_name.to_string(),
            line: e.line,
            message: e.message,
        })?;
        let file: file::ConfigFile =
            serde_norway::from_str(&expanded).map_err(|e| ConfigError::Parse {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?;
        file.validate(base_dir, env)
            .map_err(|problems| ConfigError::Invalid {
                source_name: source_name.to_string(),
                problems,
            })
    }

    /// The queue's settings; those the file does not set keep the queue's defaults.
    pub fn queue_config(&self) -> raybroker_queue::QueueConfig {
        raybroker_queue::QueueConfig {
            key_prefix: self.redis.key_prefix.clone(),
            lease_ttl: self.queue.lease_ttl,
            event_stream_max_len: self.queue.event_stream_max_len,
            submit_batch_max: self.queue.submit_batch_max,
            submit_batches_in_flight: self.queue.submit_batches_in_flight,
            ..raybroker_queue::QueueConfig::default()
        }
    }

    /// The placement policy: every tenant's weight, quotas and bursting
    /// (tenants not listed get the defaults), aging and reservations.
    pub fn placement_policy(&self) -> raybroker_placement::Policy {
        self.placement.clone()
    }

    /// What job validation needs: the GPU catalog with the extra models, and
    /// the configured cluster names.
    pub fn validation_context(&self) -> ValidationContext {
        ValidationContext {
            gpu_models: GpuCatalog::with_extra(self.gpu_models.iter().cloned()),
            clusters: self.clusters.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    /// Hides the password a URL may carry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!(
                    "{}://<redacted>@{}",
                    &self.url[..scheme],
                    &self.url[at + 1..]
                )
            }
            _ => self.url.clone(),
        };
        f.debug_struct("RedisConfig")
            .field("url", &url)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

#[cfg(test)]
mod tests;
