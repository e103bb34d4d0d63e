//! The shared conformance suite against the adapter, through the Kubernetes
//! API test server, with jobs running on a real Ray head.

mod common;

use std::sync::Arc;
use std::time::Instant;

use raybroker_adapter::ClusterAdapter;
use raybroker_kube_testserver::store::Resource;
use raybroker_kuberay::CancelMode;

async fn run(cancel: CancelMode, label: &str) {
    let server = common::server().await;
    let origin = common::unique_origin(label);
    let mut config = common::config(&server, &origin);
    config.cancel = cancel;
    let adapter: Arc<dyn ClusterAdapter> = common::adapter(label, config);
    let fixture = common::fixture(&server, label);
    let started = Instant::now();
    let outcome = raybroker_conformance::run_all(adapter.clone(), &fixture).await;
    // Every RayJob and RayCluster the test operator wrote matched the CRDs.
    assert_eq!(server.own_violations(), Vec::<String>::new());
    match outcome {
        Ok(report) => eprintln!(
            "conformance ({label}) passed in {:.1} s:\n{report}",
            started.elapsed().as_secs_f64()
        ),
        Err(failure) => panic!("{failure}"),
    }
    // The checks clean up after themselves: nothing of ours is left.
    let left = adapter.list_owned().await.expect("list_owned");
    assert!(left.is_empty(), "left behind: {left:?}");
    for resource in [Resource::RayJob, Resource::RayCluster, Resource::Pod] {
        let ours: Vec<_> = server
            .objects(resource)
            .into_iter()
            .filter(|o| o["metadata"]["labels"]["raybroker.io/origin"] == serde_json::json!(origin))
            .collect();
        assert!(ours.is_empty(), "{resource:?} left behind: {ours:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn conformance_with_cancel_by_delete() {
    run(CancelMode::Delete, "kuberay-delete").await;
}

#[tokio::test]
async fn conformance_with_cancel_by_suspend() {
    run(CancelMode::Suspend, "kuberay-suspend").await;
}
