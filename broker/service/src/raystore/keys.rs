//! Every Redis key of the Ray Jobs API layer, with its type and meaning.
//!
//! They live under the broker's key prefix, in a `ray:` namespace the job
//! queue does not use, so the queue's keys and these never meet.

use raybroker_core::TenantId;

/// Builds the layer's key names under one prefix.
#[derive(Clone, Debug)]
pub struct RayKeys {
    prefix: String,
}

impl RayKeys {
    /// Keys under `prefix` (the broker's `redis.key_prefix`).
    pub fn new(prefix: &str) -> RayKeys {
        RayKeys {
            prefix: prefix.to_string(),
        }
    }

    /// STRING with a TTL: the digest of the zip a tenant uploaded as
    /// `protocol://name`. Per tenant, so one tenant can neither see nor
    /// replace another's package.
    pub fn package_name(&self, tenant: &TenantId, protocol: &str, name: &str) -> String {
        format!("{}:ray:pkg:{tenant}:{protocol}:{name}", self.prefix)
    }

    /// STRING with a TTL: the zip whose SHA-256 is `digest` (hex).
    pub fn blob(&self, digest: &str) -> String {
        format!("{}{digest}", self.blob_base())
    }

    /// The `blob` key without the digest, for scripts that build it.
    pub fn blob_base(&self) -> String {
        format!("{}:ray:blob:", self.prefix)
    }

    /// SET of a tenant's job ids deleted through `DELETE /api/jobs/{id}`:
    /// gone from the Ray view, kept in the broker's history.
    pub fn deleted(&self, tenant: &TenantId) -> String {
        format!("{}:ray:deleted:{tenant}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_in_their_namespace() {
        let keys = RayKeys::new("rb");
        let tenant = TenantId::new("robotics").unwrap();
        assert_eq!(
            keys.package_name(&tenant, "gcs", "_ray_pkg_ab.zip"),
            "rb:ray:pkg:robotics:gcs:_ray_pkg_ab.zip"
        );
        assert_eq!(keys.blob("00ff"), "rb:ray:blob:00ff");
        assert!(keys.blob("00ff").starts_with(&keys.blob_base()));
        assert_eq!(keys.deleted(&tenant), "rb:ray:deleted:robotics");
    }
}
