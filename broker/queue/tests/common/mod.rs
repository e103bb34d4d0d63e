//! Builders shared by the queue's lifecycle, read and group-commit tests.
#![allow(dead_code)]

use raybroker_core::{JobId, JobSpec, TenantId};
use raybroker_queue::testing::now_ms;
use raybroker_queue::JobQueue;

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

pub fn spec(entrypoint: &str) -> JobSpec {
    JobSpec {
        entrypoint: entrypoint.to_string(),
        ..JobSpec::default()
    }
}

pub fn spec_with(entrypoint: &str, priority: i32, key: Option<&str>) -> JobSpec {
    JobSpec {
        priority,
        idempotency_key: key.map(str::to_string),
        ..spec(entrypoint)
    }
}

/// Leases up to `max` of `tenant`'s jobs now; their ids in lease order.
pub async fn leased_ids(queue: &JobQueue, tenant: &TenantId, max: usize) -> Vec<JobId> {
    queue
        .lease(tenant, max, now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.job.id)
        .collect()
}
