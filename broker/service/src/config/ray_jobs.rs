//! The `ray_jobs_api` section: limits of the Ray Jobs API compatible endpoint.

use std::time::Duration;

use raybroker_core::Bytes;
use serde::Deserialize;

use super::RayJobsApiSettings;

/// The `ray_jobs_api` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RayJobsApiSection {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_max_package_bytes")]
    max_package_bytes: Bytes,
    #[serde(default = "default_package_ttl")]
    package_ttl: String,
}

impl Default for RayJobsApiSection {
    fn default() -> Self {
        RayJobsApiSection {
            enabled: true,
            max_package_bytes: default_max_package_bytes(),
            package_ttl: default_package_ttl(),
        }
    }
}

impl RayJobsApiSection {
    /// The checked settings; problems go to `bad`.
    pub(super) fn read(&self, bad: &mut dyn FnMut(&str, String)) -> RayJobsApiSettings {
        let size = self.max_package_bytes;
        if size < Bytes(1024) || size > MAX_PACKAGE_BYTES {
            bad(
                "ray_jobs_api.max_package_bytes",
                format!("{size} is out of range; use 1KiB to {MAX_PACKAGE_BYTES}"),
            );
        }
        let text = &self.package_ttl;
        let package_ttl = match humantime::parse_duration(text) {
            Ok(ttl) if ttl >= Duration::from_secs(60) => ttl,
            _ => {
                bad(
                    "ray_jobs_api.package_ttl",
                    format!("'{text}' is not a duration of at least 1m; write e.g. 72h"),
                );
                Duration::from_secs(60)
            }
        };
        RayJobsApiSettings {
            enabled: self.enabled,
            max_package_bytes: size,
            package_ttl,
        }
    }
}

/// Largest package the broker accepts: Redis refuses values over 512 MiB.
const MAX_PACKAGE_BYTES: Bytes = Bytes(512 << 20);

fn default_true() -> bool {
    true
}

fn default_max_package_bytes() -> Bytes {
    Bytes(100 << 20)
}

fn default_package_ttl() -> String {
    "72h".into()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError};
    use crate::auth::hash_token;

    fn parse(section: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "version: 1\ntenants: [{{name: a, token_sha256: \"{}\"}}]\n{section}",
            hash_token("a-token-0123456789")
        );
        Config::parse(&text, "test", Path::new(""), &|_| None)
    }

    #[test]
    fn defaults_serve_the_endpoint_with_sane_limits() {
        let settings = parse("").unwrap().ray_jobs_api;
        assert!(settings.enabled);
        assert_eq!(settings.max_package_bytes.0, 100 << 20);
        assert_eq!(settings.package_ttl.as_secs(), 72 * 3600);
        let off = parse("ray_jobs_api: {enabled: false, package_ttl: 10m}").unwrap();
        assert!(!off.ray_jobs_api.enabled);
        assert_eq!(off.ray_jobs_api.package_ttl.as_secs(), 600);
    }

    #[test]
    fn limits_out_of_range_are_named() {
        let err = parse("ray_jobs_api: {max_package_bytes: 1GiB, package_ttl: 5s}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ray_jobs_api.max_package_bytes"), "{err}");
        assert!(err.contains("ray_jobs_api.package_ttl"), "{err}");
        let err = parse("ray_jobs_api: {packages: 1}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
