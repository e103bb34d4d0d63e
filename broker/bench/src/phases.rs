//! The queue cycle one phase at a time: every worker submits all its jobs,
//! then all lease them (reading them back), then all finish them, with the
//! Redis main thread's CPU per job read for each phase. The batched cycle
//! interleaves the three; this says which one costs what.

use std::time::Instant;

use anyhow::Context;
use raybroker_core::{JobState, TenantId};
use raybroker_queue::testing::{now_ms, unique_prefix};
use raybroker_queue::Lease;
use serde::Serialize;

use crate::queue_cycle::{delete_prefix, harness};
use crate::redis_cpu_s;

/// Jobs/s and Redis main-thread µs per job of one phase.
#[derive(Debug, Default, Serialize)]
pub struct Phase {
    pub jobs_per_s: f64,
    pub redis_us_per_job: f64,
}

/// Submit, lease (with the read-back) and finish, measured apart.
#[derive(Debug, Default, Serialize)]
pub struct Figures {
    pub submit: Phase,
    pub lease: Phase,
    pub finish: Phase,
}

/// Runs `jobs` jobs through the three phases in calls of `batch` from
/// `workers` tenants (the cycle's harness).
pub async fn run(url: &str, jobs: usize, batch: usize, workers: usize) -> anyhow::Result<Figures> {
    let prefix = unique_prefix("bench-phases");
    let (queue, specs) = harness(url, &prefix, batch, workers)?;
    let per_worker = jobs / workers;
    let total = (per_worker * workers) as f64;
    let tenants: Vec<TenantId> = (0..workers)
        .map(|w| TenantId::new(&format!("tenant-{w}")).context("tenant name"))
        .collect::<Result<_, _>>()?;
    let calls = move |n: usize| (0..n).step_by(batch).map(move |s| batch.min(n - s));

    let clock = Clock::start(url).await?;
    let mut tasks = Vec::new();
    for tenant in tenants.clone() {
        let (queue, specs) = (queue.clone(), specs.clone());
        tasks.push(tokio::spawn(async move {
            for n in calls(per_worker) {
                queue
                    .submit_many(&tenant, specs[..n].to_vec(), now_ms())
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let submit = clock.phase(url, total).await?;

    let clock = Clock::start(url).await?;
    let mut tasks = Vec::new();
    for tenant in tenants {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut leases: Vec<Lease> = Vec::new();
            for n in calls(per_worker) {
                leases.extend(queue.lease(&tenant, n, now_ms()).await?);
            }
            anyhow::Ok(leases)
        }));
    }
    let mut leased = Vec::new();
    for task in tasks {
        leased.push(task.await??);
    }
    let lease = clock.phase(url, total).await?;
    anyhow::ensure!(
        leased.iter().map(Vec::len).sum::<usize>() == per_worker * workers,
        "a job was not leased"
    );

    let clock = Clock::start(url).await?;
    let mut tasks = Vec::new();
    for leases in leased {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in leases.chunks(batch) {
                queue
                    .finish_leased(chunk, JobState::Failed, "benchmark: phases", now_ms())
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let finish = clock.phase(url, total).await?;
    delete_prefix(url, &prefix).await?;
    Ok(Figures {
        submit,
        lease,
        finish,
    })
}

/// Wall time and Redis CPU at the start of a phase.
struct Clock {
    started: Instant,
    cpu_s: f64,
}

impl Clock {
    async fn start(url: &str) -> anyhow::Result<Clock> {
        Ok(Clock {
            cpu_s: redis_cpu_s(url).await?,
            started: Instant::now(),
        })
    }

    async fn phase(self, url: &str, jobs: f64) -> anyhow::Result<Phase> {
        let wall = self.started.elapsed().as_secs_f64();
        let cpu = redis_cpu_s(url).await? - self.cpu_s;
        Ok(Phase {
            jobs_per_s: jobs / wall,
            redis_us_per_job: cpu * 1e6 / jobs,
        })
    }
}
