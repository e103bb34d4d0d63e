//! The `telemetry` section: where jobs send their OTLP data, the secret
//! behind per-job ingest tokens, and the organisation's collector.
//! See docs/observability.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The `telemetry` section as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetrySection {
    /// The broker's URL as jobs on the clusters reach it.
    public_url: Option<String>,
    /// A file holding the token secret (at least 32 characters).
    secret_file: Option<PathBuf>,
    /// An environment variable holding it.
    secret_env: Option<String>,
    /// The organisation's OTLP/HTTP collector, e.g. `http://otel:4318`.
    forward_to: Option<String>,
}

/// The checked `telemetry` section.
#[derive(Clone, Debug, Default)]
pub struct TelemetrySettings {
    /// What jobs get as `OTEL_EXPORTER_OTLP_ENDPOINT` (no trailing `/`).
    pub public_url: String,
    /// The secret behind per-job tokens; `None`: one kept in Redis, made by
    /// the first broker that needs it.
    pub secret: Option<String>,
    /// Where received OTLP data is forwarded (OTLP/HTTP base URL).
    pub forward_to: Option<String>,
}

/// Shortest secret accepted.
const MIN_SECRET_LEN: usize = 32;

impl TelemetrySection {
    /// The checked settings; problems go to `bad`.
    pub(super) fn read(
        &self,
        listen: SocketAddr,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        bad: &mut dyn FnMut(&str, String),
    ) -> TelemetrySettings {
        let public_url = match &self.public_url {
            Some(url) => check_url("telemetry.public_url", url, bad),
            None => default_public_url(listen),
        };
        let forward_to = self
            .forward_to
            .as_ref()
            .map(|url| check_url("telemetry.forward_to", url, bad));
        let secret = match (&self.secret_file, &self.secret_env) {
            (Some(_), Some(_)) => {
                bad(
                    "telemetry",
                    "give secret_file or secret_env, not both".into(),
                );
                None
            }
            (Some(path), None) => {
                let path = base_dir.join(path);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Some(text.trim().to_string()),
                    Err(e) => {
                        bad(
                            "telemetry.secret_file",
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            (None, Some(var)) => match env(var) {
                Some(value) => Some(value.trim().to_string()),
                None => {
                    bad(
                        "telemetry.secret_env",
                        format!("the environment variable {var} is not set"),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        if let Some(secret) = &secret {
            if secret.len() < MIN_SECRET_LEN {
                bad(
                    "telemetry",
                    format!("the secret must be at least {MIN_SECRET_LEN} characters; generate one with `openssl rand -hex 32`"),
                );
            }
        }
        TelemetrySettings {
            public_url,
            secret,
            forward_to,
        }
    }
}

fn check_url(field: &str, url: &str, bad: &mut dyn FnMut(&str, String)) -> String {
    let trimmed = url.trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) || trimmed.len() < 10 {
        bad(
            field,
            format!("'{url}' is not an http(s) URL; write e.g. http://broker.example.org:8080"),
        );
    }
    trimmed.to_string()
}

/// `http://<listen>`, with an unspecified address (0.0.0.0, ::) replaced by
/// the loopback one: right for clusters on the broker's host; set
/// `public_url` for anything else.
pub(super) fn default_public_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> (TelemetrySettings, Vec<String>) {
        let section: TelemetrySection = serde_norway::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let settings = section.read(
            "0.0.0.0:8080".parse().unwrap(),
            Path::new("."),
            env,
            &mut |f, m| problems.push(format!("{f}: {m}")),
        );
        (settings, problems)
    }

    #[test]
    fn defaults_come_from_the_listen_address() {
        let (settings, problems) = read("{}", &|_| None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.public_url, "http://127.0.0.1:8080");
        assert_eq!(settings.secret, None);
    }

    #[test]
    fn bad_values_name_their_field() {
        let (_, problems) = read(
            "{public_url: ftp://x, secret_env: NOPE, forward_to: nowhere}",
            &|_| None,
        );
        let text = problems.join("\n");
        assert!(text.contains("telemetry.public_url"), "{text}");
        assert!(text.contains("telemetry.secret_env"), "{text}");
        assert!(text.contains("telemetry.forward_to"), "{text}");
        let (_, problems) = read("{secret_env: S}", &|_| Some("short".into()));
        assert!(problems.join("").contains("at least 32"), "{problems:?}");
    }

    #[test]
    fn reads_a_secret_and_trims_urls() {
        let secret = "x".repeat(40);
        let (settings, problems) = read(
            "{public_url: 'https://broker.example.org/', secret_env: S}",
            &|_| Some(secret.clone()),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.public_url, "https://broker.example.org");
        assert_eq!(settings.secret.as_deref(), Some(secret.as_str()));
    }
}
