//! The test server's API conventions over real HTTP: status codes and
//! `Status` bodies, resourceVersion, selectors, merge patch, tokens, and the
//! test operator's handling of a Ray head it cannot reach.

use std::time::{Duration, Instant};

use raybroker_kube_testserver::{gpu_node, schema, TestServer, TestServerConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "t0ken";
const JOBS: &str = "/apis/ray.io/v1/namespaces/ns/rayjobs";

async fn server() -> TestServer {
    TestServer::start(TestServerConfig {
        crds_dir: schema::crds_dir(),
        // Nothing listens here: submissions to Ray fail.
        ray_url: "http://127.0.0.1:9".to_string(),
        token: Some(TOKEN.to_string()),
        nodes: vec![gpu_node(
            "n1",
            "cloud.google.com/gke-accelerator",
            "nvidia-l4",
            1,
        )],
    })
    .await
    .expect("the test server starts")
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Client::new()
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn rayjob(name: &str, origin: &str) -> Value {
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": name, "labels": {"raybroker.io/origin": origin}},
        "spec": {"entrypoint": "echo hi", "clusterSelector": {"ray.io/cluster": "shared"}},
    })
}

#[tokio::test]
async fn objects_follow_the_api_conventions() {
    let server = server().await;
    let (status, created) = call(&server, Method::POST, JOBS, Some(rayjob("a", "x"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let version: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(created["metadata"]["uid"].is_string());
    assert_eq!(created["metadata"]["namespace"], "ns");

    let (status, body) = call(&server, Method::POST, JOBS, Some(rayjob("a", "x"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("AlreadyExists"))
    );
    assert_eq!(body["code"], 409);

    let (status, body) = call(&server, Method::GET, &format!("{JOBS}/missing"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");

    call(&server, Method::POST, JOBS, Some(rayjob("b", "y"))).await;
    let (_, list) = call(
        &server,
        Method::GET,
        &format!("{JOBS}?labelSelector=raybroker.io/origin%3Dx"),
        None,
    )
    .await;
    assert_eq!(list["kind"], "RayJobList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["a"]);

    // Merge patch changes the spec and bumps resourceVersion.
    let response = Client::new()
        .patch(format!("{}{JOBS}/a", server.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"spec": {"suspend": true}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["spec"]["suspend"], true);
    let after: u64 = patched["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > version);

    let (status, _) = call(&server, Method::DELETE, &format!("{JOBS}/a"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&server, Method::DELETE, &format!("{JOBS}/a"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, nodes) = call(&server, Method::GET, "/api/v1/nodes", None).await;
    assert_eq!(nodes["items"][0]["metadata"]["name"], "n1");
}

#[tokio::test]
async fn invalid_rayjobs_get_422_naming_the_field_and_unknown_fields_400() {
    let server = server().await;
    let mut bad = rayjob("bad", "x");
    bad["spec"]["activeDeadlineSeconds"] = json!("an hour");
    let (status, body) = call(&server, Method::POST, JOBS, Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.activeDeadlineSeconds"
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("RayJob.ray.io \"bad\" is invalid"));

    let mut unknown = rayjob("bad", "x");
    unknown["spec"]["entrypointNumCPUs"] = json!(1);
    let (status, body) = call(&server, Method::POST, JOBS, Some(unknown)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("unknown field \"spec.entrypointNumCPUs\""));
    let (_, list) = call(&server, Method::GET, JOBS, None).await;
    assert_eq!(list["items"], json!([]), "nothing invalid was stored");
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let server = server().await;
    let response = Client::new()
        .get(format!("{}{JOBS}", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = Client::new()
        .get(format!("{}{JOBS}", server.url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unreachable_ray_head_fails_the_rayjob_with_submission_failed() {
    let server = server().await;
    call(&server, Method::POST, JOBS, Some(rayjob("c", "x"))).await;
    let started = Instant::now();
    let status = loop {
        let (_, job) = call(&server, Method::GET, &format!("{JOBS}/c"), None).await;
        if job["status"]["jobDeploymentStatus"] == "Failed" {
            break job["status"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["reason"], "SubmissionFailed", "{status}");
    assert!(status["endTime"].is_string());
    assert_eq!(server.own_violations(), Vec::<String>::new());
}

async fn merge_patch(server: &TestServer, path: &str, patch: Value) -> (StatusCode, Value) {
    let response = Client::new()
        .patch(format!("{}{path}", server.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn finalizers_hold_a_deleted_rayjob_and_stale_patches_conflict() {
    let server = server().await;
    let path = format!("{JOBS}/held");
    call(&server, Method::POST, JOBS, Some(rayjob("held", "x"))).await;
    // Once the operator is done with it (no Ray head: submission fails), the
    // resourceVersion read here stays current.
    let started = Instant::now();
    let version = loop {
        let (_, job) = call(&server, Method::GET, &path, None).await;
        if job["status"]["jobDeploymentStatus"] == "Failed" {
            break job["metadata"]["resourceVersion"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A patch naming the current resourceVersion applies; metadata changes too.
    let (status, patched) = merge_patch(
        &server,
        &path,
        json!({"metadata": {"resourceVersion": version, "finalizers": ["example.com/hold"],
            "annotations": {"example.com/note": "kept"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["metadata"]["finalizers"],
        json!(["example.com/hold"])
    );
    assert_eq!(
        patched["metadata"]["annotations"]["example.com/note"],
        "kept"
    );
    // The same (now stale) resourceVersion is a conflict.
    let (status, body) = merge_patch(
        &server,
        &path,
        json!({"metadata": {"resourceVersion": version, "finalizers": []}}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reason"], "Conflict");

    // Delete (foreground): the finalizer keeps the object, now terminating.
    let (status, deleting) = call(
        &server,
        Method::DELETE,
        &path,
        Some(json!({"propagationPolicy": "Foreground"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleting}");
    let (status, job) = call(&server, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(job["metadata"]["deletionTimestamp"].is_string(), "{job}");
    assert_eq!(job["metadata"]["annotations"]["example.com/note"], "kept");
    // No new finalizer once it is being deleted.
    let (status, body) = merge_patch(
        &server,
        &path,
        json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Removing the last finalizer lets it go.
    let (status, _) = merge_patch(&server, &path, json!({"metadata": {"finalizers": null}})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&server, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &server,
        Method::DELETE,
        &path,
        Some(json!({"propagationPolicy": "Orphan"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "orphaning is not done");
}
