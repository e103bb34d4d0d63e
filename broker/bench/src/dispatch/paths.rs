//! The two paths a job can take to the head, each measured one job at a time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use raybroker_core::{Attempt, Job, JobState};
use serde_json::{json, Value};

use super::Settings;

/// CPUs each job asks for, on both paths.
const JOB_CPUS: f64 = 0.25;
/// Longest wait for one job to start, or to end.
const JOB_LIMIT: Duration = Duration::from_secs(120);
/// How often the head is polled for a broker job it does not know yet.
const DISPATCH_POLL: Duration = Duration::from_millis(5);
/// Ray 2.60 writes a job deleted within ~2 s of its end back as a ghost.
const DELETE_GRACE: Duration = Duration::from_secs(5);

/// One job submitted to the head directly.
pub struct DirectRun {
    /// Submit -> RUNNING seen, ms.
    pub total_ms: f64,
    /// The submit call alone, ms.
    pub post_ms: f64,
}

/// One job submitted through the broker.
pub struct BrokerRun {
    /// Submit -> `running` seen, ms.
    pub total_ms: f64,
    /// Submit -> the head knows the job (polled every 5 ms), ms.
    pub to_ray_ms: f64,
    /// Of `to_ray_ms`: until the broker had queued it (the API call), ms.
    pub api_ms: f64,
    /// Of `to_ray_ms`: queued -> the dispatch round that took it began, ms.
    pub round_wait_ms: f64,
    /// RUNNING seen on the head -> `running` seen on the broker, ms.
    pub seen_ms: f64,
}

/// The head, over its Jobs REST API.
pub struct Direct {
    head: String,
    http: reqwest::Client,
    /// Tag of the direct jobs, for the cleanup.
    origin: String,
}

impl Direct {
    /// A client of the head at `head` tagging its jobs with `origin`.
    pub fn new(head: &str, origin: &str) -> anyhow::Result<Direct> {
        Ok(Direct {
            head: head.to_string(),
            http: reqwest::Client::builder()
                // Ray 2.31's dashboard answers 500 to a request without one.
                .user_agent("raybroker-bench")
                .timeout(Duration::from_secs(30))
                .build()?,
            origin: origin.to_string(),
        })
    }

    /// The tag of the direct jobs.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The head's Ray version.
    pub async fn ray_version(&self) -> anyhow::Result<String> {
        let version: Value = self
            .http
            .get(format!("{}/api/version", self.head))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the Ray head at {}: {e}", self.head))?
            .error_for_status()?
            .json()
            .await?;
        Ok(version["ray_version"].as_str().unwrap_or("?").to_string())
    }

    /// Submits one job, measures it until RUNNING, waits for its end.
    pub async fn run_one(&self, settings: &Settings, name: &str) -> anyhow::Result<DirectRun> {
        let id = format!("{}-{name}", self.origin);
        let body = json!({
            "entrypoint": settings.entrypoint,
            "submission_id": id,
            "entrypoint_num_cpus": JOB_CPUS,
            "metadata": {"raybroker.origin": self.origin},
        });
        let sent = Instant::now();
        let response = self
            .http
            .post(format!("{}/api/jobs/", self.head))
            .json(&body)
            .send()
            .await?;
        let post = sent.elapsed();
        if !response.status().is_success() {
            bail!("the head refused the job: {}", response.text().await?);
        }
        let total = loop {
            match self.status(&id).await?.as_deref() {
                Some("RUNNING" | "SUCCEEDED") => break sent.elapsed(),
                Some(status @ ("FAILED" | "STOPPED")) => bail!("direct job {id} ended {status}"),
                _ => {}
            }
            if sent.elapsed() > JOB_LIMIT {
                bail!("direct job {id} did not start within {JOB_LIMIT:?}");
            }
            tokio::time::sleep(settings.poll_every).await;
        };
        self.wait_final(&id, settings.poll_every).await?;
        Ok(DirectRun {
            total_ms: ms(total),
            post_ms: ms(post),
        })
    }

    /// A job's status, `None` while the head does not know it.
    pub async fn status(&self, id: &str) -> anyhow::Result<Option<String>> {
        let response = self
            .http
            .get(format!("{}/api/jobs/{id}", self.head))
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let job: Value = response.error_for_status()?.json().await?;
        Ok(Some(job["status"].as_str().unwrap_or("?").to_string()))
    }

    async fn wait_final(&self, id: &str, poll: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + JOB_LIMIT;
        while !matches!(
            self.status(id).await?.as_deref(),
            Some("SUCCEEDED" | "FAILED" | "STOPPED")
        ) {
            if Instant::now() > deadline {
                bail!("job {id} did not end within {JOB_LIMIT:?}");
            }
            tokio::time::sleep(poll).await;
        }
        Ok(())
    }

    /// Deletes every job tagged with one of `origins` once all are final and
    /// past Ray's delete grace.
    pub async fn delete_jobs(&self, origins: &[&str]) -> anyhow::Result<()> {
        let is_ours = |job: &Value| {
            job["metadata"]["raybroker.origin"]
                .as_str()
                .is_some_and(|o| origins.contains(&o))
        };
        let is_final = |job: &Value| {
            matches!(
                job["status"].as_str(),
                Some("SUCCEEDED" | "FAILED" | "STOPPED")
            )
        };
        let deadline = Instant::now() + JOB_LIMIT;
        let ours = loop {
            let jobs: Vec<Value> = self
                .http
                .get(format!("{}/api/jobs/", self.head))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let ours: Vec<Value> = jobs.into_iter().filter(is_ours).collect();
            if ours.iter().all(is_final) {
                break ours;
            }
            if Instant::now() > deadline {
                bail!("the benchmark's Ray jobs did not end within {JOB_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let last_end = ours.iter().filter_map(|j| j["end_time"].as_u64()).max();
        let since_end = Duration::from_millis(wall_ms().saturating_sub(last_end.unwrap_or(0)));
        if let Some(wait) = DELETE_GRACE.checked_sub(since_end) {
            tokio::time::sleep(wait).await;
        }
        for job in &ours {
            if let Some(id) = job["submission_id"].as_str() {
                self.http
                    .delete(format!("{}/api/jobs/{id}", self.head))
                    .send()
                    .await?
                    .error_for_status()?;
            }
        }
        Ok(())
    }
}

/// The in-process broker, over its REST API.
pub struct Broker {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Broker {
    /// A client of the broker at `base`.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Broker> {
        Ok(Broker {
            base: base.to_string(),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// Waits until the broker has a fresh snapshot of its cluster.
    pub async fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self
                .http
                .get(format!("{}/v1/clusters", self.base))
                .bearer_auth(&self.token)
                .send()
                .await;
            if let Ok(response) = answer {
                let body: Value = response.json().await.unwrap_or_default();
                if body["clusters"][0]["healthy"] == true {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("the broker did not see the head healthy within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Submits one job and polls both the broker and the head for it (its
    /// submission id is known in advance) until each says it runs; waits
    /// for its end.
    pub async fn run_one(&self, head: &Direct, settings: &Settings) -> anyhow::Result<BrokerRun> {
        let spec = json!({
            "entrypoint": settings.entrypoint,
            "resources": {"cpus": JOB_CPUS},
        });
        let sent_wall_ms = wall_ms();
        let sent = Instant::now();
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .json(&spec)
            .send()
            .await?;
        if response.status().as_u16() != 201 {
            bail!("the broker refused the job: {}", response.text().await?);
        }
        let job: Job = response.json().await?;
        let id = job.id.to_string();
        let submission_id = Attempt::submission_id(&job.id, 1);
        // Until the head knows the job, only the head is polled, and fast:
        // this is when the dispatch round sent it.
        let known = loop {
            if head.status(&submission_id).await?.is_some() {
                break sent.elapsed();
            }
            if sent.elapsed() > JOB_LIMIT {
                bail!("broker job {id} did not reach the head within {JOB_LIMIT:?}");
            }
            tokio::time::sleep(DISPATCH_POLL).await;
        };
        let (mut on_head, mut on_broker) = (None, None);
        let (on_head, on_broker) = loop {
            if on_head.is_none()
                && matches!(
                    head.status(&submission_id).await?.as_deref(),
                    Some("RUNNING" | "SUCCEEDED")
                )
            {
                on_head = Some(sent.elapsed());
            }
            if on_broker.is_none() {
                let job = self.job(&id).await?;
                match job.state {
                    JobState::Running | JobState::Succeeded => on_broker = Some(sent.elapsed()),
                    JobState::Failed | JobState::Cancelled => {
                        bail!("broker job {id} ended {}: {}", job.state, job.reason)
                    }
                    _ => {}
                }
            }
            if let (Some(on_head), Some(on_broker)) = (on_head, on_broker) {
                break (on_head, on_broker);
            }
            if sent.elapsed() > JOB_LIMIT {
                bail!("broker job {id} did not run within {JOB_LIMIT:?}");
            }
            tokio::time::sleep(settings.poll_every).await;
        };
        head.wait_final(&submission_id, settings.poll_every).await?;
        let job = self.job(&id).await?;
        // A round stamps its changes with the time it began.
        let round_began = job
            .history
            .iter()
            .find(|t| t.to == JobState::Dispatching)
            .map(|t| t.at_ms);
        let (Some(round_began), 1) = (round_began, job.attempt) else {
            bail!("broker job {id} did not run in one dispatch: {job:?}");
        };
        Ok(BrokerRun {
            total_ms: ms(on_broker),
            to_ray_ms: ms(known),
            api_ms: job.created_at_ms.saturating_sub(sent_wall_ms) as f64,
            round_wait_ms: round_began.saturating_sub(job.created_at_ms) as f64,
            seen_ms: ms(on_broker) - ms(on_head),
        })
    }

    async fn job(&self, id: &str) -> anyhow::Result<Job> {
        Ok(self
            .http
            .get(format!("{}/v1/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
