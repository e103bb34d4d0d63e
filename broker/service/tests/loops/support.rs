//! The real dispatch and reconcile loops, driven one round at a time over
//! simulated clusters and the real Redis queue, all on one manual clock.
//!
//! Redis comes from `RAYBROKER_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6390`); every harness uses a key prefix of its own and
//! nothing is flushed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use raybroker::clusters::{ClusterMeta, ClusterRegistry};
use raybroker::loops::dispatch::RoundReport;
use raybroker::loops::{DispatchSettings, Dispatcher, ReconcileSettings, Reconciler};
use raybroker_adapter::ClusterAdapter;
use raybroker_core::{Bytes, GpuModel, Job, JobId, JobSpec, JobState, Quantity, TenantId};
use raybroker_placement::Policy;
use raybroker_queue::{testing, JobQueue, QueueConfig};
use raybroker_sim::{ManualClock, NodeShape, SimAdapter, SimClusterConfig};

/// The manual clock's start: far from the real clock, so any time taken
/// from the wall clock instead of the round's `now_ms` shows.
pub const START_MS: u64 = 1_000_000_000_000;
/// How long a dispatcher's lease lasts.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How long an attempt may be unknown or unreachable before it is lost.
pub const LOST_GRACE: Duration = Duration::from_secs(5);
/// The default wait before the first retry of an infrastructure failure.
pub const FIRST_INFRA_RETRY_WAIT: Duration = Duration::from_secs(5);
/// How old a snapshot may be before its cluster leaves placement.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(6);
/// The origin every harness cluster tags its jobs with.
pub const ORIGIN: &str = "loops-test";

/// One simulated cluster of a harness.
pub struct SimCluster {
    /// Its name.
    pub name: &'static str,
    /// Its placement tier.
    pub tier: u32,
    /// Its nodes.
    pub nodes: Vec<NodeShape>,
    /// Jobs it may hold pending beyond what starts now.
    pub pending_allowance: u32,
}

impl SimCluster {
    /// A tier-0 cluster with `nodes`, allowance 1.
    pub fn new(name: &'static str, nodes: Vec<NodeShape>) -> SimCluster {
        SimCluster {
            name,
            tier: 0,
            nodes,
            pending_allowance: 1,
        }
    }
}

/// `count` nodes with 8 CPUs, 32 GiB and `gpus` GPUs of `model` each.
pub fn gpu_nodes(count: u32, gpus: u64, model: &str) -> NodeShape {
    NodeShape::gpu(count, 8, Bytes(32 << 30), gpus, gpu(model))
}

/// `count` nodes with 8 CPUs and 32 GiB.
pub fn cpu_nodes(count: u32) -> NodeShape {
    NodeShape::cpu(count, 8, Bytes(32 << 30))
}

/// A GPU model by name.
pub fn gpu(model: &str) -> GpuModel {
    GpuModel::parse(model).expect("a valid GPU model in a test")
}

/// A one-CPU spec running `entrypoint`.
pub fn spec(entrypoint: &str) -> JobSpec {
    JobSpec {
        entrypoint: entrypoint.to_string(),
        ..JobSpec::default()
    }
}

/// A spec asking `gpus` whole GPUs of `model`.
pub fn gpu_spec(entrypoint: &str, gpus: u64, model: Option<&str>) -> JobSpec {
    let mut spec = spec(entrypoint);
    spec.resources.gpus = Quantity::whole(gpus);
    spec.resources.gpu_types = model.map(gpu).into_iter().collect();
    spec
}

/// The loops, the queue and the clusters of one test.
pub struct Harness {
    /// The time everyone reads.
    pub clock: Arc<ManualClock>,
    /// The real queue, under a fresh prefix.
    pub queue: JobQueue,
    /// The registry the loops use.
    pub registry: Arc<ClusterRegistry>,
    /// The real dispatch loop.
    pub dispatcher: Dispatcher,
    /// The real reconcile loop.
    pub reconciler: Reconciler,
    /// The tenant jobs are submitted for.
    pub tenant: TenantId,
    sims: BTreeMap<&'static str, SimAdapter>,
}

impl Harness {
    /// A harness over `clusters` whose jobs burst to a higher tier as soon
    /// as no lower one can start them (no wait bound, no quotas).
    pub fn new(label: &str, clusters: Vec<SimCluster>) -> Harness {
        let mut policy = Policy::default();
        policy.default_tenant.max_wait_ms = 0;
        Harness::with_policy(label, clusters, policy)
    }

    /// A harness over `clusters` whose dispatcher plans with `policy`.
    pub fn with_policy(label: &str, clusters: Vec<SimCluster>, policy: Policy) -> Harness {
        let clock = Arc::new(ManualClock::new(START_MS));
        let queue = JobQueue::new(
            testing::pool(&testing::redis_url()),
            QueueConfig {
                key_prefix: testing::unique_prefix(label),
                lease_ttl: LEASE_TTL,
                ..QueueConfig::default()
            },
        );
        let mut sims = BTreeMap::new();
        let mut entries: Vec<(ClusterMeta, Arc<dyn ClusterAdapter>)> = Vec::new();
        for cluster in clusters {
            let config = SimClusterConfig::new(ORIGIN, cluster.nodes);
            let sim = SimAdapter::new(cluster.name, config, clock.clone())
                .expect("a valid simulated cluster in a test");
            let meta = ClusterMeta {
                name: cluster.name.to_string(),
                kind: "simulated".to_string(),
                tier: cluster.tier,
                cost_per_gpu_hour: 1.0,
                labels: BTreeMap::new(),
                pending_allowance: cluster.pending_allowance,
            };
            entries.push((meta, Arc::new(sim.clone())));
            sims.insert(cluster.name, sim);
        }
        let registry = Arc::new(ClusterRegistry::new(
            entries,
            SNAPSHOT_MAX_AGE,
            Duration::from_secs(5),
        ));
        let dispatcher = Dispatcher::new(
            queue.clone(),
            registry.clone(),
            DispatchSettings {
                policy,
                ..DispatchSettings::default()
            },
        );
        let reconciler = Reconciler::new(
            queue.clone(),
            registry.clone(),
            ReconcileSettings {
                lost_grace: LOST_GRACE,
                ..ReconcileSettings::default()
            },
        );
        Harness {
            clock,
            queue,
            registry,
            dispatcher,
            reconciler,
            tenant: TenantId::new("robotics").expect("a valid tenant name"),
            sims,
        }
    }

    /// The simulated cluster `name`.
    pub fn sim(&self, name: &str) -> &SimAdapter {
        self.sims
            .get(name)
            .unwrap_or_else(|| panic!("no simulated cluster {name} in this harness"))
    }

    /// The manual clock's time.
    pub fn now(&self) -> u64 {
        use raybroker_sim::Clock;
        self.clock.now_ms()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) -> u64 {
        self.clock.advance(by)
    }

    /// Queues `spec` for the harness tenant now.
    pub async fn submit(&self, spec: JobSpec) -> JobId {
        self.submit_as(&self.tenant, spec).await
    }

    /// Queues `spec` for `tenant` now.
    pub async fn submit_as(&self, tenant: &TenantId, spec: JobSpec) -> JobId {
        let outcome = self
            .queue
            .submit(tenant, spec, self.now())
            .await
            .expect("submit to the test queue");
        outcome.job().id.clone()
    }

    /// The job as the queue has it.
    pub async fn job(&self, id: &JobId) -> Job {
        self.queue
            .get(id)
            .await
            .expect("read from the test queue")
            .unwrap_or_else(|| panic!("job {id} is not in the queue"))
    }

    /// Takes fresh snapshots of every cluster now.
    pub async fn refresh(&self) {
        self.registry.refresh(self.now()).await;
    }

    /// One dispatch round now.
    pub async fn dispatch(&self) -> RoundReport {
        self.dispatcher
            .round(self.now())
            .await
            .expect("a dispatch round against the test queue")
    }

    /// One reconcile round now.
    pub async fn reconcile(&self) {
        self.reconciler
            .round(self.now())
            .await
            .expect("a reconcile round against the test queue");
    }

    /// What the running broker does every tick: snapshots, dispatch, reconcile.
    pub async fn tick(&self) -> RoundReport {
        self.refresh().await;
        let report = self.dispatch().await;
        self.reconcile().await;
        report
    }

    /// Ids of jobs in `state`.
    pub async fn in_state(&self, state: JobState) -> Vec<JobId> {
        self.queue
            .ids_in_state(state, 1000)
            .await
            .expect("read from the test queue")
    }

    /// The job's kept log.
    pub async fn logs(&self, id: &JobId) -> String {
        self.queue
            .logs(id, 0)
            .await
            .expect("read logs from the test queue")
            .0
    }

    /// The submission id of the job's current attempt.
    pub async fn submission_id(&self, id: &JobId) -> String {
        let job = self.job(id).await;
        job.attempts
            .last()
            .map(|a| a.submission_id.clone())
            .unwrap_or_else(|| panic!("job {id} has no attempt yet"))
    }
}

/// Every recorded time is the manual clock's, never the wall clock's.
pub fn assert_times_from_the_clock(job: &Job, now_ms: u64) {
    for change in &job.history {
        assert!(
            (START_MS..=now_ms).contains(&change.at_ms),
            "{:?} -> {} at {} is outside the manual clock's {START_MS}..={now_ms}",
            change.from,
            change.to,
            change.at_ms
        );
    }
    for attempt in &job.attempts {
        for at in [Some(attempt.created_at_ms), attempt.submitted_at_ms]
            .into_iter()
            .flatten()
        {
            assert!((START_MS..=now_ms).contains(&at), "attempt time {at}");
        }
    }
}
