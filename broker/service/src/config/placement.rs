//! The placement policy: the top-level `placement` section and the
//! per-tenant `weight`, `quota`, `tier_quotas`, `burst` and `max_wait`,
//! read into one [`raybroker_placement::Policy`].

use std::collections::BTreeMap;

use raybroker_core::{Bytes, Quantity};
use raybroker_placement::{Policy, Quota, TenantPolicy};
use serde::Deserialize;

/// The `placement` section as written; durations are read during
/// validation so their errors name the field.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PlacementSection {
    /// Waiting this long adds one to a job's priority; `0` disables aging.
    aging_per_priority: Option<String>,
    /// A job waiting this long gets capacity reserved; `0` disables it.
    reserve_after: Option<String>,
}

/// A quota as written: each bound optional.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaEntry {
    gpus: Option<Quantity>,
    cpus: Option<Quantity>,
    memory: Option<Bytes>,
}

/// A tenant's placement fields as written (part of its `tenants[]` entry).
pub(super) struct TenantPlacementEntry<'a> {
    pub weight: Option<f64>,
    pub quota: Option<&'a QuotaEntry>,
    pub tier_quotas: &'a BTreeMap<u32, QuotaEntry>,
    pub burst: Option<bool>,
    pub max_wait: Option<&'a str>,
}

impl PlacementSection {
    /// The policy's global settings over `tenants` (by name); problems go to `bad`.
    pub(super) fn read(
        &self,
        tenants: BTreeMap<String, TenantPolicy>,
        bad: &mut dyn FnMut(&str, String),
    ) -> Policy {
        let defaults = Policy::default();
        Policy {
            tenants,
            default_tenant: TenantPolicy::default(),
            aging_ms_per_priority: read_ms(
                "placement.aging_per_priority",
                self.aging_per_priority.as_deref(),
                defaults.aging_ms_per_priority,
                bad,
            ),
            reserve_after_ms: read_ms(
                "placement.reserve_after",
                self.reserve_after.as_deref(),
                defaults.reserve_after_ms,
                bad,
            ),
        }
    }
}

impl TenantPlacementEntry<'_> {
    /// The tenant's policy; `at` is the tenant's field path (`tenants[i]`).
    pub(super) fn read(&self, at: &str, bad: &mut dyn FnMut(&str, String)) -> TenantPolicy {
        let defaults = TenantPolicy::default();
        let weight = match self.weight {
            None => defaults.weight,
            Some(w) if w.is_finite() && w > 0.0 => w,
            Some(w) => {
                bad(
                    &format!("{at}.weight"),
                    format!("{w} is not a weight; use a number greater than 0, e.g. 1 or 2.5"),
                );
                defaults.weight
            }
        };
        TenantPolicy {
            weight,
            quota: self.quota.map(QuotaEntry::to_quota).unwrap_or_default(),
            tier_quotas: self
                .tier_quotas
                .iter()
                .map(|(tier, quota)| (*tier, quota.to_quota()))
                .collect(),
            burst: self.burst.unwrap_or(defaults.burst),
            max_wait_ms: read_ms(
                &format!("{at}.max_wait"),
                self.max_wait,
                defaults.max_wait_ms,
                bad,
            ),
        }
    }
}

impl QuotaEntry {
    fn to_quota(&self) -> Quota {
        Quota {
            gpus: self.gpus,
            cpus: self.cpus,
            memory: self.memory,
        }
    }
}

/// A duration field in ms (`0` allowed), `default_ms` when absent.
fn read_ms(
    field: &str,
    text: Option<&str>,
    default_ms: u64,
    bad: &mut dyn FnMut(&str, String),
) -> u64 {
    let Some(text) = text else {
        return default_ms;
    };
    if text.trim() == "0" {
        return 0;
    }
    match humantime::parse_duration(text) {
        Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Err(e) => {
            bad(
                field,
                format!("'{text}' is not a duration ({e}); write e.g. 90s, 10m or 0 to disable"),
            );
            default_ms
        }
    }
}
