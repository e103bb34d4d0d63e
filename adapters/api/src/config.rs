//! What every adapter's config section shares: durations written as text,
//! the limits of one request to the cluster, and the shape of an HTTP(S)
//! address. Each adapter keeps its own error type and names its own fields.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest `request_timeout` an adapter accepts.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// The most `max_retries` an adapter accepts.
pub const MAX_RETRIES: u32 = 10;

/// Reads a duration written as text (`10s`, `2m`), for
/// `#[serde(deserialize_with = "raybroker_adapter::config::duration_text")]`;
/// a bad one is an error that says how to write it.
pub fn duration_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("'{text}' is not a duration ({e}); write e.g. 10s"))
    })
}

/// The default limit of one request (10 s).
pub fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The default number of retries of a failed idempotent request (3).
pub fn default_max_retries() -> u32 {
    3
}

/// Whether `timeout` is a usable `request_timeout` (above zero, at most
/// [`MAX_REQUEST_TIMEOUT`]).
pub fn request_timeout_ok(timeout: Duration) -> bool {
    !timeout.is_zero() && timeout <= MAX_REQUEST_TIMEOUT
}

/// Whether `address` is `http://host...` or `https://host...` (surrounding
/// white space allowed).
pub fn is_http_address(address: &str) -> bool {
    let address = address.trim();
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"));
    matches!(rest, Some(host) if !host.is_empty() && !host.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_scheme_and_a_host() {
        for good in [
            "http://head:8265",
            " https://slurm.example/ ",
            "http://10.0.0.1",
        ] {
            assert!(is_http_address(good), "{good}");
        }
        for bad in ["head:8265", "http://", "https:///path", "ftp://host", ""] {
            assert!(!is_http_address(bad), "{bad}");
        }
    }

    #[test]
    fn durations_are_text_and_limits_hold() {
        #[derive(Deserialize)]
        struct Section {
            #[serde(deserialize_with = "duration_text")]
            timeout: Duration,
        }
        let ok: Section = serde_json::from_str(r#"{"timeout": "1m 30s"}"#).unwrap();
        assert_eq!(ok.timeout, Duration::from_secs(90));
        let err = serde_json::from_str::<Section>(r#"{"timeout": "soon"}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("write e.g. 10s"), "{err}");
        assert!(request_timeout_ok(default_request_timeout()));
        assert!(!request_timeout_ok(Duration::ZERO));
        assert!(!request_timeout_ok(
            MAX_REQUEST_TIMEOUT + Duration::from_millis(1)
        ));
    }
}
