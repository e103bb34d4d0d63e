//! The REST API end to end: an in-process broker on a real Redis, called over
//! HTTP. Needs Redis at `RAYBROKER_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6390`); every test uses its own key prefix.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::{fields, json as body_of, read_events, Broker, OPS, ROBOTICS, VISION};

fn spec(entrypoint: &str) -> Value {
    json!({"entrypoint": entrypoint, "resources": {"cpus": 2, "gpus": 1, "gpu_types": "A100|H100"}})
}

#[tokio::test]
async fn jobs_are_submitted_as_json_or_yaml() {
    let broker = Broker::start().await;
    let response = broker
        .request(Method::POST, "/v1/jobs", Some(ROBOTICS))
        .json(
            &json!({"entrypoint": "python train.py", "resources": {"gpus": 1, "gpu_types": "g2"}}),
        )
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let (status, job) = body_of(response).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["tenant"], "robotics");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["spec"]["resources"]["gpu_types"], json!(["G2"]));
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["id"].as_str().unwrap())
    );

    let yaml = "name: ant-ppo\nentrypoint: python train.py --task Isaac-Ant-v0\nresources:\n  memory: 32GiB\n  gpus: 0.5\nlabels: {project: ant}\n";
    for content_type in ["application/yaml", "text/yaml; charset=utf-8"] {
        let (status, created) = broker.post_raw(ROBOTICS, Some(content_type), yaml).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["name"], "ant-ppo");
        let (status, fetched) = broker.get(&location_of(&created), ROBOTICS).await;
        assert_eq!(status, 200);
        assert_eq!(fetched, created);
    }
    broker.stop().await;
}

fn location_of(job: &Value) -> String {
    format!("/v1/jobs/{}", job["id"].as_str().unwrap())
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_job() {
    let broker = Broker::start().await;
    let mut body = spec("python train.py --seed 1");
    body["idempotency_key"] = json!("ant-seed-1");
    let (first, created) = broker.post_json("/v1/jobs", ROBOTICS, &body).await;
    let (second, existing) = broker.post_json("/v1/jobs", ROBOTICS, &body).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(created["id"], existing["id"]);
    let (_, page) = broker.get("/v1/jobs", ROBOTICS).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1, "{page}");

    // The key is per tenant: another tenant gets its own job.
    let (status, other) = broker.post_json("/v1/jobs", VISION, &body).await;
    assert_eq!(status, 201);
    assert_ne!(other["id"], created["id"]);
    broker.stop().await;
}

/// Concurrent submits share script calls (group commit); each request still
/// gets its own answer: 201 for the one that created the job, 200 and the
/// same job for the repeats of its idempotency key, its own job for the
/// others, and its own 422 for a bad body in the middle of the crowd.
#[tokio::test]
async fn concurrent_submits_each_get_their_own_answer() {
    let broker = Broker::start().await;
    let mut keyed = spec("python train.py --seed 7");
    keyed["idempotency_key"] = json!("crowd-seed-7");
    let mut bodies: Vec<(&str, Value)> = Vec::new();
    for i in 0..24 {
        bodies.push(match i % 4 {
            0 => (ROBOTICS, keyed.clone()),
            1 => (VISION, keyed.clone()),
            2 => (ROBOTICS, spec(&format!("python train.py --seed {i}"))),
            _ => (
                ROBOTICS,
                json!({"entrypoint": "", "resources": {"cpus": 1}}),
            ),
        });
    }
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|(token, body)| broker.post_json("/v1/jobs", token, body)),
    )
    .await;
    let mut keyed_ids = std::collections::HashMap::new();
    let mut created = std::collections::HashMap::new();
    let mut own_ids = HashSet::new();
    for (i, (status, job)) in answers.iter().enumerate() {
        match i % 4 {
            0 | 1 => {
                let tenant = job["tenant"].as_str().unwrap().to_string();
                assert_eq!(job["spec"]["idempotency_key"], "crowd-seed-7");
                let id = job["id"].as_str().unwrap().to_string();
                assert_eq!(
                    keyed_ids
                        .entry(tenant.clone())
                        .or_insert_with(|| id.clone()),
                    &id,
                    "one job per tenant for the key"
                );
                if *status == 201 {
                    *created.entry(tenant).or_insert(0) += 1;
                } else {
                    assert_eq!(*status, 200, "{job}");
                }
            }
            2 => {
                assert_eq!(*status, 201, "{job}");
                assert_eq!(
                    job["spec"]["entrypoint"],
                    format!("python train.py --seed {i}")
                );
                assert!(own_ids.insert(job["id"].as_str().unwrap().to_string()));
            }
            _ => refused((*status, job.clone()), 422, "invalid", &["entrypoint"]),
        }
    }
    assert_eq!(
        created,
        [("robotics".to_string(), 1), ("vision".to_string(), 1)].into(),
        "exactly one 201 per tenant for the key"
    );
    let (_, page) = broker.get("/v1/jobs?limit=100", ROBOTICS).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1 + 6, "{page}");
    broker.stop().await;
}

#[tokio::test]
async fn tenants_only_see_their_own_jobs() {
    let broker = Broker::start().await;
    let id = broker.submit(ROBOTICS, spec("python secret.py")).await;
    let path = format!("/v1/jobs/{id}");
    let (_, missing) = broker
        .get("/v1/jobs/01JDQ3ZK8V6X9T2M4N5P7R8S9A", VISION)
        .await;

    let (status, body) = broker.get(&path, VISION).await;
    assert_eq!(status, 404);
    assert_eq!(
        body, missing,
        "another tenant's job looks exactly like a missing one"
    );
    let (status, _) = broker
        .post_json(&format!("{path}/cancel"), VISION, &json!({}))
        .await;
    assert_eq!(status, 404);
    let events = broker.request(Method::GET, &format!("{path}/events"), Some(VISION));
    assert_eq!(events.send().await.unwrap().status(), 404);
    let (_, page) = broker.get("/v1/jobs", VISION).await;
    assert_eq!(page["jobs"], json!([]));
    let (status, _) = broker.get("/v1/jobs?tenant=robotics", VISION).await;
    assert_eq!(status, 403);

    let (status, job) = broker.get(&path, ROBOTICS).await;
    assert_eq!(
        (status, job["state"].as_str()),
        (200, Some("queued")),
        "vision's cancel did nothing"
    );
    let (status, _) = broker.get(&path, OPS).await;
    assert_eq!(status, 200, "admins see every job");
    let own = broker.submit(VISION, spec("python mine.py")).await;
    let (_, all) = broker.get("/v1/jobs", OPS).await;
    assert_eq!(ids(&all), HashSet::from([id.clone(), own.clone()]));
    let (_, filtered) = broker.get("/v1/jobs?tenant=vision", OPS).await;
    assert_eq!(ids(&filtered), HashSet::from([own]));
    broker.stop().await;
}

/// Checks a refusal: its status, its error code and the fields it names.
fn refused((status, error): (u16, Value), want: u16, code: &str, want_fields: &[&str]) {
    assert_eq!(status, want, "{error}");
    assert_eq!(error["error"]["code"], code, "{error}");
    assert_eq!(fields(&error), want_fields, "{error}");
}

fn ids(page: &Value) -> HashSet<String> {
    page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_stored() {
    let broker = Broker::start().await;
    let json = |body: &str| broker.post_raw(ROBOTICS, Some("application/json"), body.to_string());
    let yaml = |body: &str| broker.post_raw(ROBOTICS, Some("application/yaml"), body.to_string());

    refused(json(r#"{"entrypoint": "#).await, 400, "malformed", &[]);
    refused(json("[1, 2]").await, 400, "malformed", &[]);
    let tenant = r#"{"entrypoint": "x", "tenant": "vision"}"#;
    refused(json(tenant).await, 422, "invalid", &["tenant"]);
    let nested = r#"{"entrypoint": "x", "resources": {"gpu": 1}}"#;
    refused(json(nested).await, 422, "invalid", &["resources.gpu"]);
    let negative = r#"{"entrypoint": "x", "resources": {"cpus": -4}}"#;
    refused(json(negative).await, 422, "invalid", &["resources.cpus"]);
    let absurd = r#"{"entrypoint": "x", "resources": {"gpus": 5000}}"#;
    refused(json(absurd).await, 422, "invalid", &["resources.gpus"]);
    let empty = r#"{"entrypoint": "  ", "priority": 5000}"#;
    refused(
        json(empty).await,
        422,
        "invalid",
        &["entrypoint", "priority"],
    );
    refused(
        json(r#"{"name": "x"}"#).await,
        422,
        "invalid",
        &["entrypoint"],
    );
    let model = r#"{"entrypoint": "x", "resources": {"gpus": 1, "gpu_types": "B9000"}}"#;
    refused(json(model).await, 422, "invalid", &["resources.gpu_types"]);
    let cluster = r#"{"entrypoint": "x", "placement": {"allowed_clusters": ["nowhere"]}}"#;
    refused(
        json(cluster).await,
        422,
        "invalid",
        &["placement.allowed_clusters"],
    );
    let yaml_tenant = "entrypoint: x\ntenant: vision\n";
    refused(yaml(yaml_tenant).await, 422, "invalid", &["tenant"]);
    refused(yaml("{entrypoint: x").await, 400, "malformed", &[]);
    let huge = format!(r#"{{"entrypoint": "{}"}}"#, "x".repeat(4 << 20));
    refused(json(&huge).await, 413, "too_large", &[]);
    let plain = broker.post_raw(ROBOTICS, Some("text/plain"), r#"{"entrypoint": "x"}"#);
    refused(plain.await, 415, "unsupported_media_type", &[]);
    let untyped = broker.post_raw(ROBOTICS, None, r#"{"entrypoint": "x"}"#);
    refused(untyped.await, 415, "unsupported_media_type", &[]);

    let (status, _) = broker.get("/v1/jobs/not-a-job-id", ROBOTICS).await;
    assert_eq!(status, 404);
    assert_eq!(
        broker.keys().await,
        Vec::<String>::new(),
        "nothing may be written"
    );

    let metrics = broker
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(r#"raybroker_submissions_rejected_total{reason="invalid"} 9"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"raybroker_submissions_rejected_total{reason="too_large"} 1"#),
        "{metrics}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_queued_job_is_cancelled_at_once() {
    let broker = Broker::start().await;
    let id = broker.submit(ROBOTICS, spec("python train.py")).await;
    let cancel = format!("/v1/jobs/{id}/cancel");
    let (status, answer) = broker.post_json(&cancel, ROBOTICS, &json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["effect"], "cancelled");
    assert_eq!(answer["job"]["state"], "cancelled");
    let (status, again) = broker.post_json(&cancel, ROBOTICS, &json!({})).await;
    assert_eq!(
        (status, again["effect"].as_str()),
        (200, Some("already_finished"))
    );
    let (_, job) = broker.get(&format!("/v1/jobs/{id}"), ROBOTICS).await;
    assert_eq!(job["state"], "cancelled");
    broker.stop().await;
}

#[tokio::test]
async fn listings_page_with_a_cursor_and_filter() {
    let broker = Broker::start().await;
    let mut submitted = Vec::new();
    for n in 0..5 {
        let mut body = spec(&format!("python train.py --seed {n}"));
        body["labels"] = json!({"project": "ant", "seed": n.to_string()});
        submitted.push(broker.submit(ROBOTICS, body).await);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/jobs?limit=2".to_string();
    loop {
        let (status, page) = broker.get(&path, ROBOTICS).await;
        assert_eq!(status, 200, "{page}");
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/jobs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    submitted.reverse();
    assert_eq!(seen, submitted, "every job once, newest first");

    let (_, cancelled) = broker
        .post_json(
            &format!("/v1/jobs/{}/cancel", submitted[0]),
            ROBOTICS,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled["effect"], "cancelled");
    let (_, page) = broker.get("/v1/jobs?state=cancelled", ROBOTICS).await;
    assert_eq!(ids(&page), HashSet::from([submitted[0].clone()]));
    let (_, page) = broker
        .get("/v1/jobs?label=project=ant&label=seed=3", ROBOTICS)
        .await;
    assert_eq!(ids(&page), HashSet::from([submitted[1].clone()]));

    for (query, field) in [
        ("state=done", "state"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("label=x", "label"),
        ("cursor=nope", "cursor"),
    ] {
        let (status, error) = broker.get(&format!("/v1/jobs?{query}"), ROBOTICS).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(fields(&error), [field], "{query}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn the_event_stream_follows_a_job_until_it_ends() {
    let broker = Broker::start().await;
    let id = broker.submit(ROBOTICS, spec("python train.py")).await;
    let stream = broker
        .request(
            Method::GET,
            &format!("/v1/jobs/{id}/events"),
            Some(ROBOTICS),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The stream is subscribed once the headers are in: cancel while it is open.
    let (status, _) = broker
        .post_json(&format!("/v1/jobs/{id}/cancel"), ROBOTICS, &json!({}))
        .await;
    assert_eq!(status, 200);
    let events = read_events(stream, Duration::from_secs(10)).await;
    let states: Vec<(&str, &str)> = events
        .iter()
        .map(|(name, data)| (name.as_str(), data["to"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(
        states,
        [("transition", "queued"), ("transition", "cancelled")]
    );
    let (_, cancelled) = &events[1];
    assert_eq!(cancelled["job_id"], id.as_str());
    assert_eq!(cancelled["tenant"], "robotics");
    assert_eq!(cancelled["from"], "queued");

    // A finished job replays its history, each change once, and ends.
    let stream = broker.request(Method::GET, &format!("/v1/jobs/{id}/events"), Some(OPS));
    let replay = read_events(stream.send().await.unwrap(), Duration::from_secs(5)).await;
    assert_eq!(replay, events);
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_event_streams() {
    let broker = Broker::start().await;
    let id = broker.submit(ROBOTICS, spec("python train.py")).await;
    let stream = broker
        .request(
            Method::GET,
            &format!("/v1/jobs/{id}/events"),
            Some(ROBOTICS),
        )
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_events(stream, Duration::from_secs(10)));
    broker.stop().await; // asserts the server stops within 10 s
    let events = reader.await.unwrap();
    assert_eq!(events.len(), 1, "only the history was sent: {events:?}");
}
