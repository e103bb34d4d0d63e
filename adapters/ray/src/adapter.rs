//! [`ClusterAdapter`] for a plain Ray cluster, over the Jobs REST API.
//!
//! Limits of what Ray's Jobs API can do, and how the adapter lives with them:
//! - A job's entrypoint is a single process placed on one node, so
//!   `multi_node` is false; multi-node work is a Ray program the entrypoint
//!   starts, not something the adapter can gang-schedule.
//! - `stop` does not end a job that is PENDING because the cluster lacks the
//!   resources; it stays pending until `RAY_JOB_START_TIMEOUT_SECONDS`
//!   (default 900 s) and then fails. The broker's admission control (it places
//!   only what a snapshot shows free) keeps such jobs from being created.
//! - Logs come back whole on every read; the cursor is applied here.
//! - Deleting a job within a second or two of its end makes Ray 2.60 write it
//!   back as a ghost, so cleanup waits out [`convert::DELETE_GRACE_MS`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use raybroker_adapter::{
    AdapterError, Capabilities, CapacitySnapshot, ClusterAdapter, ErrorKind, LogChunk, NodeCache,
    OwnedJob, RemoteState, RemoteStatus, SubmitAck, SubmitRequest,
};
use tracing::instrument;

use crate::client::{JobDetails, RayClient, WireError};
use crate::config::{ConfigError, RayClusterConfig};
use crate::convert::{self, capacity, submit, FailureMeaning};

/// A plain Ray cluster reached through its dashboard.
#[derive(Debug)]
pub struct RayAdapter {
    /// The cluster's name in the broker's config (for logs and spans).
    name: String,
    /// How to reach and tag the cluster.
    config: RayClusterConfig,
    /// Wire calls.
    client: RayClient,
    /// Nodes of the last snapshot: submit needs them to pick a GPU model
    /// present on this cluster.
    last_nodes: NodeCache,
}

impl RayAdapter {
    /// An adapter for the cluster `name` (checks the config, reads the token).
    pub fn new(
        name: impl Into<String>,
        config: RayClusterConfig,
    ) -> Result<RayAdapter, ConfigError> {
        let client = RayClient::new(&config)?;
        Ok(RayAdapter {
            name: name.into(),
            config,
            client,
            last_nodes: NodeCache::new(),
        })
    }

    /// The wire client, for tools and tests that need a raw call.
    pub fn client(&self) -> &RayClient {
        &self.client
    }

    /// The broker origin this adapter tags jobs with.
    pub fn origin(&self) -> &str {
        &self.config.origin
    }

    /// Every job of ours, skipping (with a warning) any the adapter cannot read.
    fn owned_jobs(&self, jobs: &[serde_json::Value]) -> Vec<OwnedJob> {
        jobs.iter()
            .filter_map(|value| {
                let details = match <JobDetails as serde::Deserialize>::deserialize(value) {
                    Ok(details) => details,
                    Err(error) => {
                        tracing::warn!(cluster = %self.name, %error, "skipping unreadable ray job");
                        return None;
                    }
                };
                match convert::owned_job(&details, &self.config.origin) {
                    Ok(owned) => owned,
                    Err(error) => {
                        tracing::warn!(cluster = %self.name, %error, "skipping a ray job of ours");
                        None
                    }
                }
            })
            .collect()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn is_not_found(error: &WireError) -> bool {
    convert::classify_failure(error) == FailureMeaning::Error(ErrorKind::NotFound)
}

#[async_trait]
impl ClusterAdapter for RayAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fractional_gpus: true,
            // The entrypoint is one process on one node (see the module docs).
            multi_node: false,
            gpu_models: true,
            custom_resources: true,
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn snapshot(&self) -> Result<CapacitySnapshot, AdapterError> {
        let (version, nodes, load, jobs) = tokio::try_join!(
            self.client.version(),
            self.client.nodes(),
            self.client.cluster_status(),
            self.client.jobs(),
        )
        .map_err(|e| convert::adapter_error(&e))?;
        let nodes = capacity::capacity_nodes(&nodes, &load);
        let pending = self
            .owned_jobs(&jobs)
            .iter()
            .filter(|job| job.state == RemoteState::Pending)
            .count();
        self.last_nodes.remember(nodes.clone());
        Ok(CapacitySnapshot {
            taken_at_ms: now_ms(),
            nodes,
            pending_jobs: u32::try_from(pending).unwrap_or(u32::MAX),
            version: format!("ray {}", version.ray_version),
        })
    }

    #[instrument(
        skip(self, request),
        fields(cluster = %self.name, submission_id = %request.submission_id)
    )]
    async fn submit(&self, request: &SubmitRequest) -> Result<SubmitAck, AdapterError> {
        let resources = &request.spec.resources;
        let nodes = if resources.gpus.is_zero() || resources.gpu_types.is_empty() {
            Arc::new(Vec::new())
        } else {
            self.last_nodes.get_or_snapshot(|| self.snapshot()).await?
        };
        let body = submit::submit_body(
            request,
            &self.config.origin,
            self.config.gpu_model_resource,
            &nodes,
        )?;
        match self.client.submit(&body).await {
            Ok(()) => Ok(SubmitAck::Created),
            Err(error) => match convert::classify_failure(&error) {
                FailureMeaning::DuplicateSubmission => Ok(SubmitAck::AlreadyExists),
                FailureMeaning::Error(_) => Err(convert::adapter_error(&error)),
            },
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn status(&self, submission_id: &str) -> Result<RemoteStatus, AdapterError> {
        match self.client.job(submission_id).await {
            Ok(details) => convert::remote_status(&details),
            Err(error) if is_not_found(&error) => Ok(RemoteStatus::not_found()),
            Err(error) => Err(convert::adapter_error(&error)),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn logs(&self, submission_id: &str, cursor: u64) -> Result<LogChunk, AdapterError> {
        let whole = self
            .client
            .logs(submission_id)
            .await
            .map_err(|e| convert::adapter_error(&e))?;
        Ok(convert::log_suffix(&whole, cursor))
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn cancel(&self, submission_id: &str) -> Result<(), AdapterError> {
        match self.client.stop(submission_id).await {
            // false: it had already finished, which is just as good.
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(convert::adapter_error(&error)),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn cleanup(&self, submission_id: &str) -> Result<(), AdapterError> {
        let details = match self.client.job(submission_id).await {
            Ok(details) => details,
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(convert::adapter_error(&error)),
        };
        let status = convert::remote_status(&details)?;
        if !status.state.is_final() {
            return Err(AdapterError::new(
                ErrorKind::Rejected,
                format!(
                    "job {submission_id} is {:?}; Ray deletes only finished jobs: \
                     cancel it and wait until it is final",
                    status.state
                ),
            ));
        }
        if let Some(wait) = convert::delete_delay(details.end_time, now_ms()) {
            tracing::debug!(?wait, "waiting for ray's job monitor before deleting");
            tokio::time::sleep(wait).await;
        }
        match self.client.delete(submission_id).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(convert::adapter_error(&error)),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn list_owned(&self) -> Result<Vec<OwnedJob>, AdapterError> {
        let jobs = self
            .client
            .jobs()
            .await
            .map_err(|e| convert::adapter_error(&e))?;
        Ok(self.owned_jobs(&jobs))
    }
}
