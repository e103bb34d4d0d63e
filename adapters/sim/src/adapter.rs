//! [`SimAdapter`]: the simulated cluster behind the
//! [`ClusterAdapter`] contract, with fault injection for tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use raybroker_adapter::{
    AdapterError, Capabilities, CapacitySnapshot, ClusterAdapter, ErrorKind, LogChunk, OwnedJob,
    RemoteState, RemoteStatus, SubmitAck, SubmitRequest,
};

use crate::clock::Clock;
use crate::cluster::{Cluster, NodeAllocation};
use crate::config::{ConfigError, SimClusterConfig};

/// What every adapter over one simulated cluster shares.
#[derive(Debug)]
struct Shared {
    /// The model; held only for the length of one synchronous step.
    cluster: Mutex<Cluster>,
    /// Where the model's time comes from.
    clock: Arc<dyn Clock>,
    /// While true, every adapter call fails as [`ErrorKind::Unavailable`].
    unreachable: AtomicBool,
}

/// A simulated cluster seen through one origin. Clones, and adapters made by
/// [`SimAdapter::with_origin`], share the same cluster.
#[derive(Clone, Debug)]
pub struct SimAdapter {
    name: String,
    origin: String,
    capabilities: Capabilities,
    version: String,
    shared: Arc<Shared>,
}

impl SimAdapter {
    /// A new cluster named `name`, empty of jobs, keeping `clock`'s time.
    pub fn new(
        name: impl Into<String>,
        config: SimClusterConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<SimAdapter, ConfigError> {
        config.validate()?;
        let cluster = Cluster::new(&config, clock.now_ms());
        Ok(SimAdapter {
            name: name.into(),
            origin: config.origin,
            capabilities: config.capabilities,
            version: config.version,
            shared: Arc::new(Shared {
                cluster: Mutex::new(cluster),
                clock,
                unreachable: AtomicBool::new(false),
            }),
        })
    }

    /// An adapter on the same cluster that tags its jobs with another
    /// origin (another broker sharing the cluster).
    pub fn with_origin(&self, origin: impl Into<String>) -> SimAdapter {
        SimAdapter {
            origin: origin.into(),
            ..self.clone()
        }
    }

    /// The origin this adapter tags jobs with.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Test helper: submits a job tagged with `origin` rather than ours, as
    /// another broker on the same cluster would.
    pub fn inject_foreign(
        &self,
        origin: &str,
        request: &SubmitRequest,
    ) -> Result<SubmitAck, AdapterError> {
        self.with_cluster(|cluster, now| cluster.submit(request, origin, now))
    }

    /// Fault injection: while true, every [`ClusterAdapter`] call on this
    /// cluster (through any origin) fails as [`ErrorKind::Unavailable`]; the
    /// cluster itself keeps running its jobs.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.shared.unreachable.store(unreachable, Ordering::SeqCst);
    }

    /// Fault injection: the cluster loses the job (its status becomes
    /// NotFound and its resources are free). Returns whether it knew it.
    pub fn forget(&self, submission_id: &str) -> bool {
        self.with_cluster(|cluster, now| cluster.forget(submission_id, now))
    }

    /// How many times `submission_id` started running on the cluster, for
    /// exactly-once checks (an adopted duplicate submit does not count).
    pub fn submissions_of(&self, submission_id: &str) -> u32 {
        self.with_cluster(|cluster, _| cluster.starts_of(submission_id))
    }

    /// Submission ids running now (any origin), in submission order.
    pub fn running_jobs(&self) -> Vec<String> {
        self.with_cluster(|cluster, now| cluster.in_state(RemoteState::Running, now))
    }

    /// Submission ids waiting for resources now (any origin), in submission order.
    pub fn pending_jobs(&self) -> Vec<String> {
        self.with_cluster(|cluster, now| cluster.in_state(RemoteState::Pending, now))
    }

    /// What the job holds on which nodes (empty unless running), or `None`
    /// when the cluster does not know it.
    pub fn allocation(&self, submission_id: &str) -> Option<Vec<NodeAllocation>> {
        self.with_cluster(|cluster, now| cluster.allocation(submission_id, now))
    }

    /// Runs one step of the model at the clock's time.
    fn with_cluster<T>(&self, step: impl FnOnce(&mut Cluster, u64) -> T) -> T {
        let now = self.shared.clock.now_ms();
        let mut cluster = self
            .shared
            .cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        step(&mut cluster, now)
    }

    /// Like [`Self::with_cluster`], unless the cluster is unreachable.
    fn call<T>(&self, step: impl FnOnce(&mut Cluster, u64) -> T) -> Result<T, AdapterError> {
        if self.shared.unreachable.load(Ordering::SeqCst) {
            return Err(AdapterError::new(
                ErrorKind::Unavailable,
                format!("simulated cluster {} is unreachable", self.name),
            ));
        }
        Ok(self.with_cluster(step))
    }
}

#[async_trait]
impl ClusterAdapter for SimAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn snapshot(&self) -> Result<CapacitySnapshot, AdapterError> {
        self.call(|cluster, now| cluster.snapshot(&self.version, now))
    }

    async fn submit(&self, request: &SubmitRequest) -> Result<SubmitAck, AdapterError> {
        let ack = self.call(|cluster, now| cluster.submit(request, &self.origin, now))??;
        tracing::debug!(cluster = %self.name, submission = %request.submission_id, ?ack, "simulated submit");
        Ok(ack)
    }

    async fn status(&self, submission_id: &str) -> Result<RemoteStatus, AdapterError> {
        self.call(|cluster, now| cluster.status(submission_id, now))
    }

    async fn logs(&self, submission_id: &str, cursor: u64) -> Result<LogChunk, AdapterError> {
        self.call(|cluster, now| cluster.logs(submission_id, cursor, now))?
    }

    async fn cancel(&self, submission_id: &str) -> Result<(), AdapterError> {
        self.call(|cluster, now| cluster.cancel(submission_id, now))
    }

    async fn cleanup(&self, submission_id: &str) -> Result<(), AdapterError> {
        self.call(|cluster, now| cluster.cleanup(submission_id, now))?
    }

    async fn list_owned(&self) -> Result<Vec<OwnedJob>, AdapterError> {
        self.call(|cluster, now| cluster.owned_by(&self.origin, now))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use raybroker_core::{Bytes, GpuModel, JobId, JobSpec, TenantId};

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::NodeShape;

    fn request(submission_id: &str, entrypoint: &str) -> SubmitRequest {
        SubmitRequest {
            submission_id: submission_id.to_string(),
            job_id: JobId::generate(1),
            tenant: TenantId::new("t").unwrap(),
            attempt: 1,
            spec: JobSpec {
                entrypoint: entrypoint.to_string(),
                ..JobSpec::default()
            },
            extra_env: Default::default(),
        }
    }

    fn sim(clock: &Arc<ManualClock>) -> SimAdapter {
        let config = SimClusterConfig::new(
            "ours",
            vec![NodeShape::gpu(
                1,
                8,
                Bytes(1 << 34),
                2,
                GpuModel::parse("L4").unwrap(),
            )],
        );
        SimAdapter::new("sim", config, clock.clone()).unwrap()
    }

    #[tokio::test]
    async fn unreachable_fails_every_call_but_time_goes_on() {
        let clock = Arc::new(ManualClock::new(0));
        let sim = sim(&clock);
        sim.submit(&request("a", "sleep 5")).await.unwrap();
        sim.set_unreachable(true);
        for err in [
            sim.snapshot().await.err(),
            sim.submit(&request("b", "sleep 1")).await.err(),
            sim.status("a").await.err(),
            sim.logs("a", 0).await.err(),
            sim.cancel("a").await.err(),
            sim.cleanup("a").await.err(),
            sim.list_owned().await.err(),
        ] {
            assert_eq!(err.map(|e| e.kind), Some(ErrorKind::Unavailable));
        }
        clock.advance(Duration::from_secs(6));
        sim.set_unreachable(false);
        let status = sim.status("a").await.unwrap();
        assert_eq!(status.state, RemoteState::Succeeded);
        assert_eq!(status.ended_at_ms, Some(5_000));
        assert_eq!(sim.submissions_of("b"), 0, "a refused submit must not run");
    }

    /// The submission ids `adapter` lists as its own.
    async fn owned_ids(adapter: &SimAdapter) -> Vec<String> {
        adapter
            .list_owned()
            .await
            .unwrap()
            .into_iter()
            .map(|job| job.submission_id)
            .collect()
    }

    #[tokio::test]
    async fn origins_share_the_cluster_but_not_the_listing() {
        let clock = Arc::new(ManualClock::new(0));
        let ours = sim(&clock);
        let theirs = ours.with_origin("theirs");
        ours.submit(&request("mine", "sleep 5")).await.unwrap();
        ours.inject_foreign("theirs", &request("foreign", "sleep 5"))
            .unwrap();
        assert_eq!(owned_ids(&ours).await, ["mine"]);
        assert_eq!(owned_ids(&theirs).await, ["foreign"]);
        assert_eq!(ours.running_jobs(), ["mine", "foreign"]);
        assert_eq!(
            theirs.submit(&request("mine", "sleep 5")).await.unwrap(),
            SubmitAck::AlreadyExists,
            "submission ids are the cluster's, whoever submits"
        );
    }

    #[tokio::test]
    async fn forgotten_jobs_are_not_found_and_free_their_resources() {
        let clock = Arc::new(ManualClock::new(0));
        let sim = sim(&clock);
        let mut two_gpus = request("big", "sleep 100");
        two_gpus.spec.resources.gpus = raybroker_core::Quantity::whole(2);
        let mut waiting = request("next", "sleep 100");
        waiting.spec.resources.gpus = raybroker_core::Quantity::whole(1);
        sim.submit(&two_gpus).await.unwrap();
        sim.submit(&waiting).await.unwrap();
        assert_eq!(sim.pending_jobs(), ["next"]);
        assert!(sim.forget("big"));
        assert!(!sim.forget("big"));
        assert_eq!(
            sim.status("big").await.unwrap().state,
            RemoteState::NotFound
        );
        assert_eq!(sim.running_jobs(), ["next"]);
        assert_eq!(sim.submissions_of("big"), 1);
        assert_eq!(
            sim.submit(&two_gpus).await.unwrap(),
            SubmitAck::Created,
            "a lost id may be submitted again"
        );
    }
}
