//! `raybroker explain` and `raybroker submit --dry-run` against a canned
//! broker, and `--dry-run` without one.

use raybroker_core::{JobSpec, Quantity};
use serde_json::{json, Value};

use crate::support::*;

const TEXT: &str = "job 01JDQ3ZK8V6X9T2M4N5P7R8S9A: waiting, position 1: waiting for capacity\n  onprem-a (tier 0): not now: no fresh capacity snapshot\n";

fn report(job_id: &str) -> Value {
    json!({"job_id": job_id, "state": "queued", "placed": null, "text": TEXT,
           "explanation": {"job_id": job_id, "outcome": {"kind": "waiting", "position": 1}}})
}

#[test]
fn explain_prints_the_brokers_text() {
    let broker = FakeBroker::start(vec![json_reply(200, report(JOB_ID))]);
    let output = run_with(
        &["explain", JOB_ID, "--server", &broker.url],
        "",
        &[("RAYBROKER_TOKEN", "secret-1")],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), TEXT);
    let requests = broker.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, format!("/v1/jobs/{JOB_ID}/placement"));
    assert_eq!(requests[0].header("authorization"), Some("Bearer secret-1"));
}

#[test]
fn explain_prints_the_json_unchanged_with_output_json() {
    let broker = FakeBroker::start(vec![json_reply(200, report(JOB_ID))]);
    let output = run(&["explain", JOB_ID, "-o", "json", "--server", &broker.url]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).expect("JSON on stdout");
    assert_eq!(printed, report(JOB_ID));
}

#[test]
fn explain_of_an_unknown_job_fails() {
    let body = json!({"error": {"code": "not_found", "message": "no such job"}});
    let broker = FakeBroker::start(vec![json_reply(404, body)]);
    let output = run(&["explain", JOB_ID, "--server", &broker.url]);
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains("no such job"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn dry_run_prints_the_spec_then_the_brokers_explanation() {
    let broker = FakeBroker::start(vec![json_reply(200, report("dry-run"))]);
    let output = run(&[
        "submit",
        "--dry-run",
        "--server",
        &broker.url,
        "--gpus",
        "2",
        "--",
        "python",
        "train.py",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    let (spec, explanation) = text
        .split_once("\n\nplacement if submitted now:\n")
        .unwrap_or_else(|| panic!("no explanation in {text}"));
    let spec = JobSpec::from_json(spec.as_bytes()).expect("the spec comes first");
    assert_eq!(spec.resources.gpus, Quantity::whole(2));
    assert_eq!(explanation, TEXT);
    let requests = broker.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].target, "/v1/placement/dry-run");
    let sent = JobSpec::from_json(&requests[0].body).expect("the body is a job spec");
    assert_eq!(sent.entrypoint, "python train.py");
}

#[test]
fn dry_run_json_holds_the_spec_and_the_placement() {
    let broker = FakeBroker::start(vec![json_reply(200, report("dry-run"))]);
    let output = run(&[
        "submit",
        "--dry-run",
        "-o",
        "json",
        "--server",
        &broker.url,
        "--",
        "x",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).expect("JSON on stdout");
    assert_eq!(printed["spec"]["entrypoint"], "x");
    assert_eq!(printed["placement"], report("dry-run"));
}

#[test]
fn dry_run_without_a_broker_prints_the_spec_and_a_note() {
    let output = run(&[
        "submit",
        "--dry-run",
        "--server",
        "http://127.0.0.1:9",
        "--",
        "x",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let spec = JobSpec::from_json(&output.stdout).expect("stdout is the spec alone");
    assert_eq!(spec.entrypoint, "x");
    let note = stderr(&output);
    assert!(
        note.starts_with("note: no broker answered at http://127.0.0.1:9"),
        "{note}"
    );
    assert!(note.contains("placement not explained"), "{note}");
}

#[test]
fn dry_run_refused_by_the_broker_fails_with_its_fields() {
    let body = json!({"error": {"code": "invalid", "message": "the job spec is invalid",
        "fields": [{"field": "resources.gpu_types", "message": "unknown GPU model 'NOPE'"}]}});
    let broker = FakeBroker::start(vec![json_reply(422, body)]);
    let output = run(&["submit", "--dry-run", "--server", &broker.url, "--", "x"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("resources.gpu_types: unknown GPU model 'NOPE'"),
        "{}",
        stderr(&output)
    );
}
