//! The real Ray head the test operator runs entrypoints on (Ray Jobs REST API).

use std::time::Duration;

use serde_json::Value;

/// A Ray head's dashboard.
#[derive(Clone, Debug)]
pub struct RayHead {
    url: String,
    http: reqwest::Client,
}

impl RayHead {
    /// The head at `url`, e.g. `http://127.0.0.1:8265`.
    pub fn new(url: &str) -> anyhow::Result<RayHead> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(RayHead {
            url: url.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The dashboard URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn text(&self, request: reqwest::RequestBuilder) -> Result<String, String> {
        let response = request.send().await.map_err(|e| format!("ray head: {e}"))?;
        let code = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("ray head: {e}"))?;
        if code.is_success() {
            Ok(text)
        } else {
            Err(format!("ray head answered {code}: {text}"))
        }
    }

    /// Submits a job (`POST /api/jobs/`).
    pub async fn submit(&self, body: &Value) -> Result<(), String> {
        self.text(self.http.post(format!("{}/api/jobs/", self.url)).json(body))
            .await
            .map(|_| ())
    }

    /// A job's details.
    pub async fn status(&self, id: &str) -> Result<Value, String> {
        let text = self
            .text(self.http.get(format!("{}/api/jobs/{id}", self.url)))
            .await?;
        serde_json::from_str(&text).map_err(|e| format!("ray head job details: {e}"))
    }

    /// Stops a job.
    pub async fn stop(&self, id: &str) -> Result<(), String> {
        self.text(self.http.post(format!("{}/api/jobs/{id}/stop", self.url)))
            .await
            .map(|_| ())
    }

    /// A job's whole log.
    pub async fn logs(&self, id: &str) -> Result<String, String> {
        let text = self
            .text(self.http.get(format!("{}/api/jobs/{id}/logs", self.url)))
            .await?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("ray head logs: {e}"))?;
        Ok(value["logs"].as_str().unwrap_or_default().to_string())
    }
}
