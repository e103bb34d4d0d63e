//! [`ClusterAdapter`] for KubeRay: each attempt is one RayJob.
//!
//! - Submit is idempotent: the RayJob's name is derived from the submission
//!   id, so a replay meets `409 AlreadyExists` and adopts the object (after
//!   checking its annotation names the same id).
//! - Cancel first records itself on the RayJob (an annotation, see
//!   [`convert::cancel`]), then deletes the RayJob (KubeRay tears its cluster
//!   down with it; the record's finalizer keeps the object readable until
//!   cleanup) or, with `cancel: suspend`, suspends it in the same write. No
//!   broker instance needs memory to report the cancel: a restarted one
//!   reads it back.
//! - An object being deleted without the broker's record (someone else
//!   deleted it) counts as gone.
//! - Logs are the submitter pod's (K8sJobMode's `ray job submit` follows the
//!   job's log), else the head pod's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kube::api::DynamicObject;
use raybroker_adapter::{
    AdapterError, Capabilities, CapacitySnapshot, ClusterAdapter, CreatedObjects, ErrorKind,
    LogChunk, NodeCache, OwnedJob, RemoteState, RemoteStatus, SubmitAck, SubmitRequest,
};
use serde_json::Value;
use tracing::instrument;

use crate::client::{KubeClient, RayKind};
use crate::config::{CancelMode, ConfigError, KubeRayClusterConfig, Mode};
use crate::convert::{self, cancel, capacity, errors, rayjob, RayJobStatus};

mod created;

/// A KubeRay cluster reached through the Kubernetes API.
#[derive(Debug)]
pub struct KubeRayAdapter {
    /// The cluster's name in the broker's config (for logs and spans).
    name: String,
    /// Where to reach it and what to create.
    config: KubeRayClusterConfig,
    /// Wire calls.
    client: KubeClient,
    /// Nodes of the last snapshot, to pick a worker group with free GPUs.
    last_nodes: NodeCache,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn api_error(error: kube::Error) -> AdapterError {
    errors::adapter_error(&error)
}

/// The parsed `status` of a RayJob (an absent status is a job KubeRay has not
/// looked at yet).
fn job_status(object: &DynamicObject) -> Result<RayJobStatus, AdapterError> {
    match object.data.get("status") {
        None | Some(serde_json::Value::Null) => Ok(RayJobStatus::default()),
        Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
            AdapterError::new(
                ErrorKind::Internal,
                format!("unreadable RayJob status: {e}"),
            )
        }),
    }
}

fn is_being_deleted(object: &DynamicObject) -> bool {
    object.metadata.deletion_timestamp.is_some()
}

fn annotations(object: &DynamicObject) -> BTreeMap<String, String> {
    object.metadata.annotations.clone().unwrap_or_default()
}

impl KubeRayAdapter {
    /// An adapter for the cluster `name` (checks the config; connects on first use).
    pub fn new(
        name: impl Into<String>,
        config: KubeRayClusterConfig,
    ) -> Result<KubeRayAdapter, ConfigError> {
        config.validate()?;
        Ok(KubeRayAdapter {
            name: name.into(),
            client: KubeClient::new(&config),
            config,
            last_nodes: NodeCache::new(),
        })
    }

    /// The wire client, for tools and tests.
    pub fn client(&self) -> &KubeClient {
        &self.client
    }

    /// The RayJob of `submission_id` when it exists and is ours, also while
    /// it is being deleted.
    async fn find(&self, submission_id: &str) -> Result<Option<DynamicObject>, AdapterError> {
        let name = convert::object_name(submission_id);
        let object = self
            .client
            .get(RayKind::RayJob, &name)
            .await
            .map_err(api_error)?;
        Ok(object.filter(|o| {
            annotations(o)
                .get(convert::ANNOTATION_SUBMISSION_ID)
                .map(String::as_str)
                == Some(submission_id)
        }))
    }

    /// The RayJob of `submission_id` when it exists, is ours, and is not being deleted.
    async fn rayjob(&self, submission_id: &str) -> Result<Option<DynamicObject>, AdapterError> {
        Ok(self
            .find(submission_id)
            .await?
            .filter(|o| !is_being_deleted(o)))
    }

    /// Applies the merge patch `build` makes from the RayJob `name` as it is
    /// now; when a concurrent write makes it conflict (409), reads it again
    /// and retries. A RayJob that is gone, or nothing to patch, is fine.
    async fn patch_current(
        &self,
        name: &str,
        build: impl Fn(&DynamicObject) -> Option<Value>,
    ) -> Result<(), AdapterError> {
        const TRIES: usize = 3;
        for _ in 0..TRIES {
            let current = self
                .client
                .get(RayKind::RayJob, name)
                .await
                .map_err(api_error)?;
            let Some(patch) = current.as_ref().and_then(&build) else {
                return Ok(());
            };
            match self.client.merge_patch(RayKind::RayJob, name, &patch).await {
                Ok(_) => return Ok(()),
                Err(e) if errors::is_conflict(&e) => continue,
                Err(e) if errors::is_not_found(&e) => return Ok(()),
                Err(e) => return Err(api_error(e)),
            }
        }
        Err(AdapterError::new(
            ErrorKind::Unavailable,
            format!("RayJob {name} changed under each of {TRIES} conditional writes"),
        ))
    }

    /// Takes the cancel record's finalizer off the RayJob `name`, so that a
    /// deletion completes.
    async fn release(&self, name: &str) -> Result<(), AdapterError> {
        self.patch_current(name, cancel::release_patch).await
    }

    /// The pod whose log is the job's: the newest submitter pod, else the head.
    async fn log_pod(&self, object: &DynamicObject) -> Result<Option<String>, AdapterError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let newest = |mut pods: Vec<k8s_openapi::api::core::v1::Pod>| {
            pods.sort_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
            });
            pods.pop().and_then(|p| p.metadata.name)
        };
        let submitters = self
            .client
            .pods(&format!("job-name={name}"))
            .await
            .map_err(api_error)?;
        if let Some(pod) = newest(submitters) {
            return Ok(Some(pod));
        }
        let cluster = job_status(object)?.ray_cluster_name;
        if cluster.is_empty() {
            return Ok(None);
        }
        let heads = self
            .client
            .pods(&format!("ray.io/cluster={cluster},ray.io/node-type=head"))
            .await
            .map_err(api_error)?;
        Ok(newest(heads))
    }
}

#[async_trait]
impl ClusterAdapter for KubeRayAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        let ephemeral = self.config.mode == Mode::Ephemeral;
        Capabilities {
            // Pods get whole GPUs; a shared cluster's Ray can split them.
            fractional_gpus: !ephemeral,
            // An ephemeral cluster gets `nodes` workers of the job's shape.
            multi_node: ephemeral,
            gpu_models: true,
            custom_resources: true,
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn snapshot(&self) -> Result<CapacitySnapshot, AdapterError> {
        let selector = convert::origin_selector(&self.config.origin);
        let (nodes, pods, jobs) = tokio::try_join!(
            self.client.nodes(),
            self.client.scheduled_pods(),
            self.client.list(RayKind::RayJob, &selector),
        )
        .map_err(api_error)?;
        let capacity = capacity::capacity_nodes(&self.config, &nodes, &pods);
        let pending = jobs
            .iter()
            .filter(|job| {
                job_status(job).ok().and_then(|s| convert::remote_state(&s))
                    == Some(RemoteState::Pending)
            })
            .count();
        self.last_nodes.remember(capacity.clone());
        Ok(CapacitySnapshot {
            taken_at_ms: now_ms(),
            nodes: capacity,
            pending_jobs: u32::try_from(pending).unwrap_or(u32::MAX),
            version: "kuberay ray.io/v1".to_string(),
        })
    }

    #[instrument(
        skip(self, request),
        fields(cluster = %self.name, submission_id = %request.submission_id)
    )]
    async fn submit(&self, request: &SubmitRequest) -> Result<SubmitAck, AdapterError> {
        let resources = &request.spec.resources;
        rayjob::check_request(&self.config, resources)?;
        let nodes = if resources.gpus.is_zero() || self.config.mode == Mode::Shared {
            Arc::new(Vec::new())
        } else {
            self.last_nodes.get_or_snapshot(|| self.snapshot()).await?
        };
        let group = rayjob::choose_group(&self.config, resources, &nodes)?;
        let object = rayjob::build(request, &self.config, group)?;
        match self.client.create(RayKind::RayJob, &object).await {
            Ok(_) => Ok(SubmitAck::Created),
            Err(error) if errors::is_already_exists(&error) => {
                match self.rayjob(&request.submission_id).await? {
                    Some(_) => Ok(SubmitAck::AlreadyExists),
                    None => Err(AdapterError::new(
                        ErrorKind::Rejected,
                        format!(
                            "RayJob {} exists but is not submission {} (or is being deleted)",
                            convert::object_name(&request.submission_id),
                            request.submission_id
                        ),
                    )),
                }
            }
            Err(error) => Err(api_error(error)),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn status(&self, submission_id: &str) -> Result<RemoteStatus, AdapterError> {
        let Some(object) = self.find(submission_id).await? else {
            return Ok(RemoteStatus::not_found());
        };
        let cancelled = cancel::is_recorded(&object);
        if is_being_deleted(&object) {
            // Deleted by the broker's cancel (its record says so), else gone.
            return Ok(if cancelled {
                cancel::deleted_status(&annotations(&object))
            } else {
                RemoteStatus::not_found()
            });
        }
        convert::remote_status(&job_status(&object)?, cancelled)
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn logs(&self, submission_id: &str, cursor: u64) -> Result<LogChunk, AdapterError> {
        let Some(object) = self.rayjob(submission_id).await? else {
            return Err(AdapterError::new(
                ErrorKind::NotFound,
                format!("no RayJob for submission {submission_id}"),
            ));
        };
        let Some(pod) = self.log_pod(&object).await? else {
            return Ok(LogChunk {
                text: String::new(),
                next_cursor: cursor,
            });
        };
        match self.client.pod_log(&pod).await {
            Ok(whole) => Ok(convert::log_suffix(&whole, cursor)),
            // A pod that has not started has no log yet.
            Err(kube::Error::Api(status)) if status.code == 400 || status.code == 404 => {
                Ok(LogChunk {
                    text: String::new(),
                    next_cursor: cursor,
                })
            }
            Err(error) => Err(api_error(error)),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn cancel(&self, submission_id: &str) -> Result<(), AdapterError> {
        let Some(object) = self.rayjob(submission_id).await? else {
            return Ok(()); // gone, or already being deleted
        };
        let state = convert::remote_state(&job_status(&object)?);
        if state.is_some_and(RemoteState::is_final) {
            return Ok(());
        }
        // The record first (with `cancel: suspend` it also stops the job), so
        // that any broker instance reads the cancel back; then the stop.
        let name = convert::object_name(submission_id);
        let mode = self.config.cancel;
        let at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        self.patch_current(&name, |current| cancel::record_patch(current, mode, &at))
            .await?;
        match mode {
            CancelMode::Suspend => Ok(()),
            CancelMode::Delete => self
                .client
                .delete_foreground(RayKind::RayJob, &name)
                .await
                .map(|_| ())
                .map_err(api_error),
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn cleanup(&self, submission_id: &str) -> Result<(), AdapterError> {
        let Some(object) = self.find(submission_id).await? else {
            return Ok(());
        };
        let name = convert::object_name(submission_id);
        if !is_being_deleted(&object) {
            self.client
                .delete(RayKind::RayJob, &name)
                .await
                .map_err(api_error)?;
        }
        // A cancelled RayJob's record holds it until now.
        if cancel::holds(&object) {
            self.release(&name).await?;
        }
        Ok(())
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn list_owned(&self) -> Result<Vec<OwnedJob>, AdapterError> {
        let selector = convert::origin_selector(&self.config.origin);
        let jobs = self
            .client
            .list(RayKind::RayJob, &selector)
            .await
            .map_err(api_error)?;
        Ok(jobs
            .iter()
            .filter_map(|job| {
                let state = match job_status(job).map(|s| convert::remote_state(&s)) {
                    // Cancelled and deleted, held by the record until cleanup
                    // (which garbage collection does); another deletion is gone.
                    _ if is_being_deleted(job) => {
                        if !cancel::holds(job) {
                            return None;
                        }
                        RemoteState::Stopped
                    }
                    Ok(Some(state)) => state,
                    _ => {
                        tracing::warn!(cluster = %self.name, name = ?job.metadata.name,
                            "skipping a RayJob of ours with an unreadable status");
                        return None;
                    }
                };
                let labels = job.metadata.labels.clone().unwrap_or_default();
                convert::owned_job(&labels, &annotations(job), state)
            })
            .collect())
    }

    fn created_objects(&self) -> Option<&dyn CreatedObjects> {
        Some(self)
    }
}
