//! Builders shared by the queue's lifecycle and read tests.
#![allow(dead_code)]

use raybroker_core::{JobSpec, TenantId};

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
