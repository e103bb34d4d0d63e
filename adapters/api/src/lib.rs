//! The contract every cluster backend implements.
//!
//! The broker decides; adapters report and execute (Armada's scheduler and
//! executor split). An adapter answers what a cluster has ([`ClusterAdapter::snapshot`]),
//! runs what it is told ([`ClusterAdapter::submit`]), and reports on it. Every
//! remote mutation is keyed by a submission id the broker persisted before the
//! call, so replaying a call after a crash is harmless: a duplicate submit is
//! adopted, a cancel of a finished job is fine, and a status of an unknown id
//! is [`RemoteState::NotFound`], not an error.
//!
//! Everything an adapter creates is tagged with the broker's origin, so
//! [`ClusterAdapter::list_owned`] can find it again for reconciliation and
//! garbage collection. The shared conformance suite (`adapters/conformance`)
//! checks each adapter against this contract.

pub mod config;
mod created;
mod node_cache;
mod runtime_env;

pub use created::{CreatedObject, CreatedObjects};
pub use node_cache::NodeCache;

use std::collections::BTreeMap;

use async_trait::async_trait;
use raybroker_core::{
    Bytes, FailureClass, GpuModel, JobId, JobSpec, Quantity, Resources, TenantId,
};
use serde::{Deserialize, Serialize};

/// What a backend can honour of a job's resource request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// GPUs below one (several trials per GPU) are honoured.
    pub fractional_gpus: bool,
    /// Jobs spanning several nodes, started together, are honoured.
    pub multi_node: bool,
    /// The GPU model a job asks for is enforced (not just counted).
    pub gpu_models: bool,
    /// Custom resources are honoured.
    pub custom_resources: bool,
}

impl Capabilities {
    /// Why this backend cannot run `resources` at all, or `None` when it can.
    pub fn refuses(&self, resources: &Resources) -> Option<String> {
        if !self.fractional_gpus && !resources.gpus.is_whole() {
            return Some(format!(
                "this backend allocates whole GPUs only; {} GPUs would need sharing",
                resources.gpus
            ));
        }
        if !self.multi_node && resources.nodes > 1 {
            return Some(format!(
                "this backend runs single-node jobs only; the job asks for {} nodes",
                resources.nodes
            ));
        }
        if !self.custom_resources && !resources.custom.is_empty() {
            return Some("this backend does not support custom resources".to_string());
        }
        None
    }
}

/// Resources of one node, or free amounts of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    /// CPUs.
    pub cpus: Quantity,
    /// Memory.
    pub memory: Bytes,
    /// GPUs.
    pub gpus: Quantity,
    /// Custom resources by name.
    pub custom: BTreeMap<String, Quantity>,
}

/// One node of a cluster as the adapter last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCapacity {
    /// The node's id on the cluster.
    pub id: String,
    /// The GPU model of the node's GPUs, when it has any and the model is known.
    pub gpu_model: Option<GpuModel>,
    /// What the node has.
    pub total: NodeResources,
    /// What is free now.
    pub free: NodeResources,
}

/// A cluster's capacity at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacitySnapshot {
    /// When it was taken, ms since the Unix epoch; placement ignores stale ones.
    pub taken_at_ms: u64,
    /// Live nodes only.
    pub nodes: Vec<NodeCapacity>,
    /// Jobs the cluster holds that have not started (admission control).
    pub pending_jobs: u32,
    /// The backend's version, for display (e.g. `ray 2.31.0`).
    pub version: String,
}

/// Everything an adapter needs to start one attempt of a job.
#[derive(Clone, Debug)]
pub struct SubmitRequest {
    /// The id the attempt is submitted under (persisted by the broker first).
    pub submission_id: String,
    /// The broker's job.
    pub job_id: JobId,
    /// The job's tenant.
    pub tenant: TenantId,
    /// Which attempt this is.
    pub attempt: u32,
    /// What to run.
    pub spec: JobSpec,
    /// Environment the broker adds (trace context, broker endpoints).
    pub extra_env: BTreeMap<String, String>,
}

/// The answer to a submit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitAck {
    /// The cluster accepted a new job.
    Created,
    /// The cluster already had this submission id: a replay, adopted.
    AlreadyExists,
}

/// Where a job is on its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteState {
    /// Accepted, not started.
    Pending,
    /// Running.
    Running,
    /// Finished with success.
    Succeeded,
    /// Finished with failure.
    Failed,
    /// Stopped on request.
    Stopped,
    /// The cluster does not know the id (never submitted, or forgotten).
    NotFound,
}

impl RemoteState {
    /// True once the job will not change on the cluster.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RemoteState::Succeeded | RemoteState::Failed | RemoteState::Stopped
        )
    }
}

/// A job's status on its cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStatus {
    /// The state.
    pub state: RemoteState,
    /// The cluster's own words.
    pub message: String,
    /// The entrypoint's exit code, once known.
    pub exit_code: Option<i32>,
    /// When it started, ms since the epoch.
    pub started_at_ms: Option<u64>,
    /// When it ended, ms since the epoch.
    pub ended_at_ms: Option<u64>,
    /// Why a failed or stopped attempt ended, as far as the backend can tell
    /// (`None` while it runs, on success, or when the backend cannot say).
    #[serde(default)]
    pub failure: Option<FailureClass>,
}

impl RemoteStatus {
    /// The status of an id the cluster does not know.
    pub fn not_found() -> RemoteStatus {
        RemoteStatus {
            state: RemoteState::NotFound,
            message: "the cluster does not know this job".to_string(),
            exit_code: None,
            started_at_ms: None,
            ended_at_ms: None,
            failure: None,
        }
    }
}

/// A slice of a job's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    /// The new text since the cursor passed in.
    pub text: String,
    /// Pass back to get what comes after (a byte offset into the whole log).
    pub next_cursor: u64,
}

/// A job this broker created on the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedJob {
    /// Its submission id.
    pub submission_id: String,
    /// The broker job it belongs to, as tagged on the cluster.
    pub job_id: Option<JobId>,
    /// Its attempt, as tagged.
    pub attempt: Option<u32>,
    /// Its state there.
    pub state: RemoteState,
}

/// What kind of failure an adapter call met; the broker maps kinds to actions
/// (retry later, take the cluster out of placement, fail the job) in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The cluster could not be reached or answered 5xx.
    Unavailable,
    /// The call ran out of time.
    Timeout,
    /// The cluster refused the broker's credentials.
    Unauthorized,
    /// The cluster refused the request itself (bad spec, impossible shape).
    Rejected,
    /// The object does not exist.
    NotFound,
    /// Anything else: a bug or an answer the adapter does not understand.
    Internal,
}

impl ErrorKind {
    /// True when trying again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

/// A failed adapter call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct AdapterError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Details for people.
    pub message: String,
}

impl AdapterError {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> AdapterError {
        AdapterError {
            kind,
            message: message.into(),
        }
    }
}

/// One cluster backend. Implementations are cheap to share (`Arc<dyn ClusterAdapter>`).
#[async_trait]
pub trait ClusterAdapter: Send + Sync {
    /// The cluster's configured name.
    fn name(&self) -> &str;

    /// What this backend can honour.
    fn capabilities(&self) -> Capabilities;

    /// What the cluster has and has free now.
    async fn snapshot(&self) -> Result<CapacitySnapshot, AdapterError>;

    /// Starts an attempt; a duplicate submission id is adopted as
    /// [`SubmitAck::AlreadyExists`], never run twice.
    async fn submit(&self, request: &SubmitRequest) -> Result<SubmitAck, AdapterError>;

    /// The attempt's status; an unknown id is [`RemoteState::NotFound`].
    async fn status(&self, submission_id: &str) -> Result<RemoteStatus, AdapterError>;

    /// Log text after `cursor` (0 for the start).
    async fn logs(&self, submission_id: &str, cursor: u64) -> Result<LogChunk, AdapterError>;

    /// Stops the attempt wherever it is; stopping a finished or unknown one is fine.
    async fn cancel(&self, submission_id: &str) -> Result<(), AdapterError>;

    /// Removes what the attempt left on the cluster, once its results are kept.
    async fn cleanup(&self, submission_id: &str) -> Result<(), AdapterError>;

    /// Every job on the cluster tagged with this broker's origin.
    async fn list_owned(&self) -> Result<Vec<OwnedJob>, AdapterError>;

    /// The [`CreatedObjects`] capability, for backends that have it.
    fn created_objects(&self) -> Option<&dyn CreatedObjects> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_explain_refusals() {
        let whole_only = Capabilities {
            fractional_gpus: false,
            multi_node: true,
            gpu_models: true,
            custom_resources: true,
        };
        let shared = Resources {
            gpus: Quantity::from_units(2_500),
            ..Resources::default()
        };
        assert!(whole_only.refuses(&shared).unwrap().contains("whole GPUs"));
        let two_nodes = Resources {
            nodes: 2,
            ..Resources::default()
        };
        let single = Capabilities {
            multi_node: false,
            ..whole_only.clone()
        };
        assert!(single.refuses(&two_nodes).unwrap().contains("2 nodes"));
        assert_eq!(whole_only.refuses(&Resources::default()), None);
    }

    #[test]
    fn only_unavailable_and_timeout_are_transient() {
        assert!(ErrorKind::Unavailable.is_transient());
        assert!(ErrorKind::Timeout.is_transient());
        assert!(!ErrorKind::Rejected.is_transient());
        assert!(!ErrorKind::Unauthorized.is_transient());
    }
}
