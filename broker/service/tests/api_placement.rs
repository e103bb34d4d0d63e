//! Placement explanations over the REST API: `GET /v1/jobs/{id}/placement`
//! and `POST /v1/placement/dry-run`, on an in-process broker whose clusters
//! point at a closed port (so no cluster can take a job now).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{fields, json as body_of, Broker, OPS, ROBOTICS, VISION};

fn spec() -> Value {
    json!({"entrypoint": "python train.py", "resources": {"cpus": 2, "gpus": 1, "gpu_types": "A100"}})
}

#[tokio::test]
async fn a_queued_job_is_explained_cluster_by_cluster() {
    let broker = Broker::start().await;
    let id = broker.submit(ROBOTICS, spec()).await;
    let path = format!("/v1/jobs/{id}/placement");
    let (status, report) = broker.get(&path, ROBOTICS).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["job_id"], id.as_str());
    assert_eq!(report["state"], "queued");
    assert!(report["placed"].is_null(), "{report}");
    let explanation = &report["explanation"];
    assert_eq!(explanation["job_id"], id.as_str());
    assert_eq!(explanation["outcome"]["kind"], "waiting", "{report}");
    let clusters: Vec<&str> = explanation["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|c| c["cluster"].as_str().expect("cluster name"))
        .collect();
    assert_eq!(clusters, ["onprem-a", "gke-burst"]);
    let text = report["text"].as_str().expect("text");
    assert!(text.contains(&format!("job {id}: waiting")), "{text}");
    assert!(text.contains("onprem-a (tier 0)"), "{text}");
    assert!(text.contains("cluster unreachable"), "{text}");

    // Another tenant cannot see it; an admin can.
    let (status, _) = broker.get(&path, VISION).await;
    assert_eq!(status, 404);
    let (status, _) = broker.get(&path, OPS).await;
    assert_eq!(status, 200);
    let (status, _) = broker.get("/v1/jobs/not-a-job/placement", ROBOTICS).await;
    assert_eq!(status, 404);
    broker.stop().await;
}

#[tokio::test]
async fn a_job_that_left_the_queue_says_so() {
    let broker = Broker::start().await;
    let id = broker.submit(ROBOTICS, spec()).await;
    let (status, _) = broker
        .post_json(&format!("/v1/jobs/{id}/cancel"), ROBOTICS, &json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, report) = broker
        .get(&format!("/v1/jobs/{id}/placement"), ROBOTICS)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["state"], "cancelled");
    assert!(report["explanation"].is_null(), "{report}");
    assert!(report["placed"].is_null(), "{report}");
    let text = report["text"].as_str().expect("text");
    assert!(text.contains("cancelled without being placed"), "{text}");
    broker.stop().await;
}

#[tokio::test]
async fn a_dry_run_explains_without_writing_anything() {
    let broker = Broker::start().await;
    let before = broker.keys().await;
    let (status, report) = broker
        .post_json("/v1/placement/dry-run", ROBOTICS, &spec())
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["job_id"], "dry-run");
    assert_eq!(report["explanation"]["outcome"]["kind"], "waiting");
    let text = report["text"].as_str().expect("text");
    assert!(text.contains("gke-burst (tier 1)"), "{text}");
    assert!(text.contains("cluster unreachable"), "{text}");
    let mut after = broker.keys().await;
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(before, after, "a dry run wrote to Redis");
    let (_, page) = broker.get("/v1/jobs", ROBOTICS).await;
    assert_eq!(page["jobs"], json!([]));

    // Validated like a submission.
    let (status, body) = broker
        .post_json(
            "/v1/placement/dry-run",
            ROBOTICS,
            &json!({"entrypoint": "x", "resources": {"gpus": 1, "gpu_types": "NOPE"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        fields(&body).iter().any(|f| f.contains("gpu_types")),
        "{body}"
    );
    let response = broker
        .request(Method::POST, "/v1/placement/dry-run", Some(ROBOTICS))
        .header("content-type", "text/plain")
        .body("entrypoint: x")
        .send()
        .await
        .expect("POST");
    assert_eq!(body_of(response).await.0, 415);
    let (status, _) = broker
        .post_json("/v1/placement/dry-run", "wrong-token-0123456789", &spec())
        .await;
    assert_eq!(status, 401);
    broker.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_the_placement_routes() {
    let broker = Broker::start().await;
    let response = broker
        .request(Method::GET, "/v1/openapi.json", None)
        .send()
        .await
        .expect("GET");
    let (status, doc) = body_of(response).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/jobs/{id}/placement"]["get"].is_object());
    assert!(doc["paths"]["/v1/placement/dry-run"]["post"].is_object());
    assert!(doc["components"]["schemas"]["PlacementReport"].is_object());
    broker.stop().await;
}
