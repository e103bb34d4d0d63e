//! How the broker reaches one plain Ray cluster.
//!
//! One entry of the broker's cluster list, read strictly (unknown fields are
//! errors) and checked by [`RayClusterConfig::validate`] before any call goes
//! out. Secrets are never inline: the token comes from a file or an
//! environment variable.

use std::path::PathBuf;
use std::time::Duration;

use raybroker_adapter::config::{
    default_max_retries, default_request_timeout, duration_text, is_http_address,
    request_timeout_ok, MAX_RETRIES,
};
use serde::Deserialize;

/// How a job's GPU model is expressed as a Ray resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuModelResource {
    /// Ray's own convention: every node of model `M` has the marker resource
    /// `accelerator_type:M` (amount 1), and a job asks for a sliver of it
    /// (0.001, as Ray's `accelerator_type=` option does), so any number of
    /// jobs can share the node while `GPU` counts the devices.
    #[default]
    AcceleratorType,
    /// A countable custom resource `gpu_<model in lower case>` that nodes
    /// declare once per GPU (e.g. `gpu_a100: 4`); a job asks for as many as it
    /// asks GPUs.
    Custom,
}

/// One plain Ray cluster, reached through its dashboard's Jobs REST API.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RayClusterConfig {
    /// The dashboard URL, e.g. `http://127.0.0.1:8265`.
    pub address: String,
    /// How a GPU model is requested on this cluster.
    #[serde(default)]
    pub gpu_model_resource: GpuModelResource,
    /// A file holding the Ray auth token (`RAY_AUTH_MODE=token`), sent as
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the Ray auth token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A PEM file of the CA that signed the dashboard's certificate, for `https`.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Limit of one HTTP request, e.g. `10s` (the first submit to a fresh
    /// Ray 2.31 head can take about 5 s).
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "duration_text"
    )]
    pub request_timeout: Duration,
    /// How many times a failed idempotent call is retried after a transient
    /// failure (unreachable, 5xx, timeout).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The broker's origin tag, written into every job's metadata
    /// (`raybroker.origin`) so [`list_owned`](raybroker_adapter::ClusterAdapter::list_owned)
    /// finds exactly this broker's jobs.
    pub origin: String,
}

/// Why a Ray cluster entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `address` is not an http(s) URL.
    #[error("address '{0}' is not an http:// or https:// URL, e.g. http://127.0.0.1:8265")]
    BadAddress(String),
    /// `origin` is unusable as a tag.
    #[error("origin '{0}' must be 1-128 characters without whitespace")]
    BadOrigin(String),
    /// Both token sources are set.
    #[error("set at most one of token_file and token_env")]
    TwoTokenSources,
    /// The token could not be read.
    #[error("cannot read the Ray token: {0}")]
    Token(String),
    /// The CA file could not be used.
    #[error("cannot use tls_ca_file {path}: {reason}")]
    TlsCa {
        /// The configured file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A limit is out of range.
    #[error("{0}")]
    OutOfRange(String),
}

impl RayClusterConfig {
    /// A config with defaults for everything but the address and origin.
    pub fn new(address: impl Into<String>, origin: impl Into<String>) -> RayClusterConfig {
        RayClusterConfig {
            address: address.into(),
            gpu_model_resource: GpuModelResource::default(),
            token_file: None,
            token_env: None,
            tls_ca_file: None,
            request_timeout: default_request_timeout(),
            max_retries: default_max_retries(),
            origin: origin.into(),
        }
    }

    /// Checks what parsing cannot: URL shape, origin, limits, token sources.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_http_address(&self.address) {
            return Err(ConfigError::BadAddress(self.address.clone()));
        }
        if self.origin.is_empty()
            || self.origin.len() > 128
            || self.origin.chars().any(char::is_whitespace)
        {
            return Err(ConfigError::BadOrigin(self.origin.clone()));
        }
        if self.token_file.is_some() && self.token_env.is_some() {
            return Err(ConfigError::TwoTokenSources);
        }
        if !request_timeout_ok(self.request_timeout) {
            return Err(ConfigError::OutOfRange(
                "request_timeout must be between 1ms and 10m".to_string(),
            ));
        }
        if self.max_retries > MAX_RETRIES {
            return Err(ConfigError::OutOfRange(
                "max_retries must be at most 10".to_string(),
            ));
        }
        Ok(())
    }

    /// The dashboard URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.address.trim().trim_end_matches('/')
    }

    /// Reads the token from its file or variable, if one is configured.
    pub fn read_token(&self) -> Result<Option<String>, ConfigError> {
        let raw = match (&self.token_file, &self.token_env) {
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Token(format!("{}: {e}", path.display())))?,
            (None, Some(var)) => std::env::var(var)
                .map_err(|e| ConfigError::Token(format!("environment variable {var}: {e}")))?,
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(ConfigError::TwoTokenSources),
        };
        let token = raw.trim();
        if token.is_empty() {
            return Err(ConfigError::Token("the token is empty".to_string()));
        }
        Ok(Some(token.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<RayClusterConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn defaults_apply() {
        let config = parse(r#"{"address": "http://127.0.0.1:8265/", "origin": "prod"}"#).unwrap();
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.gpu_model_resource, GpuModelResource::AcceleratorType);
        assert_eq!(config.base_url(), "http://127.0.0.1:8265");
        config.validate().unwrap();
    }

    #[test]
    fn strict_fields_and_durations() {
        let err = parse(r#"{"address": "http://x", "origin": "o", "token": "secret"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `token`"), "{err}");
        let config = parse(
            r#"{"address": "http://x", "origin": "o", "request_timeout": "1m30s",
                "gpu_model_resource": "custom"}"#,
        )
        .unwrap();
        assert_eq!(config.request_timeout, Duration::from_secs(90));
        assert_eq!(config.gpu_model_resource, GpuModelResource::Custom);
        let err = parse(r#"{"address": "http://x", "origin": "o", "request_timeout": "soon"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a duration"), "{err}");
    }

    #[test]
    fn validation_explains() {
        let mut config = RayClusterConfig::new("127.0.0.1:8265", "prod");
        assert!(matches!(config.validate(), Err(ConfigError::BadAddress(_))));
        config.address = "https://ray.example:443".into();
        config.validate().unwrap();
        config.origin = "has space".into();
        assert!(matches!(config.validate(), Err(ConfigError::BadOrigin(_))));
        config.origin = "prod".into();
        config.token_env = Some("RAY_TOKEN".into());
        config.token_file = Some("/tmp/token".into());
        assert_eq!(config.validate(), Err(ConfigError::TwoTokenSources));
    }

    #[test]
    fn tokens_come_from_files_trimmed() {
        let path = std::env::temp_dir().join(format!("raybroker-ray-token-{}", std::process::id()));
        std::fs::write(&path, "secret\n").unwrap();
        let mut config = RayClusterConfig::new("http://x", "o");
        config.token_file = Some(path.clone());
        assert_eq!(config.read_token().unwrap().as_deref(), Some("secret"));
        std::fs::write(&path, "  \n").unwrap();
        assert!(config.read_token().is_err());
        std::fs::remove_file(path).unwrap();
    }
}
