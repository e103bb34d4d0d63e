//! The heads' own view of the jobs, over Ray's Jobs REST API directly (not
//! through the adapter under test), and the cleanup of what a test left.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::Heads;

/// Metadata key with the broker's origin tag.
pub const META_ORIGIN: &str = "raybroker.origin";
/// Metadata key with the broker's job id.
pub const META_JOB_ID: &str = "raybroker.job_id";
/// Metadata key with the attempt number.
pub const META_ATTEMPT: &str = "raybroker.attempt";

/// How long after a job's end Ray 2.60 may still write its record back:
/// deleting earlier leaves a ghost job (see the Ray adapter's cleanup).
const DELETE_GRACE: Duration = Duration::from_secs(5);

/// One job as a head reports it.
#[derive(Clone, Debug, Deserialize)]
pub struct RayJob {
    /// The broker's name of the head it is on (filled in after reading).
    #[serde(skip)]
    pub cluster: String,
    /// The submission id (absent for driver jobs).
    pub submission_id: Option<String>,
    /// PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED.
    pub status: String,
    /// The entrypoint's exit code, once known.
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
    /// End time, ms since the epoch (0 or absent while running).
    #[serde(default)]
    pub end_time: Option<u64>,
    /// Ray's message about the status.
    #[serde(default)]
    pub message: Option<String>,
    /// The submitter's metadata.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl RayJob {
    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key).map(String::as_str)
    }

    /// True once Ray will not change the status any more.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "STOPPED" | "SUCCEEDED" | "FAILED")
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // Ray 2.31's dashboard answers 500 to a request without one.
        .user_agent("raybroker-e2e")
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// Every job on every head tagged with `origin`.
pub async fn jobs_of(heads: &Heads, origin: &str) -> Vec<RayJob> {
    list(&client(), heads, origin)
        .await
        .unwrap_or_else(|e| panic!("cannot list the heads' jobs: {e}"))
}

/// One job of a head by submission id; `None` when the head does not know it.
pub async fn job(heads: &Heads, cluster: &str, submission_id: &str) -> Option<RayJob> {
    let url = heads.url(cluster);
    let response = client()
        .get(format!("{url}/api/jobs/{submission_id}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading job {submission_id} on {cluster}: {e}"));
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(
        response.status().is_success(),
        "reading job {submission_id} on {cluster}: HTTP {}",
        response.status()
    );
    let mut job: RayJob = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("job {submission_id} on {cluster} is not what Ray sends: {e}"));
    job.cluster = cluster.to_string();
    Some(job)
}

/// Stops every unfinished job tagged with `origin`, waits (up to `within`)
/// until they are final and past Ray's delete grace, then deletes them all.
/// Best effort: returns what went wrong instead of panicking, since it runs
/// while a failed test unwinds.
pub async fn clean_up(heads: &Heads, origin: &str, within: Duration) -> Result<usize, String> {
    let client = client();
    let deadline = tokio::time::Instant::now() + within;
    let jobs = loop {
        let jobs = list(&client, heads, origin).await?;
        let running: Vec<&RayJob> = jobs.iter().filter(|j| !j.is_final()).collect();
        if running.is_empty() {
            break jobs;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{} jobs of origin {origin} did not stop within {within:?}",
                running.len()
            ));
        }
        for job in running {
            if let Some(id) = &job.submission_id {
                let url = heads.url(&job.cluster);
                let _ = client
                    .post(format!("{url}/api/jobs/{id}/stop"))
                    .send()
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let last_end = jobs.iter().filter_map(|j| j.end_time).max().unwrap_or(0);
    let since_end = Duration::from_millis(now_ms().saturating_sub(last_end));
    if let Some(wait) = DELETE_GRACE.checked_sub(since_end) {
        tokio::time::sleep(wait).await;
    }
    let mut deleted = 0;
    for job in &jobs {
        let Some(id) = &job.submission_id else {
            continue;
        };
        let url = heads.url(&job.cluster);
        match client.delete(format!("{url}/api/jobs/{id}")).send().await {
            Ok(response) if response.status().is_success() => deleted += 1,
            Ok(response) => return Err(format!("DELETE {id}: HTTP {}", response.status())),
            Err(e) => return Err(format!("DELETE {id}: {e}")),
        }
    }
    Ok(deleted)
}

async fn list(
    client: &reqwest::Client,
    heads: &Heads,
    origin: &str,
) -> Result<Vec<RayJob>, String> {
    let mut found = Vec::new();
    for (cluster, url) in heads.all() {
        let response = client
            .get(format!("{url}/api/jobs/"))
            .send()
            .await
            .map_err(|e| format!("listing the jobs of {cluster} ({url}): {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "listing the jobs of {cluster}: HTTP {}",
                response.status()
            ));
        }
        let jobs: Vec<RayJob> = response
            .json()
            .await
            .map_err(|e| format!("the job list of {cluster} is not what Ray sends: {e}"))?;
        found.extend(
            jobs.into_iter()
                .filter(|job| job.meta(META_ORIGIN) == Some(origin))
                .map(|mut job| {
                    job.cluster = cluster.to_string();
                    job
                }),
        );
    }
    Ok(found)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
