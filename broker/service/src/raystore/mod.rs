//! What the Ray Jobs API layer keeps in Redis beside the job queue: uploaded
//! packages, the Ray view's deleted jobs, and the lookup of a job by the
//! `submission_id` a Ray client gave it.
//!
//! - [`keys`] names every key of this layer, with its type and meaning;
//! - [`uri`] maps the package names clients upload under to the
//!   content-addressed names jobs carry;
//! - [`delivery`] copies a job's packages to the Ray head it is dispatched to.
//!
//! # Packages and their garbage collection
//! A package is stored once per content (`blob`, keyed by the SHA-256 of the
//! zip) and reached through a per-tenant name (the `gcs://_ray_pkg_<hash>.zip`
//! the client uploaded under). Both keys carry a TTL (`package_ttl`),
//! refreshed whenever the package is uploaded, checked by a client, used by a
//! submitted job, or delivered to a cluster by the dispatcher. Redis expires
//! what nothing used for that long; a job whose package expired before its
//! dispatch fails with a reason saying so.

pub mod delivery;
pub mod keys;
pub mod uri;

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use deadpool_redis::Pool;
use raybroker_core::{JobId, TenantId};
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

use keys::RayKeys;

/// A failed exchange with Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be taken from the pool.
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
}

/// The layer's Redis state. Cheap to clone.
#[derive(Clone)]
pub struct RayStore {
    /// Connections; a package upload holds one for the length of its write.
    pool: Pool,
    /// This layer's key names.
    keys: RayKeys,
    /// The queue's key names: a Ray `submission_id` is the job's idempotency
    /// key, found in the queue's per-tenant idempotency hash.
    queue_keys: raybroker_queue::keys::Keys,
    /// How long an unused package is kept.
    package_ttl: Duration,
    /// `lua/bind_package.lua`.
    bind_package: Script,
    /// `lua/touch_package.lua`.
    touch_package: Script,
}

impl RayStore {
    /// The store under `prefix` (the broker's `redis.key_prefix`).
    pub fn new(pool: Pool, prefix: &str, package_ttl: Duration) -> RayStore {
        RayStore {
            pool,
            keys: RayKeys::new(prefix),
            queue_keys: raybroker_queue::keys::Keys::new(prefix),
            package_ttl,
            bind_package: Script::new(include_str!("lua/bind_package.lua")),
            touch_package: Script::new(include_str!("lua/touch_package.lua")),
        }
    }

    fn ttl_secs(&self) -> u64 {
        self.package_ttl.as_secs().max(1)
    }

    /// Stores a zip the tenant uploaded as `protocol://name`; returns its
    /// digest. The blob is written before the name that points to it.
    pub async fn put_package(
        &self,
        tenant: &TenantId,
        protocol: &str,
        name: &str,
        zip: axum::body::Bytes,
    ) -> Result<String, StoreError> {
        let hashed = zip.clone();
        let digest = tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&hashed)))
            .await
            .unwrap_or_else(|_| hex::encode(Sha256::digest(&zip)));
        let blob = self.keys.blob(&digest);
        let mut conn = self.pool.get().await?;
        let _: () = redis::cmd("SET")
            .arg(&blob)
            .arg(zip.as_ref())
            .arg("EX")
            .arg(self.ttl_secs())
            .query_async(&mut conn)
            .await?;
        let _: i64 = self
            .bind_package
            .key(self.keys.package_name(tenant, protocol, name))
            .key(&blob)
            .arg(&digest)
            .arg(self.ttl_secs())
            .invoke_async(&mut conn)
            .await?;
        Ok(digest)
    }

    /// The digest of the tenant's package `protocol://name`, refreshing its
    /// TTL; `None` when the tenant has no such package (or it expired).
    pub async fn package(
        &self,
        tenant: &TenantId,
        protocol: &str,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.pool.get().await?;
        Ok(self
            .touch_package
            .key(self.keys.package_name(tenant, protocol, name))
            .arg(self.keys.blob_base())
            .arg(self.ttl_secs())
            .invoke_async(&mut conn)
            .await?)
    }

    /// The zip with this digest, refreshing its TTL; `None` once expired.
    pub async fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.keys.blob(digest);
        let mut conn = self.pool.get().await?;
        let (zip, _): (Option<Vec<u8>>, i64) = redis::pipe()
            .get(&key)
            .expire(&key, self.ttl_secs() as i64)
            .query_async(&mut conn)
            .await?;
        Ok(zip)
    }

    /// Refreshes the TTL of the zip with this digest; false once expired.
    pub async fn touch_blob(&self, digest: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let refreshed: i64 = conn
            .expire(self.keys.blob(digest), self.ttl_secs() as i64)
            .await?;
        Ok(refreshed == 1)
    }

    /// The tenant's job that a Ray client submitted as `submission_id`.
    pub async fn job_by_submission(
        &self,
        tenant: &TenantId,
        submission_id: &str,
    ) -> Result<Option<JobId>, StoreError> {
        let mut conn = self.pool.get().await?;
        let id: Option<String> = conn
            .hget(self.queue_keys.idempotency(tenant), submission_id)
            .await?;
        Ok(id.and_then(|id| JobId::from_str(&id).ok()))
    }

    /// Removes a job from the tenant's Ray view (`DELETE /api/jobs/{id}`).
    pub async fn delete_job(&self, tenant: &TenantId, id: &JobId) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let _: i64 = conn.sadd(self.keys.deleted(tenant), id.as_str()).await?;
        Ok(())
    }

    /// True when the job was deleted from the tenant's Ray view.
    pub async fn is_deleted(&self, tenant: &TenantId, id: &JobId) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        Ok(conn
            .sismember(self.keys.deleted(tenant), id.as_str())
            .await?)
    }

    /// Every job deleted from the tenant's Ray view.
    pub async fn deleted_jobs(&self, tenant: &TenantId) -> Result<HashSet<String>, StoreError> {
        let mut conn = self.pool.get().await?;
        Ok(conn.smembers(self.keys.deleted(tenant)).await?)
    }
}
