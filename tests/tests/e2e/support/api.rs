//! The broker's REST API as the tests use it: calls with the test's token,
//! and waits for jobs and capacity to reach a state.

use std::time::{Duration, Instant};

use raybroker_core::{Job, JobState};
use serde_json::Value;

use super::{ray, RayJob, TestEnv, POLL};

/// How long a capacity reading must hold to count as settled: more than
/// two snapshots (`snapshot_every` is 1 s).
const SETTLED: Duration = Duration::from_millis(2500);

impl TestEnv {
    /// A request with the tenant's token; the status and the JSON body, or
    /// why there is no answer (the broker may be down in the crash test).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{method} {path}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?
        };
        Ok((status, json))
    }

    /// A request that must get an answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}\nthe broker's log:\n{}", self.log_tail(30)))
    }

    /// POST /v1/jobs; the status and body.
    pub async fn post_job(&self, spec: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/v1/jobs", Some(spec))
            .await
    }

    /// Submits a job that must be accepted (201); its id.
    pub async fn submit(&self, spec: &Value) -> String {
        let (status, body) = self.post_job(spec).await;
        assert_eq!(status, 201, "submitting {spec}: {body}");
        body["id"].as_str().expect("a job id").to_string()
    }

    /// GET /v1/jobs/{id}.
    pub async fn job(&self, id: &str) -> Job {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/v1/jobs/{id}"), None)
            .await;
        assert_eq!(status, 200, "GET job {id}: {body}");
        parse_job(body)
    }

    /// POST /v1/jobs/{id}/cancel: the effect (`cancelled`, `requested`,
    /// `already_finished`) and the job after the cancel.
    pub async fn cancel(&self, id: &str) -> (String, Job) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/jobs/{id}/cancel"),
                None,
            )
            .await;
        assert_eq!(status, 200, "cancel {id}: {body}");
        let effect = body["effect"].as_str().expect("an effect").to_string();
        (effect, parse_job(body["job"].clone()))
    }

    /// Polls the job until `done` holds, for at most `within`.
    pub async fn wait_for(&self, id: &str, within: Duration, done: impl Fn(&Job) -> bool) -> Job {
        let deadline = Instant::now() + within;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} not as expected within {within:?}; it is {} ({}):\n{job:#?}",
                job.state,
                job.reason
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the job until it is finished.
    pub async fn wait_finished(&self, id: &str, within: Duration) -> Job {
        self.wait_for(id, within, |job| job.state.is_terminal())
            .await
    }

    /// Polls the job until it is in `state`; fails early if it finishes in another.
    pub async fn wait_state(&self, id: &str, state: JobState, within: Duration) -> Job {
        let job = self
            .wait_for(id, within, |job| {
                job.state == state || job.state.is_terminal()
            })
            .await;
        assert_eq!(job.state, state, "job {id} ended early: {job:#?}");
        job
    }

    /// The job's whole log as the broker kept it, once the broker says it is
    /// complete (the job finished).
    pub async fn complete_logs(&self, id: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/jobs/{id}/logs?offset=0"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "logs of {id}: {body}");
            if body["complete"] == true {
                return body["text"].as_str().expect("log text").to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the log of {id} was not complete within {within:?}: {body}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the broker's snapshots show no free GPU of `model` on
    /// `cluster`, continuously for [`SETTLED`] (several snapshots).
    ///
    /// Ray reports usage a second or more late, and a snapshot replaces the
    /// broker's own reservations, so right after jobs start a snapshot may
    /// still show their GPUs free and let one more job through to wait on
    /// the head (within the cluster's pending allowance). Tests that need
    /// the next job to wait in the broker wait for this first.
    pub async fn wait_gpus_taken(&self, cluster: &str, model: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let mut taken_since: Option<Instant> = None;
        loop {
            let (status, body) = self.call(reqwest::Method::GET, "/v1/clusters", None).await;
            assert_eq!(status, 200, "{body}");
            let free = body["clusters"]
                .as_array()
                .and_then(|all| all.iter().find(|c| c["name"] == cluster))
                .and_then(|c| c["gpus"][model]["free"].as_f64());
            if free == Some(0.0) {
                let since = *taken_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLED {
                    return;
                }
            } else {
                taken_since = None;
            }
            assert!(
                Instant::now() < deadline,
                "{cluster} still shows free {model} GPUs after {within:?}: {body}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every Ray job of this test, as the heads report them.
    pub async fn ray_jobs(&self) -> Vec<RayJob> {
        ray::jobs_of(&self.heads, &self.origin).await
    }

    /// One Ray job of this test by head and submission id.
    pub async fn ray_job(&self, cluster: &str, submission_id: &str) -> Option<RayJob> {
        ray::job(&self.heads, cluster, submission_id).await
    }
}

fn parse_job(body: Value) -> Job {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("not a job ({e}): {body}"))
}
