//! Wire calls to the Kubernetes API, and nothing else: no mapping, no policy.
//!
//! The client is built on first use, so a broker starts while a cluster's
//! credentials are briefly unusable (an exec plugin such as
//! `gke-gcloud-auth-plugin` that cannot reach its token service yet); a failed
//! build is tried again on the next call. Credentials come from, in order: the
//! configured `kubeconfig` file (with its `context`), the pod's service
//! account inside Kubernetes, `$KUBECONFIG` or `~/.kube/config`. kube-rs runs
//! exec credential plugins itself and refreshes their tokens when they expire.

use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams, PostParams, PropagationPolicy,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::config::KubeRayClusterConfig;

/// The two KubeRay kinds the adapter creates or finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RayKind {
    /// `rayjobs.ray.io`.
    RayJob,
    /// `rayclusters.ray.io`.
    RayCluster,
}

impl RayKind {
    fn resource(self) -> ApiResource {
        let kind = match self {
            RayKind::RayJob => "RayJob",
            RayKind::RayCluster => "RayCluster",
        };
        ApiResource::from_gvk(&GroupVersionKind::gvk("ray.io", "v1", kind))
    }
}

/// The Kubernetes API of one configured cluster, in its namespace.
pub struct KubeClient {
    /// Where the credentials come from and the namespace.
    config: KubeRayClusterConfig,
    /// Built on first use.
    client: OnceCell<Client>,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient")
            .field("namespace", &self.config.namespace)
            .field("kubeconfig", &self.config.kubeconfig)
            .field("context", &self.config.context)
            .finish()
    }
}

impl KubeClient {
    /// A client for `config` (nothing is read or called yet).
    pub fn new(config: &KubeRayClusterConfig) -> KubeClient {
        KubeClient {
            config: config.clone(),
            client: OnceCell::new(),
        }
    }

    async fn build(&self) -> Result<Client, kube::Error> {
        let options = KubeConfigOptions {
            context: self.config.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match (&self.config.kubeconfig, &self.config.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)?;
                Config::from_custom_kubeconfig(file, &options).await?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options).await?,
            (None, None) => Config::infer().await.map_err(kube::Error::InferConfig)?,
        };
        config.connect_timeout = Some(self.config.request_timeout);
        config.read_timeout = Some(self.config.request_timeout);
        config.write_timeout = Some(self.config.request_timeout);
        Client::try_from(config)
    }

    async fn client(&self) -> Result<Client, kube::Error> {
        self.client.get_or_try_init(|| self.build()).await.cloned()
    }

    async fn ray(&self, kind: RayKind) -> Result<Api<DynamicObject>, kube::Error> {
        Ok(Api::namespaced_with(
            self.client().await?,
            &self.config.namespace,
            &kind.resource(),
        ))
    }

    async fn pods_here(&self) -> Result<Api<Pod>, kube::Error> {
        Ok(Api::namespaced(
            self.client().await?,
            &self.config.namespace,
        ))
    }

    /// Creates `object` (a full RayJob or RayCluster), validated strictly by the server.
    pub async fn create(
        &self,
        kind: RayKind,
        object: &Value,
    ) -> Result<DynamicObject, kube::Error> {
        let object: DynamicObject =
            serde_json::from_value(object.clone()).map_err(kube::Error::SerdeError)?;
        let params = PostParams {
            field_manager: Some("raybroker".into()),
            ..PostParams::default()
        };
        self.ray(kind).await?.create(&params, &object).await
    }

    /// The object `name`, `None` when it does not exist.
    pub async fn get(
        &self,
        kind: RayKind,
        name: &str,
    ) -> Result<Option<DynamicObject>, kube::Error> {
        self.ray(kind).await?.get_opt(name).await
    }

    /// Every object of `kind` matching `selector` in the namespace.
    pub async fn list(
        &self,
        kind: RayKind,
        selector: &str,
    ) -> Result<Vec<DynamicObject>, kube::Error> {
        let params = ListParams::default().labels(selector);
        Ok(self.ray(kind).await?.list(&params).await?.items)
    }

    /// Deletes `name` and, in the background, what it owns; false when it was not there.
    pub async fn delete(&self, kind: RayKind, name: &str) -> Result<bool, kube::Error> {
        self.delete_with(kind, name, PropagationPolicy::Background)
            .await
    }

    /// Deletes `name` and what it owns right away, before the object itself
    /// goes (which a finalizer may hold off); false when it was not there.
    pub async fn delete_foreground(&self, kind: RayKind, name: &str) -> Result<bool, kube::Error> {
        self.delete_with(kind, name, PropagationPolicy::Foreground)
            .await
    }

    async fn delete_with(
        &self,
        kind: RayKind,
        name: &str,
        propagation: PropagationPolicy,
    ) -> Result<bool, kube::Error> {
        let params = DeleteParams {
            propagation_policy: Some(propagation),
            ..DeleteParams::default()
        };
        match self.ray(kind).await?.delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Applies a JSON merge patch to `name` (a `metadata.resourceVersion` in
    /// it makes the patch conditional: 409 when the object changed).
    pub async fn merge_patch(
        &self,
        kind: RayKind,
        name: &str,
        patch: &Value,
    ) -> Result<DynamicObject, kube::Error> {
        let params = PatchParams {
            field_manager: Some("raybroker".into()),
            ..PatchParams::default()
        };
        self.ray(kind)
            .await?
            .patch(name, &params, &Patch::Merge(patch))
            .await
    }

    /// Secrets matching `selector` in the namespace.
    pub async fn list_secrets(&self, selector: &str) -> Result<Vec<Secret>, kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client().await?, &self.config.namespace);
        Ok(api
            .list(&ListParams::default().labels(selector))
            .await?
            .items)
    }

    /// Deletes a secret; false when it was not there.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client().await?, &self.config.namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Every node of the cluster.
    pub async fn nodes(&self) -> Result<Vec<Node>, kube::Error> {
        let api: Api<Node> = Api::all(self.client().await?);
        Ok(api.list(&ListParams::default()).await?.items)
    }

    /// Every pod of the cluster bound to a node and not finished (they hold node resources).
    pub async fn scheduled_pods(&self) -> Result<Vec<Pod>, kube::Error> {
        let api: Api<Pod> = Api::all(self.client().await?);
        let params = ListParams::default()
            .fields("spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed");
        Ok(api.list(&params).await?.items)
    }

    /// Pods of the namespace matching `selector`.
    pub async fn pods(&self, selector: &str) -> Result<Vec<Pod>, kube::Error> {
        let params = ListParams::default().labels(selector);
        Ok(self.pods_here().await?.list(&params).await?.items)
    }

    /// The whole log of a pod's first container.
    pub async fn pod_log(&self, name: &str) -> Result<String, kube::Error> {
        self.pods_here()
            .await?
            .logs(name, &LogParams::default())
            .await
    }
}
