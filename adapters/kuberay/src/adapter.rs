//! [`ClusterAdapter`] for KubeRay: each attempt is one RayJob.
//!
//! - Submit is idempotent: the RayJob's name is derived from the submission
//!   id, so a replay meets `409 AlreadyExists` and adopts the object (after
//!   checking its annotation names the same id).
//! - Cancel deletes the RayJob (KubeRay tears its cluster down with it) or,
//!   with `cancel: suspend`, suspends it. A deleted RayJob has no status to
//!   read, so the adapter remembers the ids it cancelled by deletion and
//!   reports them Stopped until their cleanup; after a broker restart such an
//!   id is NotFound, which the broker already treats as gone.
//! - An object being deleted (KubeRay's finalizer holds it briefly) counts as
//!   gone.
//! - Logs are the submitter pod's (K8sJobMode's `ray job submit` follows the
//!   job's log), else the head pod's.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kube::api::DynamicObject;
use raybroker_adapter::{
    AdapterError, Capabilities, CapacitySnapshot, ClusterAdapter, CreatedObject, CreatedObjects,
    ErrorKind, LogChunk, NodeCapacity, OwnedJob, RemoteState, RemoteStatus, SubmitAck,
    SubmitRequest,
};
use raybroker_core::FailureClass;
use tracing::instrument;

use crate::client::{KubeClient, RayKind};
use crate::config::{CancelMode, ConfigError, KubeRayClusterConfig, Mode};
use crate::convert::{self, capacity, errors, rayjob, RayJobStatus};

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
    last_nodes: Mutex<Option<Arc<Vec<NodeCapacity>>>>,
    /// Submission ids cancelled by deleting their RayJob, reported Stopped
    /// until cleaned up.
    cancelled: Mutex<HashSet<String>>,
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
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
            last_nodes: Mutex::new(None),
            cancelled: Mutex::new(HashSet::new()),
        })
    }

    /// The wire client, for tools and tests.
    pub fn client(&self) -> &KubeClient {
        &self.client
    }

    /// The RayJob of `submission_id` when it exists, is ours, and is not being deleted.
    async fn rayjob(&self, submission_id: &str) -> Result<Option<DynamicObject>, AdapterError> {
        let name = convert::object_name(submission_id);
        let object = self
            .client
            .get(RayKind::RayJob, &name)
            .await
            .map_err(api_error)?;
        Ok(object.filter(|o| {
            !is_being_deleted(o)
                && annotations(o)
                    .get(convert::ANNOTATION_SUBMISSION_ID)
                    .map(String::as_str)
                    == Some(submission_id)
        }))
    }

    async fn known_nodes(&self) -> Result<Arc<Vec<NodeCapacity>>, AdapterError> {
        if let Some(nodes) = lock(&self.last_nodes).clone() {
            return Ok(nodes);
        }
        self.snapshot().await?;
        Ok(lock(&self.last_nodes).clone().unwrap_or_default())
    }

    fn cancelled_status(&self, submission_id: &str) -> Option<RemoteStatus> {
        lock(&self.cancelled)
            .contains(submission_id)
            .then(|| RemoteStatus {
                state: RemoteState::Stopped,
                message: "cancelled: the RayJob was deleted".to_string(),
                exit_code: None,
                started_at_ms: None,
                ended_at_ms: None,
                failure: Some(FailureClass::Cancelled),
            })
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
        *lock(&self.last_nodes) = Some(Arc::new(capacity.clone()));
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
            self.known_nodes().await?
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
        if let Some(stopped) = self.cancelled_status(submission_id) {
            return Ok(stopped);
        }
        match self.rayjob(submission_id).await? {
            Some(object) => convert::remote_status(&job_status(&object)?),
            None => Ok(RemoteStatus::not_found()),
        }
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
            return Ok(());
        };
        let state = convert::remote_state(&job_status(&object)?);
        if state.is_some_and(RemoteState::is_final) {
            return Ok(());
        }
        let name = convert::object_name(submission_id);
        match self.config.cancel {
            CancelMode::Suspend => self.client.suspend(&name).await.map_err(api_error),
            CancelMode::Delete => {
                lock(&self.cancelled).insert(submission_id.to_string());
                self.client
                    .delete(RayKind::RayJob, &name)
                    .await
                    .map(|_| ())
                    .map_err(api_error)
            }
        }
    }

    #[instrument(skip(self), fields(cluster = %self.name))]
    async fn cleanup(&self, submission_id: &str) -> Result<(), AdapterError> {
        if self.rayjob(submission_id).await?.is_some() {
            self.client
                .delete(RayKind::RayJob, &convert::object_name(submission_id))
                .await
                .map_err(api_error)?;
        }
        lock(&self.cancelled).remove(submission_id);
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
            .filter(|job| !is_being_deleted(job))
            .filter_map(|job| {
                let state = match job_status(job).map(|s| convert::remote_state(&s)) {
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

#[async_trait]
impl CreatedObjects for KubeRayAdapter {
    async fn list_created(&self) -> Result<Vec<CreatedObject>, AdapterError> {
        let selector = convert::origin_selector(&self.config.origin);
        let namespace = &self.config.namespace;
        let mut out = Vec::new();
        for (kind, label) in [
            (RayKind::RayJob, "RayJob"),
            (RayKind::RayCluster, "RayCluster"),
        ] {
            for object in self.client.list(kind, &selector).await.map_err(api_error)? {
                out.extend(object.metadata.name.map(|name| CreatedObject {
                    kind: label.to_string(),
                    namespace: namespace.clone(),
                    name,
                }));
            }
        }
        for secret in self
            .client
            .list_secrets(&selector)
            .await
            .map_err(api_error)?
        {
            out.extend(secret.metadata.name.map(|name| CreatedObject {
                kind: "Secret".to_string(),
                namespace: namespace.clone(),
                name,
            }));
        }
        out.sort();
        Ok(out)
    }

    async fn delete_created(&self) -> Result<Vec<CreatedObject>, AdapterError> {
        let found = self.list_created().await?;
        let mut deleted = Vec::new();
        for object in found {
            let gone = match object.kind.as_str() {
                "RayJob" => self.client.delete(RayKind::RayJob, &object.name).await,
                "RayCluster" => self.client.delete(RayKind::RayCluster, &object.name).await,
                _ => self.client.delete_secret(&object.name).await,
            }
            .map_err(api_error)?;
            if gone {
                deleted.push(object);
            }
        }
        Ok(deleted)
    }
}
