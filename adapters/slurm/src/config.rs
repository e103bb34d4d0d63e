//! How the broker reaches one Slurm cluster and runs Ray inside it.
//!
//! One entry of the broker's cluster list, read strictly (unknown fields are
//! errors) and checked by [`SlurmClusterConfig::validate`] before any call
//! goes out. Secrets are never inline: the JWT comes from a file or an
//! environment variable, or is minted from the cluster's JWT key file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use raybroker_adapter::config::{
    default_max_retries, default_request_timeout, duration_text, is_http_address,
    request_timeout_ok, MAX_RETRIES,
};
use raybroker_core::GpuModel;
use serde::{Deserialize, Deserializer};

/// One Slurm cluster, reached through slurmrestd.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmClusterConfig {
    /// slurmrestd's URL, e.g. `http://127.0.0.1:6820`.
    pub address: String,
    /// The Slurm user jobs are submitted as (`X-SLURM-USER-NAME`).
    pub user: String,
    /// How the adapter authenticates (one source).
    pub auth: SlurmAuth,
    /// Use this API version (e.g. `v0.0.38`) instead of the newest one both
    /// the server and the adapter know.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The partition jobs go to (the cluster's default when unset); the
    /// capacity snapshot counts only this partition's nodes.
    #[serde(default)]
    pub partition: Option<String>,
    /// The account jobs are charged to.
    #[serde(default)]
    pub account: Option<String>,
    /// The QOS jobs run under.
    #[serde(default)]
    pub qos: Option<String>,
    /// GPU model (as the broker names it, e.g. `A100`) -> the cluster's
    /// `gres` type (e.g. `a100`). Models not listed map to their lower-case
    /// name, which is what the nodes' `gres` must say.
    #[serde(default)]
    pub gpu_types: BTreeMap<String, String>,
    /// The directory holding the `ray` executable on the compute nodes (a
    /// venv's `bin`); it goes first on the job's PATH, so the entrypoint's
    /// `python` is that venv's too.
    pub ray_bin_dir: PathBuf,
    /// A directory both this broker and the compute nodes see at the same
    /// path (shared filesystem): one directory per job with its output log
    /// and exit status. See docs/slurm.md for brokers without one.
    pub jobs_dir: PathBuf,
    /// Where each job's short Ray temp dir is made on the nodes (AF_UNIX
    /// socket paths must stay under 108 bytes).
    #[serde(default = "default_ray_tmp_root")]
    pub ray_tmp_root: PathBuf,
    /// First port of the range jobs' Ray port blocks come from.
    #[serde(default = "default_port_range_start")]
    pub port_range_start: u16,
    /// Last port of that range (inclusive).
    #[serde(default = "default_port_range_end")]
    pub port_range_end: u16,
    /// How long a job waits for its Ray head before it fails, e.g. `120s`.
    #[serde(
        default = "default_ray_start_timeout",
        deserialize_with = "duration_text"
    )]
    pub ray_start_timeout: Duration,
    /// Object store size of each job's Ray nodes, bytes.
    #[serde(default = "default_object_store_bytes")]
    pub object_store_bytes: u64,
    /// Limit of one HTTP request, e.g. `10s`.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "duration_text"
    )]
    pub request_timeout: Duration,
    /// Retries of an idempotent call after a transient failure.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The broker's origin tag, written into every job's comment so
    /// [`list_owned`](raybroker_adapter::ClusterAdapter::list_owned) finds
    /// exactly this broker's jobs.
    pub origin: String,
}

/// Where the JWT comes from. Written as a map with exactly one source:
/// `{token_file: PATH}`, `{token_env: VAR}` or `{jwt_key_file: PATH,
/// lifespan: 1h}` (plain maps, so YAML and JSON read alike).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AuthFields")]
pub enum SlurmAuth {
    /// A token in a file, read again before every call (rotation works).
    TokenFile(PathBuf),
    /// A token in an environment variable.
    TokenEnv(String),
    /// Tokens minted (HS256) from the cluster's `jwt_key` file.
    JwtKey {
        /// The key file slurmctld's `AuthAltParameters=jwt_key=` names.
        key_file: PathBuf,
        /// How long each minted token lives, e.g. `1h`.
        lifespan: Duration,
    },
}

/// `auth` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFields {
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    jwt_key_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "optional_duration_text")]
    lifespan: Option<Duration>,
}

impl TryFrom<AuthFields> for SlurmAuth {
    type Error = String;

    fn try_from(fields: AuthFields) -> Result<SlurmAuth, String> {
        let auth = match (fields.token_file, fields.token_env, fields.jwt_key_file) {
            (Some(path), None, None) => SlurmAuth::TokenFile(path),
            (None, Some(var), None) => SlurmAuth::TokenEnv(var),
            (None, None, Some(key_file)) => {
                return Ok(SlurmAuth::JwtKey {
                    key_file,
                    lifespan: fields.lifespan.unwrap_or_else(default_token_lifespan),
                })
            }
            _ => {
                return Err(
                    "auth needs exactly one of token_file, token_env or jwt_key_file".into(),
                )
            }
        };
        if fields.lifespan.is_some() {
            return Err("auth.lifespan goes only with jwt_key_file (minted tokens)".into());
        }
        Ok(auth)
    }
}

fn optional_duration_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration_text(deserializer).map(Some)
}

/// Why a Slurm cluster entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `address` is not an http(s) URL.
    #[error("address '{0}' is not an http:// or https:// URL, e.g. http://127.0.0.1:6820")]
    BadAddress(String),
    /// `origin` is unusable as a tag.
    #[error("origin '{0}' must be 1-64 characters of letters, digits, '-', '_' or '.'")]
    BadOrigin(String),
    /// A field has a value the adapter cannot use.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The token or key could not be read.
    #[error("cannot read the Slurm credentials: {0}")]
    Credentials(String),
}

fn default_ray_tmp_root() -> PathBuf {
    PathBuf::from("/tmp")
}
fn default_port_range_start() -> u16 {
    21_600
}
fn default_port_range_end() -> u16 {
    24_999
}
fn default_ray_start_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_object_store_bytes() -> u64 {
    200_000_000
}
fn default_token_lifespan() -> Duration {
    Duration::from_secs(3600)
}

/// Ports one job's Ray cluster uses: 12 fixed services and its workers.
pub const PORT_BLOCK_SIZE: u16 = 100;

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl SlurmClusterConfig {
    /// A config with defaults for everything optional.
    pub fn new(
        address: impl Into<String>,
        user: impl Into<String>,
        auth: SlurmAuth,
        ray_bin_dir: impl Into<PathBuf>,
        jobs_dir: impl Into<PathBuf>,
        origin: impl Into<String>,
    ) -> SlurmClusterConfig {
        SlurmClusterConfig {
            address: address.into(),
            user: user.into(),
            auth,
            api_version: None,
            partition: None,
            account: None,
            qos: None,
            gpu_types: BTreeMap::new(),
            ray_bin_dir: ray_bin_dir.into(),
            jobs_dir: jobs_dir.into(),
            ray_tmp_root: default_ray_tmp_root(),
            port_range_start: default_port_range_start(),
            port_range_end: default_port_range_end(),
            ray_start_timeout: default_ray_start_timeout(),
            object_store_bytes: default_object_store_bytes(),
            request_timeout: default_request_timeout(),
            max_retries: default_max_retries(),
            origin: origin.into(),
        }
    }

    /// Checks what parsing cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_http_address(&self.address) {
            return Err(ConfigError::BadAddress(self.address.clone()));
        }
        if self.origin.is_empty() || self.origin.len() > 64 || !self.origin.chars().all(is_tag_char)
        {
            return Err(ConfigError::BadOrigin(self.origin.clone()));
        }
        if self.user.is_empty() || self.user.chars().any(|c| c.is_whitespace() || c == ':') {
            return Err(invalid("user", "must be a Slurm user name"));
        }
        for (field, path) in [
            ("ray_bin_dir", &self.ray_bin_dir),
            ("jobs_dir", &self.jobs_dir),
            ("ray_tmp_root", &self.ray_tmp_root),
        ] {
            if !path.is_absolute() || path.to_string_lossy().contains(['\'', '\n']) {
                return Err(invalid(field, "must be an absolute path without quotes"));
            }
        }
        // session_<date>_<pid>/sockets/plasma_store (~60 bytes) goes below
        // <root>/rb-<job id> and must fit in 107 bytes.
        if self.ray_tmp_root.as_os_str().len() > 32 {
            return Err(invalid(
                "ray_tmp_root",
                "must be at most 32 bytes long: Ray's AF_UNIX socket paths below it are limited to 107",
            ));
        }
        let blocks = self.port_blocks();
        if self.port_range_start < 1024 || blocks == 0 {
            return Err(invalid(
                "port_range_start",
                format!(
                    "port_range_start..=port_range_end must lie above 1023 and hold at least \
                     one block of {PORT_BLOCK_SIZE} ports"
                ),
            ));
        }
        for (model, gres) in &self.gpu_types {
            GpuModel::parse(model).map_err(|e| invalid("gpu_types", e.to_string()))?;
            if gres.is_empty() || !gres.chars().all(is_tag_char) {
                return Err(invalid(
                    "gpu_types",
                    format!(
                        "gres type '{gres}' of {model} must be letters, digits, '-', '_' or '.'"
                    ),
                ));
            }
        }
        if let Some(version) = &self.api_version {
            if crate::versions::ApiVersion::parse(version).is_none() {
                return Err(invalid(
                    "api_version",
                    format!(
                        "'{version}' is not one of {}",
                        crate::versions::ApiVersion::known_names().join(", ")
                    ),
                ));
            }
        }
        if !request_timeout_ok(self.request_timeout) {
            return Err(invalid("request_timeout", "must be between 1ms and 10m"));
        }
        if self.ray_start_timeout < Duration::from_secs(5) {
            return Err(invalid("ray_start_timeout", "must be at least 5s"));
        }
        if self.max_retries > MAX_RETRIES {
            return Err(invalid("max_retries", "must be at most 10"));
        }
        if let SlurmAuth::JwtKey { lifespan, .. } = &self.auth {
            if *lifespan < Duration::from_secs(3) || *lifespan > Duration::from_secs(86_400 * 7) {
                return Err(invalid("auth.lifespan", "must be between 3s and 7 days"));
            }
        }
        Ok(())
    }

    /// How many port blocks the configured range holds.
    pub fn port_blocks(&self) -> u16 {
        let span = u32::from(self.port_range_end) + 1;
        let start = u32::from(self.port_range_start);
        if span <= start {
            return 0;
        }
        u16::try_from((span - start) / u32::from(PORT_BLOCK_SIZE)).unwrap_or(u16::MAX)
    }

    /// The URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.address.trim().trim_end_matches('/')
    }

    /// The `gres` type of a GPU model on this cluster.
    pub fn gres_type(&self, model: &GpuModel) -> String {
        self.gpu_types
            .iter()
            .find(|(name, _)| GpuModel::parse(name).ok().as_ref() == Some(model))
            .map(|(_, gres)| gres.clone())
            .unwrap_or_else(|| model.as_str().to_ascii_lowercase())
    }

    /// The GPU model a node's `gres` type stands for (the reverse of
    /// [`Self::gres_type`]); `None` when the type is not a valid model name.
    pub fn model_of_gres(&self, gres_type: &str) -> Option<GpuModel> {
        let configured = self
            .gpu_types
            .iter()
            .find(|(_, gres)| gres.as_str() == gres_type)
            .map(|(model, _)| model.as_str());
        GpuModel::parse(configured.unwrap_or(gres_type)).ok()
    }
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// A config for unit tests: token auth, Ray in `ray_bin_dir`, jobs in
/// `/shared/jobs`, origin `origin`.
#[cfg(test)]
pub(crate) fn test_config(ray_bin_dir: &str, origin: &str) -> SlurmClusterConfig {
    SlurmClusterConfig::new(
        "http://x",
        "root",
        SlurmAuth::TokenEnv("T".into()),
        ray_bin_dir,
        "/shared/jobs",
        origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<SlurmClusterConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    const MINIMAL: &str = r#"{"address": "http://127.0.0.1:6820/", "user": "ray",
        "auth": {"token_env": "SLURM_JWT"}, "ray_bin_dir": "/opt/ray/bin",
        "jobs_dir": "/shared/raybroker", "origin": "prod"}"#;

    #[test]
    fn defaults_apply() {
        let config = parse(MINIMAL).unwrap();
        config.validate().unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:6820");
        assert_eq!(config.port_blocks(), 34);
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.auth, SlurmAuth::TokenEnv("SLURM_JWT".into()));
    }

    #[test]
    fn auth_sources_parse_strictly() {
        let config = parse(&MINIMAL.replace(
            r#"{"token_env": "SLURM_JWT"}"#,
            r#"{"jwt_key_file": "/etc/slurm/jwt.key", "lifespan": "10m"}"#,
        ))
        .unwrap();
        assert_eq!(
            config.auth,
            SlurmAuth::JwtKey {
                key_file: "/etc/slurm/jwt.key".into(),
                lifespan: Duration::from_secs(600)
            }
        );
        let err = parse(&MINIMAL.replace(
            r#"{"token_env": "SLURM_JWT"}"#,
            r#"{"token_env": "SLURM_JWT", "token_file": "/t"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("exactly one of"), "{err}");
        let err = parse(&MINIMAL.replace(
            r#"{"token_env": "SLURM_JWT"}"#,
            r#"{"token_env": "SLURM_JWT", "lifespan": "1h"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("only with jwt_key_file"), "{err}");
        let err = parse(&MINIMAL.replace("\"origin\"", "\"token\": \"x\", \"origin\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `token`"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut config = parse(MINIMAL).unwrap();
        config.ray_tmp_root = "/a/very/long/temporary/directory/root/for/ray".into();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("ray_tmp_root"));
        config.ray_tmp_root = "/tmp".into();
        config.port_range_end = config.port_range_start + 10;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("port_range_start"));
        config.port_range_end = 24_999;
        config.api_version = Some("v9".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("v0.0.38"), "{err}");
        config.api_version = None;
        config.origin = "has space".into();
        assert!(matches!(config.validate(), Err(ConfigError::BadOrigin(_))));
    }

    #[test]
    fn gres_types_map_both_ways() {
        let mut config = parse(MINIMAL).unwrap();
        config.gpu_types.insert("A100".into(), "nvidia_a100".into());
        let a100 = GpuModel::parse("A100").unwrap();
        assert_eq!(config.gres_type(&a100), "nvidia_a100");
        assert_eq!(config.model_of_gres("nvidia_a100"), Some(a100));
        let h100 = GpuModel::parse("H100").unwrap();
        assert_eq!(config.gres_type(&h100), "h100");
        assert_eq!(config.model_of_gres("h100"), Some(h100));
    }
}
