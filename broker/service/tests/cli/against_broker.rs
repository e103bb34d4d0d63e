//! Commands against a canned broker: what is sent, and how answers and
//! errors are shown.

use raybroker_core::{JobSpec, Quantity};
use serde_json::{json, Value};

use crate::support::*;

#[test]
fn submit_posts_the_spec_with_the_token() {
    let broker = FakeBroker::start(vec![json_reply(201, job("queued"))]);
    let output = run_with(
        &[
            "submit",
            "--server",
            &broker.url,
            "--gpus",
            "2",
            "--",
            "python",
            "train.py",
        ],
        "",
        &[("RAYBROKER_TOKEN", "secret-1")],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("submitted job {JOB_ID} (queued)\n")
    );
    let requests = broker.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].target, "/v1/jobs");
    assert_eq!(requests[0].header("authorization"), Some("Bearer secret-1"));
    let sent = JobSpec::from_json(&requests[0].body).expect("the body is a job spec");
    assert_eq!(sent.entrypoint, "python train.py");
    assert_eq!(sent.resources.gpus, Quantity::whole(2));
}

#[test]
fn an_idempotent_replay_says_the_job_exists() {
    let mut existing = job("running");
    existing["spec"]["idempotency_key"] = json!("ant-1");
    let broker = FakeBroker::start(vec![json_reply(200, existing)]);
    let output = run(&[
        "submit",
        "--server",
        &broker.url,
        "--idempotency-key",
        "ant-1",
        "--",
        "python",
        "x.py",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("job {JOB_ID} already exists (idempotency key ant-1); it is running\n")
    );
}

#[test]
fn broker_validation_errors_list_each_field_and_exit_2() {
    let body = json!({"error": {"code": "invalid", "message": "the job spec is invalid",
        "fields": [{"field": "resources.gpus", "message": "1.5 is not valid: above 1, GPUs must be whole"},
                   {"field": "placement.allowed_clusters", "message": "unknown cluster 'nowhere'"}]}});
    let broker = FakeBroker::start(vec![json_reply(422, body)]);
    let output = run(&[
        "submit",
        "--server",
        &broker.url,
        "--gpus",
        "1.5",
        "--",
        "x",
    ]);
    assert_eq!(code(&output), 2);
    assert_eq!(
        stderr(&output),
        "error: the job spec is invalid\n\
         \x20 resources.gpus: 1.5 is not valid: above 1, GPUs must be whole\n\
         \x20 placement.allowed_clusters: unknown cluster 'nowhere'\n\
         hint: fix the fields above and try again\n"
    );
}

#[test]
fn unauthorized_hints_at_the_token_and_exits_1() {
    let body = json!({"error": {"code": "unauthorized", "message": "missing bearer token"}});
    let broker = FakeBroker::start(vec![json_reply(401, body)]);
    let output = run(&["status", JOB_ID, "--server", &broker.url]);
    assert_eq!(code(&output), 1);
    let text = stderr(&output);
    assert!(text.starts_with("error: missing bearer token\n"), "{text}");
    assert!(
        text.contains("hint: set RAYBROKER_TOKEN or pass --token"),
        "{text}"
    );
}

#[test]
fn a_token_file_on_the_command_line_beats_the_environment() {
    let path = temp_file("token", "from-file\n");
    let broker = FakeBroker::start(vec![json_reply(200, json!({"clusters": []}))]);
    let output = run_with(
        &[
            "clusters",
            "--server",
            &broker.url,
            "--token-file",
            path.to_str().expect("utf-8"),
        ],
        "",
        &[("RAYBROKER_TOKEN", "from-env")],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        broker.requests()[0].header("authorization"),
        Some("Bearer from-file")
    );
}

#[test]
fn status_shows_the_job_and_json_output_is_the_brokers() {
    let broker = FakeBroker::start(vec![
        json_reply(200, job("running")),
        json_reply(200, job("running")),
    ]);
    let output = run(&["status", JOB_ID, "--server", &broker.url]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    let state_line = text
        .lines()
        .find(|l| l.starts_with("state:"))
        .expect("a state line");
    assert_eq!(state_line.split_whitespace().nth(1), Some("running"));
    assert!(text.contains("onprem-a"), "{text}");

    let output = run(&["status", JOB_ID, "--server", &broker.url, "-o", "json"]);
    let printed: Value = serde_json::from_slice(&output.stdout).expect("json on stdout");
    assert_eq!(printed, job("running"));
    assert_eq!(broker.requests()[1].target, format!("/v1/jobs/{JOB_ID}"));
}

#[test]
fn list_all_follows_the_cursor() {
    let mut second = job("failed");
    second["id"] = json!("01JDQ3ZK8V6X9T2M4N5P7R8S9B");
    let broker = FakeBroker::start(vec![
        json_reply(200, json!({"jobs": [job("running")], "next_cursor": "c1"})),
        json_reply(200, json!({"jobs": [second], "next_cursor": null})),
    ]);
    let output = run(&[
        "list",
        "--all",
        "--label",
        "project=ant",
        "--server",
        &broker.url,
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "NAME", "STATE", "CLUSTER", "ATTEMPT", "GPUS", "AGE"]
    );
    assert!(lines[1].starts_with(JOB_ID), "{text}");
    assert!(lines[2].contains("failed"), "{text}");
    let requests = broker.requests();
    assert_eq!(requests[0].target, "/v1/jobs?label=project%3Dant");
    assert_eq!(requests[1].target, "/v1/jobs?label=project%3Dant&cursor=c1");
}

#[test]
fn cancel_prints_its_effect() {
    let broker = FakeBroker::start(vec![json_reply(
        200,
        json!({"effect": "requested", "job": job("running")}),
    )]);
    let output = run(&["cancel", JOB_ID, "--server", &broker.url]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with(&format!(
            "cancel requested for job {JOB_ID}; it stops once onprem-a confirms"
        )),
        "{}",
        stdout(&output)
    );
    assert_eq!(broker.requests()[0].method, "POST");
    assert_eq!(
        broker.requests()[0].target,
        format!("/v1/jobs/{JOB_ID}/cancel")
    );
}

#[test]
fn clusters_are_a_table() {
    let broker = FakeBroker::start(vec![json_reply(
        200,
        json!({"clusters": [{"name": "onprem-a", "kind": "ray", "tier": 0, "cost_per_gpu_hour": 1.5,
                             "labels": {"site": "onprem"}, "healthy": true, "version": "2.31.0",
                             "gpus": {"A100": {"total": 4.0, "free": 3.0}}}]}),
    )]);
    let output = run(&["clusters", "--server", &broker.url]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let rows: Vec<Vec<String>> = stdout(&output)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "KIND",
            "TIER",
            "STATUS",
            "GPUS(FREE/TOTAL)",
            "VERSION",
            "$/GPU-H",
            "LABELS"
        ]
    );
    assert_eq!(
        rows[1],
        [
            "onprem-a",
            "ray",
            "0",
            "healthy",
            "A100:3/4",
            "2.31.0",
            "1.50",
            "site=onprem"
        ]
    );
}

#[test]
fn watch_exits_1_when_the_job_fails() {
    let broker = FakeBroker::start(vec![sse_reply(&[
        transition(None, "queued", 1_000),
        transition(Some("queued"), "running", 2_000),
        transition(Some("running"), "failed", 3_000),
    ])]);
    let output = run(&["watch", JOB_ID, "--server", &broker.url]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[2],
        "1970-01-01T00:00:03Z  running -> failed  attempt 1  now failed"
    );
    assert_eq!(
        broker.requests()[0].header("accept"),
        Some("text/event-stream")
    );
}

#[test]
fn watch_checks_the_job_when_the_stream_ends_early() {
    let broker = FakeBroker::start(vec![
        sse_reply(&[transition(None, "queued", 1_000)]),
        json_reply(200, job("succeeded")),
    ]);
    let output = run(&["watch", JOB_ID, "--server", &broker.url]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&format!("job {JOB_ID} is succeeded"))),
        "{text}"
    );
}

#[test]
fn submit_wait_in_json_prints_the_job_then_one_event_per_line() {
    let broker = FakeBroker::start(vec![
        json_reply(201, job("queued")),
        sse_reply(&[
            transition(None, "queued", 1_000),
            transition(Some("queued"), "succeeded", 2_000),
        ]),
    ]);
    let output = run(&[
        "submit",
        "--wait",
        "-o",
        "json",
        "--server",
        &broker.url,
        "--",
        "python",
        "x.py",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], JOB_ID);
    assert_eq!(lines[2]["to"], "succeeded");
}
