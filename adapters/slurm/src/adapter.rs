//! [`ClusterAdapter`] for a Slurm cluster: each job is a Slurm batch job that
//! runs a Ray cluster over its allocation and the entrypoint inside it.
//!
//! The adapter's record of a job is its directory on the filesystem the
//! broker shares with the cluster ([`crate::jobdir`]): it exists from just
//! before the submit until cleanup. Slurm cannot delete a job's record and
//! forgets finished jobs after `MinJobAge`; the directory covers both: a
//! cleaned-up job is unknown even while Slurm still lists it, and a
//! forgotten one keeps the final state its script wrote.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use raybroker_adapter::{
    AdapterError, Capabilities, CapacitySnapshot, ClusterAdapter, ErrorKind, LogChunk, NodeCache,
    OwnedJob, RemoteState, RemoteStatus, SubmitAck, SubmitRequest,
};
use tracing::instrument;

use crate::client::{JobInfo, SlurmClient};
use crate::config::{ConfigError, SlurmClusterConfig};
use crate::convert::submit::{self, Tags};
use crate::convert::{self, capacity};
use crate::jobdir::{self, JobDir};
use crate::script::{self, ScriptParams};

/// A Slurm cluster reached through slurmrestd.
#[derive(Debug)]
pub struct SlurmAdapter {
    /// The cluster's name in the broker's config.
    name: String,
    /// How to reach the cluster and run Ray there.
    config: SlurmClusterConfig,
    /// Wire calls.
    client: SlurmClient,
    /// `<jobs_dir>/<origin>`: this broker's job directories.
    jobs_root: PathBuf,
    /// Nodes of the last snapshot (submit picks a GPU model present here).
    last_nodes: NodeCache,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn wire(error: crate::client::WireError) -> AdapterError {
    convert::adapter_error(&error)
}

impl SlurmAdapter {
    /// An adapter for the cluster `name` (checks the config, reads the key
    /// or token).
    pub fn new(
        name: impl Into<String>,
        config: SlurmClusterConfig,
    ) -> Result<SlurmAdapter, ConfigError> {
        let client = SlurmClient::new(&config)?;
        let jobs_root = config.jobs_dir.join(&config.origin);
        Ok(SlurmAdapter {
            name: name.into(),
            config,
            client,
            jobs_root,
            last_nodes: NodeCache::new(),
        })
    }

    /// The wire client, for tools and tests.
    pub fn client(&self) -> &SlurmClient {
        &self.client
    }

    /// The directory of a submission.
    pub fn job_dir(&self, submission_id: &str) -> Result<JobDir, AdapterError> {
        JobDir::new(&self.jobs_root, submission_id)
    }

    fn ours(&self, job: &JobInfo) -> Option<Tags> {
        Tags::decode(job.comment.as_deref()?).filter(|tags| tags.origin == self.config.origin)
    }

    /// Our newest Slurm job named `submission_id`.
    async fn find_by_name(&self, submission_id: &str) -> Result<Option<JobInfo>, AdapterError> {
        let jobs = self.client.jobs().await.map_err(wire)?;
        Ok(jobs
            .into_iter()
            .filter(|job| job.name == submission_id && self.ours(job).is_some())
            .max_by_key(|job| job.job_id))
    }

    /// The Slurm job of a directory: by its recorded id, else by name (a
    /// submit that went through just before a crash), recording the id.
    async fn slurm_job(
        &self,
        dir: &JobDir,
        submission_id: &str,
    ) -> Result<Option<JobInfo>, AdapterError> {
        if let Some(id) = dir.slurm_job_id().await? {
            let job = self.client.job(id).await.map_err(wire)?;
            // Ids restart when slurmctld loses its state: check the name.
            return Ok(job.filter(|job| job.name == submission_id));
        }
        let found = self.find_by_name(submission_id).await?;
        if let Some(id) = found.as_ref().and_then(|job| job.job_id) {
            dir.record_slurm_job_id(id).await?;
        }
        Ok(found)
    }

    /// The partition jobs go to: the configured one, else the default.
    async fn partition(&self) -> Result<String, AdapterError> {
        if let Some(partition) = &self.config.partition {
            return Ok(partition.clone());
        }
        let partitions = self.client.partitions().await.map_err(wire)?;
        partitions
            .partitions
            .iter()
            .find(|p| p.is_default())
            .map(|p| p.name.clone())
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorKind::Rejected,
                    "the cluster has no default partition: set `partition` in the cluster's config",
                )
            })
    }

    async fn submit_new(&self, request: &SubmitRequest, dir: &JobDir) -> Result<u64, AdapterError> {
        let resources = &request.spec.resources;
        let gpu_model = if resources.gpus.is_zero() {
            None
        } else {
            let nodes = self.last_nodes.get_or_snapshot(|| self.snapshot()).await?;
            submit::chosen_gpu_model(&resources.gpu_types, &nodes)?
        };
        let job_dir = dir.path().to_string_lossy().into_owned();
        let output = dir.file(jobdir::OUTPUT_FILE).to_string_lossy().into_owned();
        let description =
            submit::job_description(request, &self.config, gpu_model.as_ref(), &job_dir, &output)?;
        let script = script::render(
            &ScriptParams {
                submission_id: &request.submission_id,
                job_dir: &job_dir,
                entrypoint: &request.spec.entrypoint,
                time_limit: request.spec.time_limit,
                gpu_model: gpu_model.as_ref().map(|m| m.as_str()),
            },
            &self.config,
        );
        dir.prepare(&script).await?;
        let version = self.client.version().await.map_err(wire)?;
        let body = version.submit_body(&script, &description);
        match self.client.submit(&body).await {
            Ok(id) => {
                dir.record_slurm_job_id(id).await?;
                Ok(id)
            }
            Err(error) => {
                let error = wire(error);
                if error.kind == ErrorKind::Rejected {
                    // Nothing runs: leave no record behind.
                    dir.remove().await?;
                }
                Err(error)
            }
        }
    }
}

#[async_trait]
impl ClusterAdapter for SlurmAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fractional_gpus: false,
            multi_node: true,
            gpu_models: true,
            custom_resources: false,
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn snapshot(&self) -> Result<CapacitySnapshot, AdapterError> {
        let partition = self.partition().await?;
        let (nodes, jobs) =
            tokio::try_join!(self.client.nodes(), self.client.jobs()).map_err(wire)?;
        let version = self.client.version().await.map_err(wire)?;
        let capacity = capacity::partition_nodes(&nodes.nodes, &partition, &self.config);
        let pending = jobs
            .iter()
            .filter(|job| self.ours(job).is_some())
            .filter(|job| job.job_state.first().map(String::as_str) == Some("PENDING"))
            .count();
        self.last_nodes.remember(capacity.clone());
        Ok(CapacitySnapshot {
            taken_at_ms: now_ms(),
            nodes: capacity,
            pending_jobs: u32::try_from(pending).unwrap_or(u32::MAX),
            version: format!(
                "slurm {} (api {})",
                nodes.meta.slurm.release,
                version.as_str()
            ),
        })
    }

    #[instrument(skip(self, request), fields(cluster = %self.name, submission_id = %request.submission_id))]
    async fn submit(&self, request: &SubmitRequest) -> Result<SubmitAck, AdapterError> {
        let dir = self.job_dir(&request.submission_id)?;
        if dir.slurm_job_id().await?.is_some() || dir.outcome().await?.is_some() {
            return Ok(SubmitAck::AlreadyExists);
        }
        if let Some(job) = self.find_by_name(&request.submission_id).await? {
            if let Some(id) = job.job_id {
                dir.record_slurm_job_id(id).await?;
            }
            return Ok(SubmitAck::AlreadyExists);
        }
        let id = self.submit_new(request, &dir).await?;
        tracing::info!(slurm_job_id = id, "submitted slurm job");
        Ok(SubmitAck::Created)
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn status(&self, submission_id: &str) -> Result<RemoteStatus, AdapterError> {
        let dir = self.job_dir(submission_id)?;
        if !dir.exists().await? {
            return Ok(RemoteStatus::not_found());
        }
        let job = self.slurm_job(&dir, submission_id).await?;
        let outcome = dir.outcome().await?;
        if let Some(job) = job {
            return convert::remote_status(&job, outcome.as_ref());
        }
        match (dir.slurm_job_id().await?, &outcome) {
            (None, None) => Ok(RemoteStatus::not_found()),
            (id, _) => Ok(convert::forgotten_status(
                id.unwrap_or(0),
                outcome.as_ref(),
                dir.cancel_requested().await?,
            )),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn logs(&self, submission_id: &str, cursor: u64) -> Result<LogChunk, AdapterError> {
        let dir = self.job_dir(submission_id)?;
        if !dir.exists().await? {
            return Err(AdapterError::new(
                ErrorKind::NotFound,
                format!("no job {submission_id} on this cluster"),
            ));
        }
        let bytes = dir.read_log_from(cursor).await?;
        let (text, used) = jobdir::text_prefix(&bytes);
        Ok(LogChunk {
            text,
            next_cursor: cursor + used as u64,
        })
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn cancel(&self, submission_id: &str) -> Result<(), AdapterError> {
        let dir = self.job_dir(submission_id)?;
        if !dir.exists().await? {
            return Ok(());
        }
        dir.record_cancel().await?;
        match self.slurm_job(&dir, submission_id).await? {
            Some(job) => match job.job_id {
                Some(id) => self.client.cancel(id).await.map_err(wire),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn cleanup(&self, submission_id: &str) -> Result<(), AdapterError> {
        let status = self.status(submission_id).await?;
        if !status.state.is_final() && status.state != RemoteState::NotFound {
            return Err(AdapterError::new(
                ErrorKind::Rejected,
                format!(
                    "job {submission_id} is {:?}: cancel it and wait until it is final",
                    status.state
                ),
            ));
        }
        self.job_dir(submission_id)?.remove().await
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn list_owned(&self) -> Result<Vec<OwnedJob>, AdapterError> {
        let jobs = self.client.jobs().await.map_err(wire)?;
        let mut owned = Vec::new();
        for job in jobs {
            let Some(tags) = self.ours(&job) else {
                continue;
            };
            // Cleaned up: Slurm still lists it until MinJobAge, we do not.
            let Ok(dir) = self.job_dir(&job.name) else {
                continue;
            };
            if !dir.exists().await? {
                continue;
            }
            let state = match convert::remote_status(&job, None) {
                Ok(status) => status.state,
                Err(error) => {
                    tracing::warn!(%error, name = %job.name, "skipping a slurm job of ours");
                    continue;
                }
            };
            owned.push(OwnedJob {
                submission_id: job.name.clone(),
                job_id: tags.job_id,
                attempt: tags.attempt,
                state,
            });
        }
        Ok(owned)
    }
}
