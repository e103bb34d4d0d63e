//! Groups and sweeps through the REST API of an in-process broker on a real
//! Redis: bad input is refused naming the field, groups are tenant-scoped,
//! the controller releases members (queued: the test clusters are
//! unreachable) and a cancel ends a group. Needs Redis at
//! `RAYBROKER_TEST_REDIS_URL` (default `redis://127.0.0.1:6390`).

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::{fields, json as body_of, Broker, ROBOTICS, VISION};

/// POSTs a raw body to `path` with a content type.
async fn post_raw(broker: &Broker, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let response = broker
        .request(Method::POST, path, Some(ROBOTICS))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    body_of(response).await
}

/// Asserts a 422 naming exactly `field` (among others allowed).
fn assert_names(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("invalid group") || message.starts_with("invalid sweep"),
        "{body}"
    );
    assert!(
        fields(body).iter().any(|f| f == field),
        "expected the field {field} to be named: {body}"
    );
}

#[tokio::test]
async fn bad_groups_are_refused_naming_the_field() {
    let broker = Broker::start().await;
    let cases = [
        (json!({"jobs": []}), "jobs"),
        (
            json!({"jobs": [{"entrypoint": "x"}], "mode": "sideways"}),
            "mode",
        ),
        (
            json!({"jobs": [{"entrypoint": "x"}], "max_concurency": 2}),
            "max_concurency",
        ),
        (
            json!({"jobs": [{"entrypoint": "x"}], "max_concurrency": 0}),
            "max_concurrency",
        ),
        (
            json!({"mode": "series", "max_concurrency": 2, "jobs": [{"entrypoint": "x"}]}),
            "max_concurrency",
        ),
        (
            json!({"template": {"entrypoint": "x"}, "jobs": [{}, {"resources": {"cpus": -1}}]}),
            "jobs[1].resources.cpus",
        ),
        (
            json!({"jobs": [{"name": "no-entrypoint"}]}),
            "jobs[0].entrypoint",
        ),
        (
            json!({"jobs": [{"entrypoint": "x", "resources": {"gpus": 1, "gpu_types": "Z9"}}]}),
            "jobs[0].resources.gpu_types",
        ),
        (
            json!({"jobs": [{"entrypoint": "x", "idempotency_key": "k"}]}),
            "jobs[0].idempotency_key",
        ),
    ];
    for (spec, field) in cases {
        let (status, body) = broker.post_json("/v1/groups", ROBOTICS, &spec).await;
        assert_names(status, &body, field);
    }
    let (status, body) = post_raw(&broker, "/v1/groups", "application/json", "{\"jobs\": [").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_raw(&broker, "/v1/groups", "text/plain", "jobs: []").await;
    assert_eq!(status, 415, "{body}");
    broker.stop().await;
}

fn sweep(extra: Value) -> Value {
    let mut spec = json!({
        "template": {"entrypoint": "python train.py --lr {{lr}}", "resources": {"cpus": 1}},
        "search_space": {"lr": {"loguniform": [0.0001, 0.1]}},
        "algorithm": "random",
        "num_trials": 4,
        "objective": {"metric": "reward", "mode": "max"},
    });
    for (key, value) in extra.as_object().expect("an object") {
        if value.is_null() {
            spec.as_object_mut().expect("an object").remove(key);
        } else {
            spec[key] = value.clone();
        }
    }
    spec
}

#[tokio::test]
async fn bad_sweeps_are_refused_naming_the_field() {
    let broker = Broker::start().await;
    let cases = [
        (sweep(json!({"objective": null})), "objective"),
        (
            sweep(json!({"objective": {"metric": "", "mode": "max"}})),
            "objective.metric",
        ),
        (
            sweep(json!({"objective": {"metric": "r", "mode": "up"}})),
            "objective.mode",
        ),
        (
            sweep(json!({"search_space": {"lr": {"loguniform": [0.0, 0.1]}}})),
            "search_space.lr",
        ),
        (
            sweep(json!({"search_space": {"lr": {"normal": [0, 1]}}})),
            "search_space.lr.normal",
        ),
        (sweep(json!({"algorithm": "annealing"})), "algorithm"),
        (sweep(json!({"num_trials": null})), "num_trials"),
        (
            sweep(json!({"max_concurrent_trials": 0})),
            "max_concurrent_trials",
        ),
        (sweep(json!({"repeats": 0})), "repeats"),
        (
            sweep(json!({"template": {"entrypoint": "python train.py --lr {{learning_rate}}"}})),
            "template.entrypoint",
        ),
        (
            sweep(json!({"template": {"entrypoint": "x", "resources": {"cpus": -1}}})),
            "template.resources.cpus",
        ),
        (
            sweep(
                json!({"early_stopping": {"grace_steps": 2, "reduction_factor": 1, "max_steps": 10}}),
            ),
            "early_stopping.reduction_factor",
        ),
        (
            sweep(
                json!({"early_stopping": {"grace_steps": 0, "reduction_factor": 2, "max_steps": 10}}),
            ),
            "early_stopping.grace_steps",
        ),
        (
            sweep(json!({"pass_params": {"hydra_keys": {"gamma": "x.gamma"}}})),
            "pass_params.hydra_keys.gamma",
        ),
    ];
    for (spec, field) in cases {
        let (status, body) = broker.post_json("/v1/sweeps", ROBOTICS, &spec).await;
        assert_names(status, &body, field);
    }
    broker.stop().await;
}

/// Polls `path` until `done` holds.
async fn wait_for(broker: &Broker, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = broker.get(path, ROBOTICS).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn groups_are_released_by_the_controller_scoped_to_their_tenant_and_cancelled() {
    let broker = Broker::start().await;
    let yaml = "name: seeds\nmax_concurrency: 2\ntemplate: {entrypoint: python train.py, resources: {cpus: 1}}\njobs: [{}, {}, {}]\n";
    let (status, group) = post_raw(&broker, "/v1/groups", "application/yaml", yaml).await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(group["state"], "running");
    let id = group["id"].as_str().unwrap().to_string();
    let path = format!("/v1/groups/{id}");

    // The controller releases two members (nothing runs them here).
    let group = wait_for(&broker, &path, |g| g["counts"]["queued"] == 2).await;
    assert_eq!(group["counts"]["not_started"], 1, "{group:#}");
    let job_id = group["members"][0]["job_id"].as_str().unwrap();
    let (_, job) = broker.get(&format!("/v1/jobs/{job_id}"), ROBOTICS).await;
    assert_eq!(
        job["spec"]["labels"]["raybroker.group"],
        id.as_str(),
        "{job}"
    );
    assert_eq!(job["spec"]["labels"]["raybroker.member"], "0", "{job}");

    // Another tenant sees nothing, neither the group nor in its listing.
    let (status, _) = broker.get(&path, VISION).await;
    assert_eq!(status, 404);
    let (_, list) = broker.get("/v1/groups", VISION).await;
    assert_eq!(list["groups"], json!([]), "{list}");
    let (_, list) = broker.get("/v1/groups", ROBOTICS).await;
    assert_eq!(list["groups"][0]["id"], id.as_str(), "{list}");
    // A group is not a sweep.
    let (status, _) = broker.get(&format!("/v1/sweeps/{id}"), ROBOTICS).await;
    assert_eq!(status, 404);

    let (status, body) = broker
        .post_json(&format!("{path}/cancel"), ROBOTICS, &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let shown = cli(&broker, &["group", "status", &id]).await;
    assert!(
        shown.contains("seeds") && shown.contains("not started"),
        "{shown}"
    );
    let group = wait_for(&broker, &path, |g| g["state"] == "cancelled").await;
    assert_eq!(
        group["counts"],
        json!({"cancelled": 2, "not_started": 1}),
        "{group:#}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_sweep_creates_its_trials_up_to_its_concurrency() {
    let broker = Broker::start().await;
    let spec = sweep(json!({"max_concurrent_trials": 2, "seed": 3}));
    let (status, created) = broker.post_json("/v1/sweeps", ROBOTICS, &spec).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/v1/sweeps/{id}");
    let sweep = wait_for(&broker, &path, |s| s["counts"]["queued"] == 2).await;
    assert_eq!(sweep["total_trials"], 4, "{sweep:#}");
    assert_eq!(sweep["counts"]["not_started"], 2, "{sweep:#}");
    for trial in sweep["leaderboard"].as_array().unwrap() {
        let lr = trial["params"]["lr"].as_f64().unwrap();
        assert!((0.0001..=0.1).contains(&lr), "{trial}");
        let (_, job) = broker
            .get(
                &format!("/v1/jobs/{}", trial["job_id"].as_str().unwrap()),
                ROBOTICS,
            )
            .await;
        let entrypoint = job["spec"]["entrypoint"].as_str().unwrap();
        assert!(
            entrypoint.starts_with("python train.py --lr "),
            "{entrypoint}"
        );
        assert!(!entrypoint.contains("{{"), "{entrypoint}");
        assert!(
            job["spec"]["runtime_env"]["env_vars"]["RAYBROKER_TRIAL_SEED"].is_string(),
            "{job}"
        );
    }
    let (status, _) = broker
        .get(&format!("/v1/sweeps/{id}/leaderboard.csv"), VISION)
        .await;
    assert_eq!(status, 404);

    // `raybroker sweep status`: the leaderboard, then the plot's path.
    let dir = std::env::temp_dir().join(format!("rb-sweep-cli-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let plot = dir.join("plot.svg");
    let plot_arg = plot.display().to_string();
    let out = cli(&broker, &["sweep", "status", &id, "--plot", &plot_arg]).await;
    assert!(out.contains(&format!("sweep      {id}")), "{out}");
    assert!(
        out.contains("TRIAL") && out.contains("PARAMETERS") && out.contains("lr="),
        "{out}"
    );
    assert!(out.contains(&format!("plot: {plot_arg}")), "{out}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    let csv = cli(&broker, &["sweep", "status", &id, "--csv"]).await;
    assert_eq!(
        csv.lines().count(),
        3,
        "a header and the two trials so far: {csv}"
    );
    let list = cli(&broker, &["sweep", "list"]).await;
    assert!(list.contains(&id), "{list}");
    let _ = std::fs::remove_dir_all(&dir);
    broker.stop().await;
}

/// A created group's or sweep's creation time and id.
fn created_and_id(view: &Value) -> (u64, String) {
    let created = view["created_at_ms"].as_u64().expect("created_at_ms");
    (created, view["id"].as_str().expect("id").to_string())
}

/// Follows `path`'s pages of `limit`; every id of `field` in order.
async fn all_pages(broker: &Broker, path: &str, field: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let query = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let (status, page) = broker.get(&query, ROBOTICS).await;
        assert_eq!(status, 200, "{page}");
        let items = page[field].as_array().expect("a list");
        assert!(items.len() <= limit, "{page}");
        ids.extend(items.iter().map(|g| g["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
    panic!("the listing of {path} does not end");
}

#[tokio::test]
async fn groups_and_sweeps_are_listed_a_page_at_a_time() {
    let broker = Broker::start().await;
    let yaml = "template: {entrypoint: python train.py, resources: {cpus: 1}}\njobs: [{}]\n";
    let mut groups = Vec::new();
    let mut sweeps = Vec::new();
    for i in 0..5 {
        let (status, group) = post_raw(&broker, "/v1/groups", "application/yaml", yaml).await;
        assert_eq!(status, 201, "{group}");
        groups.push(created_and_id(&group));
        if i < 3 {
            let spec = sweep(json!({"num_trials": 1}));
            let (status, created) = broker.post_json("/v1/sweeps", ROBOTICS, &spec).await;
            assert_eq!(status, 201, "{created}");
            sweeps.push(created_and_id(&created));
        }
    }
    // Newest first; within a millisecond, by id descending.
    let newest_first = |mut all: Vec<(u64, String)>| -> Vec<String> {
        all.sort_by(|a, b| b.cmp(a));
        all.into_iter().map(|(_, id)| id).collect()
    };
    let (groups, sweeps) = (newest_first(groups), newest_first(sweeps));
    assert_eq!(all_pages(&broker, "/v1/groups", "groups", 2).await, groups);
    assert_eq!(all_pages(&broker, "/v1/sweeps", "sweeps", 2).await, sweeps);
    assert_eq!(all_pages(&broker, "/v1/sweeps", "sweeps", 50).await, sweeps);
    // Another tenant sees none of them.
    let (_, list) = broker.get("/v1/groups?limit=1", VISION).await;
    assert_eq!(list, json!({"groups": []}), "{list}");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=two", "limit"),
        ("cursor=yesterday", "cursor"),
        ("cursor=12-x", "cursor"),
        ("limit=2&limit=3", "limit"),
        ("page=2", "page"),
    ] {
        let (status, body) = broker.get(&format!("/v1/groups?{query}"), ROBOTICS).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(fields(&body), [field], "{query}: {body}");
    }

    // The CLI: one page with a hint on stderr, or every page with --all.
    let one = cli(&broker, &["group", "list", "--limit", "2"]).await;
    assert_eq!(
        groups.iter().filter(|id| one.contains(id.as_str())).count(),
        2,
        "{one}"
    );
    let every = cli(&broker, &["group", "list", "--limit", "2", "--all"]).await;
    assert!(
        groups.iter().all(|id| every.contains(id.as_str())),
        "{every}"
    );
    let json_out = cli(
        &broker,
        &["sweep", "list", "--limit", "1", "--all", "--output", "json"],
    )
    .await;
    let listed: Value = serde_json::from_str(&json_out).expect("JSON");
    let ids: Vec<_> = listed["sweeps"]
        .as_array()
        .expect("sweeps")
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, sweeps, "{listed}");
    broker.stop().await;
}

/// Runs the `raybroker` binary against the broker as tenant robotics; its
/// stdout (it must succeed).
async fn cli(broker: &Broker, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_raybroker"));
    command
        .args(args)
        .env("RAYBROKER_SERVER", &broker.base)
        .env("RAYBROKER_TOKEN", ROBOTICS)
        .env_remove("RAYBROKER_TOKEN_FILE")
        .env_remove("RAYBROKER_OUTPUT");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run raybroker");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "raybroker {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_shipped_group_and_sweep_examples_are_valid() {
    use raybroker::loops::groups::sweep_spec::SweepSpec;
    use raybroker_core::group::{parse_document, GroupSpec};
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/examples");
    for (file, members) in [("group-seeds.yaml", 4), ("group-packed.yaml", 3)] {
        let text = std::fs::read(format!("{root}/{file}")).unwrap();
        let spec = GroupSpec::parse(&text, true).unwrap_or_else(|e| panic!("{file}: {e}"));
        let jobs = spec.members().unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert_eq!(jobs.len(), members, "{file}");
    }
    for (file, trials) in [
        ("sweep/toy-sweep.yaml", 30),
        ("sweep/isaaclab-ppo-sweep.yaml", 72),
    ] {
        let text = std::fs::read(format!("{root}/{file}")).unwrap();
        let spec: SweepSpec = parse_document(&text, true).unwrap_or_else(|e| panic!("{file}: {e}"));
        let sample = spec.check().unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert_eq!(spec.total_trials(), trials, "{file}");
        assert!(!sample.entrypoint.contains("{{"), "{}", sample.entrypoint);
    }
}

#[tokio::test]
async fn the_openapi_document_describes_groups_and_sweeps() {
    let broker = Broker::start().await;
    let response = broker
        .request(Method::GET, "/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    let (status, doc) = body_of(response).await;
    assert_eq!(status, 200);
    for (path, method) in [
        ("/v1/groups", "post"),
        ("/v1/groups/{id}", "get"),
        ("/v1/groups/{id}/results", "get"),
        ("/v1/groups/{id}/cancel", "post"),
        ("/v1/sweeps", "post"),
        ("/v1/sweeps/{id}", "get"),
        ("/v1/sweeps/{id}/leaderboard.csv", "get"),
        ("/v1/sweeps/{id}/plot.svg", "get"),
        ("/v1/sweeps/{id}/cancel", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    // Every schema referenced is defined.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for reference in refs {
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{reference} is not defined"
        );
    }
    broker.stop().await;
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
