//! The dispatch loop: decides where queued jobs go and sends them there.
//!
//! Each round: return expired leases to the queue, look at the head of every
//! tenant's queue, count what each tenant has in flight, ask placement for
//! one plan over all of them (quotas, fair share, tiers), lease only the jobs
//! that can start (waiting jobs are not churned through `dispatching`), record
//! the attempt, then submit it. Admission control lives in placement: a
//! cluster gets no more than it can start now plus its pending allowance, so
//! the queue stays in the broker rather than on a Ray head.
//!
//! A retried job waits out its backoff (`failover.not_before_ms`) and avoids
//! the clusters its earlier attempts failed on while any other cluster could
//! run it; when none could, it goes back to them rather than failing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raybroker_adapter::{ErrorKind, SubmitAck, SubmitRequest};
use raybroker_core::{Attempt, FailureClass, Job, JobId, TenantId};
use raybroker_placement::{plan_with_releases, PendingJob, Policy, Problem, WaitReason};
use raybroker_queue::{JobQueue, Lease, PeekCache, QueueError};
use tokio::sync::Mutex;

use super::usage::InFlight;

use crate::clusters::{CallError, ClusterRegistry};
use crate::raystore::delivery::PackageDelivery;

/// How the dispatch loop behaves.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Pause between rounds.
    pub tick: Duration,
    /// Jobs looked at per tenant per round (the head of its queue).
    pub peek_per_tenant: usize,
    /// Longest wait for one submit call.
    pub submit_timeout: Duration,
    /// Tenants' weights, quotas and bursting, aging and reservations.
    pub policy: Policy,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            tick: Duration::from_millis(200),
            peek_per_tenant: raybroker_placement::MAX_HEAD_PER_TENANT,
            submit_timeout: Duration::from_secs(20),
            policy: Policy::default(),
        }
    }
}

/// What one round did, for logs, metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Attempts a cluster accepted (new or adopted).
    pub submitted: usize,
    /// Jobs that can run somewhere but not now.
    pub waiting: usize,
    /// Jobs failed because no cluster could ever run them, or one refused them.
    pub failed: usize,
    /// Jobs given back to the queue after a cluster call failed.
    pub released: usize,
}

/// What the round decided for one job before leasing it.
enum Choice {
    /// Send a new attempt to this cluster; the job waited this long.
    New(String, Duration),
    /// Re-send the recorded, unconfirmed attempt (a dispatcher died mid-submit).
    Replay(Attempt),
    /// No cluster could ever run it.
    Fail(String),
}

/// The dispatch loop's state.
pub struct Dispatcher {
    queue: JobQueue,
    clusters: Arc<ClusterRegistry>,
    settings: DispatchSettings,
    /// Copies a job's uploaded packages to its cluster before the submit
    /// (jobs from the Ray Jobs API); `None`: jobs name no uploaded packages.
    packages: Option<Arc<PackageDelivery>>,
    /// Gives every attempt its trace context and telemetry token (`None`:
    /// attempts get no extra environment).
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// In-flight jobs' demand by id, so a round reads only jobs new in flight.
    in_flight: Mutex<InFlight>,
    /// The queue heads read in earlier rounds: a round reads whole only the
    /// jobs that are new or changed (a deep queue is mostly the same jobs).
    peek_cache: Mutex<PeekCache>,
    /// Retried jobs that no cluster outside their excluded ones can run:
    /// planned without the exclusion (in memory; a restart only costs one
    /// round).
    exclusion_lifted: std::sync::Mutex<HashSet<JobId>>,
    /// Tenants whose queue depth was last reported non-zero.
    depth_reported: std::sync::Mutex<HashSet<TenantId>>,
}

impl Dispatcher {
    /// A dispatcher over the queue and clusters.
    pub fn new(
        queue: JobQueue,
        clusters: Arc<ClusterRegistry>,
        settings: DispatchSettings,
    ) -> Dispatcher {
        Dispatcher {
            queue,
            clusters,
            settings,
            packages: None,
            telemetry: None,
            in_flight: Mutex::new(InFlight::default()),
            peek_cache: Mutex::new(PeekCache::new()),
            exclusion_lifted: std::sync::Mutex::new(HashSet::new()),
            depth_reported: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// Delivers uploaded packages with `packages` before every submit.
    pub fn with_packages(mut self, packages: Arc<PackageDelivery>) -> Dispatcher {
        self.packages = Some(packages);
        self
    }

    /// Gives every attempt the environment `telemetry` makes (trace
    /// context, where to send OTLP data and the job's token).
    pub fn with_telemetry(mut self, telemetry: Arc<crate::telemetry::Telemetry>) -> Dispatcher {
        self.telemetry = Some(telemetry);
        self
    }

    /// Runs rounds until `shutdown` turns true.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            match self.round(super::now_ms()).await {
                Ok(report) if report != RoundReport::default() => {
                    tracing::debug!(?report, "dispatch round")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "dispatch round failed"),
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(self.settings.tick) => {}
            }
        }
    }

    /// One round over every tenant with queued jobs: one plan over the
    /// heads of all tenants' queues.
    pub async fn round(&self, now_ms: u64) -> Result<RoundReport, QueueError> {
        let mut report = RoundReport::default();
        let reclaimed = self.queue.reclaim_expired(now_ms).await?;
        if !reclaimed.is_empty() {
            tracing::info!(
                count = reclaimed.len(),
                "reclaimed jobs from expired leases"
            );
        }
        let views = self.clusters.views(now_ms);
        let (usage, releases) = {
            let mut in_flight = self.in_flight.lock().await;
            let in_flight = in_flight.refresh(&self.queue).await?;
            (in_flight.usage(&views), in_flight.releases(&views, now_ms))
        };
        let tenants = self.queue.ready_tenants().await?;
        self.report_queue_depth(&tenants).await?;
        let lifted = self
            .exclusion_lifted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut excluded: HashSet<String> = HashSet::new();
        let mut choices: HashMap<TenantId, HashMap<JobId, Choice>> = HashMap::new();
        let mut pending: Vec<PendingJob> = Vec::new();
        let mut queued: HashMap<String, (TenantId, JobId)> = HashMap::new();
        let mut peek_cache = self.peek_cache.lock().await;
        for tenant in &tenants {
            let jobs = self
                .queue
                .peek_cached(tenant, self.settings.peek_per_tenant, &mut peek_cache)
                .await?;
            for job in jobs {
                // A recorded, unconfirmed attempt is re-sent where it was
                // recorded, bypassing placement.
                if let Some(attempt) = unconfirmed_attempt(&job) {
                    match views.iter().find(|v| v.name == attempt.cluster) {
                        Some(view) if view.fresh => {
                            choices
                                .entry(tenant.clone())
                                .or_default()
                                .insert(job.id.clone(), Choice::Replay(attempt.clone()));
                            continue;
                        }
                        Some(_) => {
                            report.waiting += 1;
                            continue;
                        }
                        None => {} // the cluster was removed: place a new attempt
                    }
                }
                if job.failover.not_before_ms.is_some_and(|at| at > now_ms) {
                    report.waiting += 1; // a retry waiting out its backoff
                    continue;
                }
                let mut candidate = PendingJob::from_job(&job);
                if !job.failover.excluded_clusters.is_empty()
                    && !lifted.contains(&job.id)
                    && another_cluster_allowed(&job, &views)
                {
                    let denied = &mut candidate.placement.denied_clusters;
                    for cluster in &job.failover.excluded_clusters {
                        if !denied.contains(cluster) {
                            denied.push(cluster.clone());
                        }
                    }
                    excluded.insert(job.id.to_string());
                }
                pending.push(candidate);
                queued.insert(job.id.to_string(), (tenant.clone(), job.id.clone()));
            }
        }
        peek_cache.end_round();
        drop(peek_cache);
        let problem = Problem {
            now_ms,
            jobs: &pending,
            clusters: &views,
            policy: &self.settings.policy,
            usage: &usage,
        };
        let plan = plan_with_releases(&problem, &releases);
        let mut decided = 0;
        for placed in &plan.placed {
            let Some((tenant, id)) = queued.get(&placed.job_id) else {
                continue;
            };
            if let Some(job) = pending.iter().find(|j| j.id == placed.job_id) {
                // Later rounds see the capacity as used until the next snapshot.
                self.clusters
                    .reserve(&placed.cluster, &job.resources, &placed.nodes);
            }
            let waited = pending
                .iter()
                .find(|j| j.id == placed.job_id)
                .map_or(0, |j| j.waited_ms(now_ms));
            choices.entry(tenant.clone()).or_default().insert(
                id.clone(),
                Choice::New(placed.cluster.clone(), Duration::from_millis(waited)),
            );
            decided += 1;
        }
        for waiting in &plan.waiting {
            if !matches!(waiting.reason, WaitReason::NeverFits { .. }) {
                continue;
            }
            let Some((tenant, id)) = queued.get(&waiting.job_id) else {
                continue;
            };
            if excluded.contains(&waiting.job_id) {
                // Only the clusters it failed on could run it: go back to
                // them (next round) rather than fail the job.
                self.exclusion_lifted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone());
                continue;
            }
            choices
                .entry(tenant.clone())
                .or_default()
                .insert(id.clone(), Choice::Fail(waiting.reason.to_string()));
            decided += 1;
        }
        report.waiting += pending.len().saturating_sub(decided);
        for tenant in &tenants {
            let Some(mut choices) = choices.remove(tenant) else {
                continue;
            };
            let ids: Vec<JobId> = choices.keys().cloned().collect();
            for lease in self.queue.lease_ids(tenant, &ids, now_ms).await? {
                let Some(choice) = choices.remove(&lease.job.id) else {
                    continue;
                };
                match self.dispatch(&lease, choice, now_ms).await {
                    Ok(outcome) => outcome.count(&mut report),
                    Err(QueueError::StaleLease(id)) => {
                        tracing::warn!(job = %id, "lease lost during dispatch")
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(report)
    }

    async fn dispatch(
        &self,
        lease: &Lease,
        choice: Choice,
        now_ms: u64,
    ) -> Result<Outcome, QueueError> {
        if lease.job.cancel_requested {
            self.queue
                .release(lease, "cancelled before dispatch", now_ms)
                .await?;
            return Ok(Outcome::Released);
        }
        let attempt = match choice {
            Choice::Fail(reason) => {
                self.queue
                    .fail_leased(lease, FailureClass::NoCapacity, &reason, now_ms)
                    .await?;
                self.clusters
                    .metrics()
                    .failure(FailureClass::NoCapacity, "none");
                return Ok(Outcome::Failed);
            }
            Choice::Replay(attempt) => attempt,
            Choice::New(cluster, waited) => {
                self.clusters
                    .metrics()
                    .observe_wait(lease.job.tenant.as_str(), waited);
                self.queue.record_attempt(lease, &cluster, now_ms).await?
            }
        };
        let started = Instant::now();
        let outcome = self.submit(lease, attempt, now_ms).await?;
        if let Outcome::Submitted(cluster) = &outcome {
            self.clusters
                .metrics()
                .observe_dispatch(cluster, started.elapsed());
            self.exclusion_lifted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&lease.job.id);
        }
        Ok(outcome)
    }

    async fn submit(
        &self,
        lease: &Lease,
        attempt: Attempt,
        now_ms: u64,
    ) -> Result<Outcome, QueueError> {
        let cluster = attempt.cluster.clone();
        if self.clusters.adapter(&cluster).is_none() {
            self.queue
                .release(
                    lease,
                    &format!("cluster {cluster} is no longer configured"),
                    now_ms,
                )
                .await?;
            return Ok(Outcome::Released);
        }
        let request = SubmitRequest {
            submission_id: attempt.submission_id.clone(),
            job_id: lease.job.id.clone(),
            tenant: lease.job.tenant.clone(),
            attempt: attempt.number,
            spec: lease.job.spec.clone(),
            extra_env: match &self.telemetry {
                Some(telemetry) => telemetry.attempt_env(&lease.job, attempt.number).await,
                None => Default::default(),
            },
        };
        let span = tracing::info_span!("adapter.submit", cluster = %cluster, job = %lease.job.id, attempt = attempt.number);
        // The packages the job needs go first; their failures count like
        // the submit's own, within the same time limit.
        let packages = self.packages.clone();
        let deliver_then_submit = |adapter: Arc<dyn raybroker_adapter::ClusterAdapter>| {
            let request = &request;
            let cluster = &cluster;
            async move {
                if let Some(packages) = &packages {
                    packages.deliver(cluster, &request.spec).await?;
                }
                adapter.submit(request).await
            }
        };
        let result = self.clusters.call_within(
            &cluster,
            "submit",
            now_ms,
            self.settings.submit_timeout,
            deliver_then_submit,
        );
        let result = tracing::Instrument::instrument(result, span).await;
        let failure = match result {
            Ok(ack) => {
                let reason = match ack {
                    SubmitAck::Created => {
                        format!("attempt {} submitted to {cluster}", attempt.number)
                    }
                    SubmitAck::AlreadyExists => format!(
                        "attempt {} was already on {cluster}: adopted",
                        attempt.number
                    ),
                };
                self.queue.mark_submitted(lease, &reason, now_ms).await?;
                return Ok(Outcome::Submitted(cluster));
            }
            Err(CallError::Adapter(err)) if err.kind == ErrorKind::Rejected => {
                let reason = format!(
                    "{cluster} rejected attempt {}: {}",
                    attempt.number, err.message
                );
                self.queue
                    .fail_leased(lease, FailureClass::JobError, &reason, now_ms)
                    .await?;
                self.clusters
                    .metrics()
                    .failure(FailureClass::JobError, &cluster);
                return Ok(Outcome::Failed);
            }
            Err(CallError::Timeout(_)) => "no answer to the submit in time".to_string(),
            Err(err) => err.to_string(),
        };
        // Transient or unexplained: the cluster leaves placement until its
        // next good snapshot, and the same attempt is re-sent later.
        self.clusters.mark_failing(&cluster, &failure);
        let reason = format!(
            "{cluster} unavailable ({failure}); attempt {} will be re-sent",
            attempt.number
        );
        self.queue.release(lease, &reason, now_ms).await?;
        Ok(Outcome::Released)
    }
}

enum Outcome {
    /// Accepted by this cluster.
    Submitted(String),
    Failed,
    Released,
}

impl Outcome {
    fn count(self, report: &mut RoundReport) {
        match self {
            Outcome::Submitted(_) => report.submitted += 1,
            Outcome::Failed => report.failed += 1,
            Outcome::Released => report.released += 1,
        }
    }
}

impl Dispatcher {
    /// Sets the queue depth gauge of every tenant with queued jobs, and
    /// zero for those reported before whose queues emptied.
    async fn report_queue_depth(&self, tenants: &[TenantId]) -> Result<(), QueueError> {
        let metrics = self.clusters.metrics();
        let mut depths = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            depths.push((tenant.clone(), self.queue.queued_count(tenant).await?));
        }
        let mut reported = self
            .depth_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for gone in reported.iter().filter(|t| !tenants.contains(t)) {
            metrics.set_queue_depth(gone.as_str(), 0);
        }
        reported.clear();
        for (tenant, depth) in depths {
            metrics.set_queue_depth(tenant.as_str(), depth);
            reported.insert(tenant);
        }
        Ok(())
    }
}

/// True when a configured cluster outside the job's excluded ones is one its
/// spec allows: only then is excluding worth a try (placement still decides
/// whether that cluster fits).
fn another_cluster_allowed(job: &Job, views: &[raybroker_placement::ClusterView]) -> bool {
    let placement = &job.spec.placement;
    views.iter().any(|v| {
        !job.failover.excluded_clusters.contains(&v.name)
            && !placement.denied_clusters.contains(&v.name)
            && (placement.allowed_clusters.is_empty()
                || placement.allowed_clusters.contains(&v.name))
    })
}

/// The job's last attempt when it was recorded but never confirmed submitted.
fn unconfirmed_attempt(job: &Job) -> Option<&Attempt> {
    job.attempts
        .last()
        .filter(|a| a.number == job.attempt && a.submitted_at_ms.is_none())
}
