//! The API's system endpoints and authentication end to end: an in-process
//! broker on a real Redis, called over HTTP. Needs Redis at
//! `RAYBROKER_TEST_REDIS_URL` (default `redis://127.0.0.1:6390`).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{json as body_of, Broker, Options, ROBOTICS, VISION};

fn spec(entrypoint: &str) -> Value {
    json!({"entrypoint": entrypoint})
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let broker = Broker::start().await;
    for (method, path) in [
        (Method::GET, "/v1/jobs"),
        (Method::POST, "/v1/jobs"),
        (Method::GET, "/v1/clusters"),
        (Method::GET, "/v1/jobs/01JDQ3ZK8V6X9T2M4N5P7R8S9A/events"),
    ] {
        let response = broker
            .request(method.clone(), path, None)
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("www-authenticate"));
        let (status, body) = body_of(response).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");

        let response = broker
            .request(method.clone(), path, Some("not-a-token"))
            .send();
        let (status, _) = body_of(response.await.unwrap()).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }
    let response = broker
        .request(Method::GET, "/v1/jobs", None)
        .header("authorization", format!("Basic {ROBOTICS}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(broker.keys().await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn readiness_follows_redis() {
    let broker = Broker::start().await;
    let (status, body) = body_of(
        broker
            .request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    broker.stop().await;

    // Nothing listens on port 1: the broker runs, but is not ready.
    let down = Broker::start_with(Options {
        redis_url: "redis://127.0.0.1:1".into(),
        ..Options::default()
    })
    .await;
    let (status, _) = body_of(
        down.request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = body_of(
        down.request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    let (status, body) = down
        .post_json("/v1/jobs", ROBOTICS, &spec("python x.py"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    down.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let broker = Broker::start().await;
    let (status, doc) = body_of(
        broker
            .request(Method::GET, "/v1/openapi.json", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/jobs"]["post"].is_object(), "{doc}");
    assert!(doc["paths"]["/v1/jobs/{id}/events"]["get"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    broker.stop().await;
}

#[tokio::test]
async fn metrics_count_submissions_by_tenant_and_requests_by_route() {
    let broker = Broker::start().await;
    let id = broker.submit(ROBOTICS, spec("python train.py")).await;
    broker.get(&format!("/v1/jobs/{id}"), ROBOTICS).await;
    let response = broker
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"raybroker_jobs_submitted_total{tenant="robotics"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/jobs/{id}",method="GET",status="2xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("raybroker_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(&id), "job ids are never labels");
    broker.stop().await;
}

#[tokio::test]
async fn clusters_come_from_the_config() {
    let broker = Broker::start().await;
    let (status, body) = broker.get("/v1/clusters", VISION).await;
    assert_eq!(status, 200);
    // The test clusters point at a closed port: configured, never healthy.
    let clusters: Vec<Value> = body["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!({"name": c["name"], "kind": c["kind"], "tier": c["tier"],
                   "cost_per_gpu_hour": c["cost_per_gpu_hour"], "labels": c["labels"],
                   "healthy": c["healthy"], "gpus": c["gpus"]})
        })
        .collect();
    assert_eq!(
        clusters,
        vec![
            json!({"name": "onprem-a", "kind": "ray", "tier": 0, "cost_per_gpu_hour": 0.0, "labels": {"site": "onprem"}, "healthy": false, "gpus": {}}),
            json!({"name": "gke-burst", "kind": "ray", "tier": 1, "cost_per_gpu_hour": 2.5, "labels": {}, "healthy": false, "gpus": {}}),
        ]
    );
    broker.stop().await;
}
