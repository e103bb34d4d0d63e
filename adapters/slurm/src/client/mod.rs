//! Wire calls to slurmrestd and nothing else: auth headers, the API version,
//! retries, decoding. What an answer means is decided in [`crate::convert`].
//!
//! Reads, cancel and version discovery are retried (bounded, with backoff)
//! after a transient failure. Submit is not: a replay could start a second
//! job, so the adapter looks the job up by name first instead.

mod auth;
mod wire;

use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::OnceCell;

pub use wire::{
    ExitCode, JobInfo, JobsAnswer, Meta, NodeInfo, NodesAnswer, PartitionInfo, PartitionsAnswer,
    SlurmError, SubmitAnswer, WireError,
};

use crate::config::{ConfigError, SlurmClusterConfig};
use crate::versions::ApiVersion;
use auth::TokenSource;

/// Longest pause between two tries of one call.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Pause before the first retry; doubled for every further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Slurm's error number for a job id it does not know.
pub const INVALID_JOB_ID: i64 = 2017;
/// What slurmrestd answers to an expired or invalid token (with HTTP 500).
const UNSPECIFIED_ERROR: i64 = -1;

/// A client for one slurmrestd.
pub struct SlurmClient {
    http: reqwest::Client,
    base: Url,
    tokens: TokenSource,
    /// Forced by config, or discovered on first use.
    version: OnceCell<ApiVersion>,
    max_retries: u32,
}

impl std::fmt::Debug for SlurmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmClient")
            .field("base", &self.base.as_str())
            .field("user", &self.tokens.user())
            .field("version", &self.version.get())
            .finish()
    }
}

impl SlurmClient {
    /// A client for a validated config (reads the key or token now).
    pub fn new(config: &SlurmClusterConfig) -> Result<SlurmClient, ConfigError> {
        config.validate()?;
        let base = Url::parse(config.base_url())
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .ok_or_else(|| ConfigError::BadAddress(config.address.clone()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("raybroker-slurm/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| ConfigError::Invalid {
                field: "address",
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        let tokens =
            TokenSource::new(&config.user, &config.auth).map_err(ConfigError::Credentials)?;
        let version = OnceCell::new();
        if let Some(forced) = config.api_version.as_deref().and_then(ApiVersion::parse) {
            let _ = version.set(forced);
        }
        Ok(SlurmClient {
            http,
            base,
            tokens,
            version,
            max_retries: config.max_retries,
        })
    }

    /// The API version in use: the configured one, or the newest the server
    /// advertises that the adapter knows.
    pub async fn version(&self) -> Result<ApiVersion, WireError> {
        self.version
            .get_or_try_init(|| async {
                let doc: Value = self.call(Method::GET, "/openapi/v3", None, true).await?;
                let paths = doc
                    .get("paths")
                    .and_then(Value::as_object)
                    .map(|paths| paths.keys().map(String::as_str).collect::<Vec<_>>())
                    .unwrap_or_default();
                let version =
                    ApiVersion::newest_served(paths).ok_or_else(|| WireError::Decode {
                        call: "GET /openapi/v3".to_string(),
                        message: format!(
                            "the server serves none of the API versions {}",
                            ApiVersion::known_names().join(", ")
                        ),
                    })?;
                tracing::info!(version = version.as_str(), "slurmrestd api version chosen");
                Ok(version)
            })
            .await
            .copied()
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<NodesAnswer, WireError> {
        let path = self.version().await?.path("nodes");
        self.call(Method::GET, &path, None, true).await
    }

    /// `GET /partitions`.
    pub async fn partitions(&self) -> Result<PartitionsAnswer, WireError> {
        let path = self.version().await?.path("partitions");
        self.call(Method::GET, &path, None, true).await
    }

    /// `GET /jobs`: every job slurmctld still remembers.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>, WireError> {
        let path = self.version().await?.path("jobs");
        let answer: JobsAnswer = self.call(Method::GET, &path, None, true).await?;
        Ok(answer.jobs)
    }

    /// `GET /job/{id}`; `None` when Slurm does not know the id (error 2017).
    pub async fn job(&self, job_id: u64) -> Result<Option<JobInfo>, WireError> {
        let path = self.version().await?.path(&format!("job/{job_id}"));
        match self
            .call::<JobsAnswer>(Method::GET, &path, None, true)
            .await
        {
            Ok(answer) => Ok(answer.jobs.into_iter().next()),
            Err(e) if e.error_numbers().contains(&INVALID_JOB_ID) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /job/submit` with a body from [`ApiVersion::submit_body`]; not
    /// retried (see the module docs). Answers the new job's id.
    pub async fn submit(&self, body: &Value) -> Result<u64, WireError> {
        let path = self.version().await?.path("job/submit");
        let answer: SubmitAnswer = self.call(Method::POST, &path, Some(body), false).await?;
        answer.job_id.ok_or_else(|| WireError::Decode {
            call: format!("POST {path}"),
            message: "the answer has no job_id".to_string(),
        })
    }

    /// `DELETE /job/{id}` (SIGKILL after Slurm's KillWait, SIGTERM first);
    /// an unknown id is fine.
    pub async fn cancel(&self, job_id: u64) -> Result<(), WireError> {
        let path = self.version().await?.path(&format!("job/{job_id}"));
        match self.call::<Value>(Method::DELETE, &path, None, true).await {
            Ok(_) => Ok(()),
            Err(e) if e.error_numbers().contains(&INVALID_JOB_ID) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: bool,
    ) -> Result<T, WireError> {
        let retries = if retry { self.max_retries } else { 0 };
        let mut backoff = FIRST_BACKOFF;
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            match self.call_once(&method, path, body).await {
                Ok(answer) => return Ok(answer),
                // An expired minted token: mint a fresh one and try again,
                // once, whatever `retry` says (the call never reached Slurm's
                // logic, so a submit is not run twice).
                Err(e) if !renewed && self.tokens.mints() && looks_like_bad_token(&e) => {
                    tracing::info!(error = %e, "replacing the slurm token after an auth-like failure");
                    self.tokens.discard().await;
                    renewed = true;
                }
                Err(e) if attempt < retries && is_transient(&e) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying slurmrestd call");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, WireError> {
        let call = format!("{method} {path}");
        let url = self.base.join(path).map_err(|e| WireError::Decode {
            call: call.clone(),
            message: format!("bad path: {e}"),
        })?;
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("X-SLURM-USER-NAME", self.tokens.user())
            .header("X-SLURM-USER-TOKEN", token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| WireError::Transport {
            call: call.clone(),
            message: e.to_string(),
            timeout: e.is_timeout(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        if !status.is_success() {
            let errors = serde_json::from_str::<wire::Errors>(&text)
                .map(|e| e.errors)
                .unwrap_or_default();
            let body = if errors.is_empty() {
                text.chars().take(300).collect()
            } else {
                String::new()
            };
            return Err(WireError::Status {
                call,
                status: status.as_u16(),
                errors,
                body,
            });
        }
        serde_json::from_str(&text).map_err(|e| WireError::Decode {
            call,
            message: e.to_string(),
        })
    }
}

/// An HTTP 500 whose only error is "unspecified" (-1), or a 401: what an
/// expired, invalid or missing token gets.
fn looks_like_bad_token(error: &WireError) -> bool {
    match error {
        WireError::Status {
            status: 401 | 403, ..
        } => true,
        WireError::Status {
            status: 500,
            errors,
            ..
        } => !errors.is_empty() && errors.iter().all(|e| e.error_number == UNSPECIFIED_ERROR),
        _ => false,
    }
}

/// Worth trying again: no answer, a timeout, a gateway error, or Slurm
/// saying it is busy (error numbers of the "try again" kind).
pub fn is_transient(error: &WireError) -> bool {
    match error {
        WireError::Transport { .. } => true,
        WireError::Status { status, errors, .. } => {
            matches!(status, 502..=504)
                || errors.iter().any(|e| {
                    // ESLURM_ERROR_ON_DESC_TO_RECORD_COPY (retry), EAGAIN,
                    // slurmctld not responding / in standby.
                    matches!(e.error_number, 11 | 1007 | 1008 | 2011)
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, numbers: &[i64]) -> WireError {
        WireError::Status {
            call: "GET /x".into(),
            status: code,
            errors: numbers
                .iter()
                .map(|&n| SlurmError {
                    error_number: n,
                    ..SlurmError::default()
                })
                .collect(),
            body: String::new(),
        }
    }

    #[test]
    fn expired_tokens_are_recognised() {
        assert!(looks_like_bad_token(&status(500, &[-1])));
        assert!(looks_like_bad_token(&status(401, &[])));
        assert!(!looks_like_bad_token(&status(500, &[2017])));
        assert!(!looks_like_bad_token(&status(500, &[])));
    }

    #[test]
    fn transient_failures() {
        assert!(is_transient(&WireError::Transport {
            call: "x".into(),
            message: "refused".into(),
            timeout: false
        }));
        assert!(is_transient(&status(503, &[])));
        assert!(is_transient(&status(500, &[1007])));
        assert!(!is_transient(&status(500, &[2014])));
    }
}
