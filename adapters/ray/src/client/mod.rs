//! Wire calls to a Ray dashboard's REST API, and nothing else: no state, no
//! interpretation beyond decoding JSON. What an answer means is decided in
//! [`crate::convert`].
//!
//! Every call here is idempotent, so every call is retried (bounded, with
//! backoff) after a transient failure: reads trivially; submit because the
//! submission id makes a replay answer "already exists" instead of running the
//! job twice; stop and delete because doing them twice ends in the same place.

mod wire;

use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use wire::{ClusterStatusData, Envelope, LogsAnswer, NodesData, StopAnswer};
pub use wire::{JobDetails, LoadMetrics, NodeInfo, SubmitBody, VersionInfo, WireError};

use crate::config::{ConfigError, RayClusterConfig};
use crate::convert::{classify_failure, FailureMeaning};

/// Longest pause between two tries of one call.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Pause before the first retry; doubled for every further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Ray's state API answers 100 nodes unless asked for more; this is its cap.
const NODE_LIST_LIMIT: u32 = 10_000;
/// Sent on every call. Ray 2.31's dashboard answers 500 to any request without
/// a User-Agent (its anti-browser middleware reads the header unguarded), and
/// refuses POST from one starting with `Mozilla`.
const USER_AGENT: &str = concat!("raybroker-ray/", env!("CARGO_PKG_VERSION"));

/// A client for one dashboard: timeouts, auth and retries.
#[derive(Clone)]
pub struct RayClient {
    /// Pooled connections, with the configured timeout and CA.
    http: reqwest::Client,
    /// The dashboard URL every path is appended to.
    base: Url,
    /// The bearer token, read once when the client is built.
    token: Option<String>,
    /// Retries of a transient failure per call.
    max_retries: u32,
}

impl std::fmt::Debug for RayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RayClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl RayClient {
    /// Builds a client from a validated config (reads the token and CA file;
    /// a rotated token takes effect when the client is built again).
    pub fn new(config: &RayClusterConfig) -> Result<RayClient, ConfigError> {
        config.validate()?;
        let base = Url::parse(config.base_url())
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .ok_or_else(|| ConfigError::BadAddress(config.address.clone()))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout);
        if let Some(path) = &config.tls_ca_file {
            let tls_error = |reason: String| ConfigError::TlsCa {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| tls_error(e.to_string()))?;
            let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| tls_error(e.to_string()))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::OutOfRange(format!("cannot build the HTTP client: {e}")))?;
        Ok(RayClient {
            http,
            base,
            token: config.read_token()?,
            max_retries: config.max_retries,
        })
    }

    /// `GET /api/version`.
    pub async fn version(&self) -> Result<VersionInfo, WireError> {
        self.call(Method::GET, &["api", "version"], &[], None).await
    }

    /// `POST /api/jobs/`: answers Ray's `{job_id, submission_id}`, ignored here.
    pub async fn submit(&self, body: &SubmitBody) -> Result<(), WireError> {
        let body = serde_json::to_value(body).map_err(|e| WireError::Decode {
            call: "POST /api/jobs/".to_string(),
            message: format!("cannot encode the submit body: {e}"),
        })?;
        let _: Value = self
            .call(Method::POST, &["api", "jobs", ""], &[], Some(&body))
            .await?;
        Ok(())
    }

    /// `GET /api/jobs/{id}`; 404 for an unknown id.
    pub async fn job(&self, submission_id: &str) -> Result<JobDetails, WireError> {
        self.call(Method::GET, &["api", "jobs", submission_id], &[], None)
            .await
    }

    /// `GET /api/jobs/`: every job the cluster remembers, as raw JSON values so
    /// that the caller can skip one it cannot read.
    pub async fn jobs(&self) -> Result<Vec<Value>, WireError> {
        self.call(Method::GET, &["api", "jobs", ""], &[], None)
            .await
    }

    /// `GET /api/jobs/{id}/logs`: the whole log so far.
    pub async fn logs(&self, submission_id: &str) -> Result<String, WireError> {
        let answer: LogsAnswer = self
            .call(
                Method::GET,
                &["api", "jobs", submission_id, "logs"],
                &[],
                None,
            )
            .await?;
        Ok(answer.logs)
    }

    /// `POST /api/jobs/{id}/stop`: true when a running job was told to stop,
    /// false when it had already finished.
    pub async fn stop(&self, submission_id: &str) -> Result<bool, WireError> {
        let answer: StopAnswer = self
            .call(
                Method::POST,
                &["api", "jobs", submission_id, "stop"],
                &[],
                None,
            )
            .await?;
        Ok(answer.stopped)
    }

    /// `DELETE /api/jobs/{id}`: only for final jobs (Ray answers 500 otherwise).
    pub async fn delete(&self, submission_id: &str) -> Result<(), WireError> {
        let _: Value = self
            .call(Method::DELETE, &["api", "jobs", submission_id], &[], None)
            .await?;
        Ok(())
    }

    /// `GET /api/cluster_status`; empty usage while the autoscaler monitor has
    /// not reported yet (a fresh head).
    pub async fn cluster_status(&self) -> Result<LoadMetrics, WireError> {
        let answer: Envelope<ClusterStatusData> = self
            .call(Method::GET, &["api", "cluster_status"], &[], None)
            .await?;
        Ok(answer
            .data
            .cluster_status
            .and_then(|status| status.load_metrics_report)
            .unwrap_or_default())
    }

    /// `GET /api/v0/nodes`: every node, alive or dead.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, WireError> {
        let limit = NODE_LIST_LIMIT.to_string();
        let answer: Envelope<NodesData> = self
            .call(
                Method::GET,
                &["api", "v0", "nodes"],
                &[("limit", limit.as_str())],
                None,
            )
            .await?;
        Ok(answer.data.result.result)
    }

    /// `GET /api/packages/{protocol}/{name}`: true when the head's package
    /// store (its GCS) holds the package, false when it answers 404.
    pub async fn package_exists(&self, protocol: &str, name: &str) -> Result<bool, WireError> {
        let url = self.url(&["api", "packages", protocol, name], &[]);
        match self.send(Method::GET, &url, Payload::Empty).await {
            Ok(_) => Ok(true),
            Err(WireError::Status { status: 404, .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `PUT /api/packages/{protocol}/{name}`: stores a package (the zip a
    /// `working_dir` or `py_modules` URI `protocol://name` names) in the
    /// head's package store. Storing the same package twice is harmless.
    pub async fn upload_package(
        &self,
        protocol: &str,
        name: &str,
        zip: &[u8],
    ) -> Result<(), WireError> {
        let url = self.url(&["api", "packages", protocol, name], &[]);
        self.send(Method::PUT, &url, Payload::Bytes(zip))
            .await
            .map(drop)
    }

    /// One JSON call with bounded retries of transient failures.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, WireError> {
        let url = self.url(path, query);
        let payload = body.map_or(Payload::Empty, Payload::Json);
        let bytes = self.send(method.clone(), &url, payload).await?;
        serde_json::from_slice(&bytes).map_err(|e| WireError::Decode {
            call: format!("{method} {}", url.path()),
            message: format!(
                "{e}; body starts {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        })
    }

    /// The dashboard URL with `path` appended and `query` set.
    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One exchange with bounded retries of transient failures; the body of
    /// the 2xx answer.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        payload: Payload<'_>,
    ) -> Result<Vec<u8>, WireError> {
        let call = format!("{method} {}", url.path());
        let mut tries = 0;
        loop {
            let result = self.send_once(&method, url, &call, payload).await;
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let transient = match classify_failure(&error) {
                FailureMeaning::Error(kind) => kind.is_transient(),
                FailureMeaning::DuplicateSubmission => false,
            };
            if !transient || tries >= self.max_retries {
                return Err(error);
            }
            let pause = FIRST_BACKOFF
                .saturating_mul(1 << tries.min(8))
                .min(MAX_BACKOFF);
            tracing::debug!(call = %call, tries, ?pause, error = ?error, "retrying ray call");
            tokio::time::sleep(pause).await;
            tries += 1;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        call: &str,
        payload: Payload<'_>,
    ) -> Result<Vec<u8>, WireError> {
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request = match payload {
            Payload::Empty => request,
            Payload::Json(body) => request.json(body),
            Payload::Bytes(bytes) => request.body(bytes.to_vec()),
        };
        let transport = |e: reqwest::Error| WireError::Transport {
            call: call.to_string(),
            timed_out: e.is_timeout(),
            message: error_chain(&e),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(WireError::Status {
                call: call.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(bytes.to_vec())
    }
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Payload<'a> {
    /// No body.
    Empty,
    /// A JSON document.
    Json(&'a Value),
    /// Raw bytes (a package zip).
    Bytes(&'a [u8]),
}

/// reqwest's top-level message hides the cause ("error sending request").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        std::env::set_var("RAYBROKER_RAY_CLIENT_TEST_TOKEN", "top-secret");
        let mut config = RayClusterConfig::new("http://127.0.0.1:8265", "prod");
        config.token_env = Some("RAYBROKER_RAY_CLIENT_TEST_TOKEN".into());
        let client = RayClient::new(&config).unwrap();
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("top-secret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
