//! A Kubernetes API **test server** for raybroker's KubeRay tests. No real
//! API server can run where the tests run, so this one serves, in process and
//! over real HTTP, the part of the Kubernetes API the KubeRay adapter uses:
//!
//! - RayJobs and RayClusters (`ray.io/v1`): create, get, list, delete, merge
//!   patch; every write validated against the real KubeRay CRDs' schemas
//!   (read at run time from `../shared/kuberay-crds`, see [`schema`]);
//!   422 `Invalid` naming the field, 400 for unknown fields, 409
//!   `AlreadyExists`, 404 `NotFound`, all with `Status` bodies;
//! - Nodes (seeded by the test), Pods and `pods/log`, Secrets;
//! - resourceVersion, uid, creationTimestamp, label and field selectors,
//!   namespaces, ownerReferences garbage collection, bearer tokens;
//! - a test operator ([`operator`]) that moves RayJobs through KubeRay's status
//!   lifecycle and runs their entrypoints on a real Ray head.
//!
//! It is a test server, not an API server: no watch, no admission webhooks,
//! no CEL rules (fields that carry them are refused), one Ray head for all.

#![warn(missing_docs)]

mod api;
pub mod operator;
mod ray;
pub mod schema;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::TcpListener;

pub use ray::RayHead;
use schema::{Cause, KindSchema};
use store::{Resource, Store};

/// What the handlers and the operator share.
pub struct Shared {
    /// Every object.
    pub store: Store,
    /// The RayJob CRD schema.
    rayjob: KindSchema,
    /// The RayCluster CRD schema.
    raycluster: KindSchema,
    /// The Ray head entrypoints run on.
    pub ray: RayHead,
    /// The bearer token clients must present, if any.
    pub token: Option<String>,
    /// Requests served (past authentication).
    pub requests: AtomicU64,
    /// Objects the test operator itself wrote that the CRDs refuse: a bug in
    /// the test server, reported to tests through [`TestServer::own_violations`].
    violations: Mutex<Vec<String>>,
}

impl Shared {
    /// The schema problems of `object` (RayJobs and RayClusters only).
    pub fn validate(&self, resource: Resource, object: &Value) -> Vec<Cause> {
        match resource {
            Resource::RayJob => self.rayjob.validate(object),
            Resource::RayCluster => self.raycluster.validate(object),
            _ => schema::check_metadata(&object["metadata"]),
        }
    }

    /// Records any schema problem of an object the operator wrote.
    fn check_own_write(&self, resource: Resource, object: &Value) {
        let causes = self.validate(resource, object);
        if !causes.is_empty() {
            let text: Vec<String> = causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect();
            let mut violations = match self.violations.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            violations.push(text.join("; "));
        }
    }
}

/// How to start a test server.
#[derive(Clone, Debug)]
pub struct TestServerConfig {
    /// The folder of the KubeRay CRDs (see [`schema::crds_dir`]).
    pub crds_dir: std::path::PathBuf,
    /// The Ray head's dashboard URL.
    pub ray_url: String,
    /// The bearer token to require, if any.
    pub token: Option<String>,
    /// The Nodes to serve (full Node objects; `metadata.name` required).
    pub nodes: Vec<Value>,
}

/// A running test server.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves `shared` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

impl TestServer {
    /// Loads the CRDs, seeds the nodes and serves on a free local port.
    pub async fn start(config: TestServerConfig) -> anyhow::Result<TestServer> {
        let shared = Arc::new(Shared {
            store: Store::default(),
            rayjob: KindSchema::load(&config.crds_dir, "rayjobs")?,
            raycluster: KindSchema::load(&config.crds_dir, "rayclusters")?,
            ray: RayHead::new(&config.ray_url)?,
            token: config.token,
            requests: AtomicU64::new(0),
            violations: Mutex::new(Vec::new()),
        });
        for node in config.nodes {
            shared
                .store
                .create(Resource::Node, "", node)
                .map_err(|e| anyhow::anyhow!("seeding a node: {e:?}"))?;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                if let Err(error) = run(listener, shared, async {
                    let _ = stopped.await;
                })
                .await
                {
                    tracing::warn!(%error, "kubernetes api test server stopped");
                }
            }
        });
        Ok(TestServer {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state, to inspect objects directly.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Objects of `resource` in every namespace.
    pub fn objects(&self, resource: Resource) -> Vec<Value> {
        self.shared.store.list(resource, None)
    }

    /// Objects of `resource` labelled `raybroker.io/origin: <origin>`: what
    /// the broker of that origin created (and KubeRay made from it).
    pub fn objects_of_origin(&self, resource: Resource, origin: &str) -> Vec<Value> {
        self.objects(resource)
            .into_iter()
            .filter(|o| o["metadata"]["labels"]["raybroker.io/origin"] == origin)
            .collect()
    }

    /// The kinds of which something labelled with `origin` is still there
    /// (RayJobs, RayClusters, Pods, Secrets); empty once a broker's cleanup
    /// left nothing behind.
    pub fn left_of_origin(&self, origin: &str) -> Vec<Resource> {
        [
            Resource::RayJob,
            Resource::RayCluster,
            Resource::Pod,
            Resource::Secret,
        ]
        .into_iter()
        .filter(|resource| !self.objects_of_origin(*resource, origin).is_empty())
        .collect()
    }

    /// Requests served so far (past authentication).
    pub fn requests(&self) -> u64 {
        self.shared
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Schema problems in objects the test operator wrote (must stay empty).
    pub fn own_violations(&self) -> Vec<String> {
        match self.shared.violations.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A kubeconfig for this server with `user` as its user entry (YAML),
    /// e.g. `{token: abc}` or an `exec:` credential plugin.
    pub fn kubeconfig(&self, user: &Value) -> String {
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url()}}],
            "users": [{"name": "tester", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "tester"}}],
            "current-context": "test",
        });
        serde_norway::to_string(&config).unwrap_or_default()
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A Ready GPU node with `gpus` GPUs whose `label_key` is `label_value`.
pub fn gpu_node(name: &str, label_key: &str, label_value: &str, gpus: u32) -> Value {
    serde_json::json!({
        "metadata": {"name": name, "labels": {label_key: label_value, "kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": gpus.to_string(), "pods": "110"},
            "capacity": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": gpus.to_string(), "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}
