//! [`CreatedObjects`] for KubeRay: everything labelled with this broker's
//! origin (RayJobs, RayClusters, Secrets), for `raybroker clusters cleanup`.

use async_trait::async_trait;
use raybroker_adapter::{AdapterError, CreatedObject, CreatedObjects};

use super::{api_error, KubeRayAdapter};
use crate::client::RayKind;
use crate::convert;

#[async_trait]
impl CreatedObjects for KubeRayAdapter {
    async fn list_created(&self) -> Result<Vec<CreatedObject>, AdapterError> {
        let selector = convert::origin_selector(&self.config.origin);
        let namespace = &self.config.namespace;
        let mut out = Vec::new();
        for (kind, label) in [
            (RayKind::RayJob, "RayJob"),
            (RayKind::RayCluster, "RayCluster"),
        ] {
            for object in self.client.list(kind, &selector).await.map_err(api_error)? {
                out.extend(object.metadata.name.map(|name| CreatedObject {
                    kind: label.to_string(),
                    namespace: namespace.clone(),
                    name,
                }));
            }
        }
        for secret in self
            .client
            .list_secrets(&selector)
            .await
            .map_err(api_error)?
        {
            out.extend(secret.metadata.name.map(|name| CreatedObject {
                kind: "Secret".to_string(),
                namespace: namespace.clone(),
                name,
            }));
        }
        out.sort();
        Ok(out)
    }

    async fn delete_created(&self) -> Result<Vec<CreatedObject>, AdapterError> {
        let found = self.list_created().await?;
        let mut deleted = Vec::new();
        for object in found {
            let gone = match object.kind.as_str() {
                "RayJob" => {
                    let gone = self.client.delete(RayKind::RayJob, &object.name).await;
                    // A cancelled RayJob stays until its record's finalizer is off.
                    if matches!(gone, Ok(true)) {
                        self.release(&object.name).await?;
                    }
                    gone
                }
                "RayCluster" => self.client.delete(RayKind::RayCluster, &object.name).await,
                _ => self.client.delete_secret(&object.name).await,
            }
            .map_err(api_error)?;
            if gone {
                deleted.push(object);
            }
        }
        Ok(deleted)
    }
}
