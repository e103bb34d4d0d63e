//! Delivery of uploaded packages to the cluster a job is dispatched to.
//!
//! A job submitted through the Ray Jobs API names its packages by the
//! broker's content-addressed URIs ([`super::uri`]). Before the dispatcher
//! submits an attempt to a Ray cluster, [`PackageDelivery::deliver`] makes
//! sure the head's package store has each of them (`GET`, then `PUT
//! /api/packages/gcs/{name}` on the head), so the head unpacks the job's
//! `working_dir` and `py_modules` exactly as if the client had uploaded to
//! it. The adapter contract stays as it is: this runs in the service's
//! dispatch path, just before `ClusterAdapter::submit`.

use std::collections::HashMap;

use raybroker_adapter::{AdapterError, ErrorKind};
use raybroker_core::JobSpec;
use raybroker_ray::client::RayClient;
use raybroker_ray::convert::adapter_error;
use tracing::Instrument;

use super::uri::{broker_package_digest, broker_package_name, UPLOAD_PROTOCOL};
use super::RayStore;

/// Copies packages from the broker's store to Ray heads.
pub struct PackageDelivery {
    /// Where uploaded packages are kept.
    store: RayStore,
    /// A REST client per Ray cluster, by cluster name.
    heads: HashMap<String, RayClient>,
}

impl PackageDelivery {
    /// Delivery from `store` to the Ray heads in `heads` (by cluster name).
    pub fn new(store: RayStore, heads: HashMap<String, RayClient>) -> PackageDelivery {
        PackageDelivery { store, heads }
    }

    /// Makes sure `cluster` has every broker package `spec` names. Errors
    /// carry the contract's kinds, so the dispatcher treats them like a
    /// failed submit: a package that expired, or a cluster that cannot take
    /// packages, is [`ErrorKind::Rejected`] (the job fails); an unreachable
    /// head is transient (the attempt is re-sent later).
    pub async fn deliver(&self, cluster: &str, spec: &JobSpec) -> Result<(), AdapterError> {
        let env = &spec.runtime_env;
        let digests: Vec<&str> = env
            .working_dir
            .iter()
            .chain(&env.py_modules)
            .filter_map(|uri| broker_package_digest(uri))
            .collect();
        if digests.is_empty() {
            return Ok(());
        }
        let Some(head) = self.heads.get(cluster) else {
            return Err(AdapterError::new(
                ErrorKind::Rejected,
                format!(
                    "cluster {cluster} cannot receive uploaded packages (only Ray clusters can); \
                     use a working_dir URI such as s3://... or https://... instead"
                ),
            ));
        };
        let span = tracing::info_span!("packages.deliver", cluster, count = digests.len());
        async {
            for digest in digests {
                self.deliver_one(head, digest).await?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn deliver_one(&self, head: &RayClient, digest: &str) -> Result<(), AdapterError> {
        let name = broker_package_name(digest);
        let expired = || {
            AdapterError::new(
                ErrorKind::Rejected,
                format!(
                    "package {name} expired from the broker's store before the job was \
                     dispatched; submit the job again (ray_jobs_api.package_ttl)"
                ),
            )
        };
        let present = head
            .package_exists(UPLOAD_PROTOCOL, &name)
            .await
            .map_err(|e| adapter_error(&e))?;
        if present {
            // Keep the broker's copy alive for later attempts elsewhere; the
            // head has what this attempt needs either way.
            let _ = self.store.touch_blob(digest).await;
            return Ok(());
        }
        let zip = self
            .store
            .blob(digest)
            .await
            .map_err(unavailable)?
            .ok_or_else(expired)?;
        head.upload_package(UPLOAD_PROTOCOL, &name, &zip)
            .await
            .map_err(|e| adapter_error(&e))?;
        tracing::info!(package = %name, bytes = zip.len(), "package delivered");
        Ok(())
    }
}

fn unavailable(err: super::StoreError) -> AdapterError {
    AdapterError::new(
        ErrorKind::Unavailable,
        format!("the broker's package store is unavailable: {err}"),
    )
}
