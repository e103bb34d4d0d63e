//! Traces, metrics and results: a Python job instrumented with the
//! OpenTelemetry SDK (from PyPI, in the heads' venvs) runs on each real Ray
//! head through the broker; its spans land in the broker's trace of the job
//! (one trace id), its metrics reach the job's results both from the
//! one-line log format and over OTLP, and the ingest refuses requests
//! without the job's token or with bodies it cannot read. The same job runs
//! on the test Slurm, inside the Ray cluster of its allocation.

use std::time::Duration;

use raybroker_core::JobState;
use serde_json::{json, Value};

use crate::support::slurm::{SLURM, SLURM_GPU_MODEL};
use crate::support::{gpu_spec, TestEnv, HEAD_A, HEAD_B};

/// The instrumented job: spans `train` > `epoch` x3 parented on the
/// TRACEPARENT the broker hands it, three metric lines in the log format, an
/// artifact line, and one gauge over OTLP.
const JOB: &str = r#"
import json, os
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

resource = Resource.create({"service.name": "e2e-trainer"})
spans = TracerProvider(resource=resource)
spans.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
tracer = spans.get_tracer("e2e")
parent = TraceContextTextMapPropagator().extract({"traceparent": os.environ["TRACEPARENT"]})
with tracer.start_as_current_span("train", context=parent):
    for step in range(3):
        with tracer.start_as_current_span("epoch"):
            line = {"step": step, "reward": 0.5 + step / 10, "loss": 1 / (step + 1)}
            print("RAYBROKER_METRICS " + json.dumps(line), flush=True)
print("RAYBROKER_ARTIFACT s3://e2e-bucket/model.pt", flush=True)
reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=600000)
meters = MeterProvider(resource=resource, metric_readers=[reader])
meters.get_meter("e2e").create_gauge("otlp_accuracy").set(0.93, {"step": 7})
meters.shutdown()
spans.shutdown()
print("telemetry job done", flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_spans_and_metrics_join_the_broker_trace_and_results_on_both_heads() {
    let env = TestEnv::start("telemetry").await;
    let script = std::env::temp_dir().join(format!("{}-job.py", env.origin));
    std::fs::write(&script, JOB).expect("write the job script");
    let entrypoint = format!("python {}", script.display());
    // A100s are only on head A (Ray 2.31.0), L4s only on head B (Ray 2.60.0).
    let on_a = env.submit(&gpu_spec(&entrypoint, 1, "A100")).await;
    let on_b = env.submit(&gpu_spec(&entrypoint, 1, "L4")).await;

    for (id, head) in [(&on_a, HEAD_A), (&on_b, HEAD_B)] {
        let job = env.wait_finished(id, Duration::from_secs(180)).await;
        let logs = env.complete_logs(id, Duration::from_secs(30)).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:#?}\nlog:\n{logs}");
        assert_eq!(job.cluster.as_deref(), Some(head));
        assert!(logs.contains("telemetry job done"), "log:\n{logs}");
        check_trace(&env, id, head).await;
        check_results(&env, id, head).await;
    }
    check_ingest_refusals(&env, &on_a, HEAD_A).await;
    check_aggregates(&env).await;
    let _ = std::fs::remove_file(&script);
}

/// The same instrumented job on the test Slurm: it runs inside the Ray
/// cluster of its allocation, with the trace context and OTLP endpoint the
/// broker passed through the batch script's environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_spans_and_metrics_join_the_broker_trace_and_results_on_slurm() {
    let env = TestEnv::start_with_slurm("telemetry-slurm").await;
    let script = std::env::temp_dir().join(format!("{}-job.py", env.origin));
    std::fs::write(&script, JOB).expect("write the job script");
    let entrypoint = format!("python {}", script.display());
    let id = env.submit(&gpu_spec(&entrypoint, 1, SLURM_GPU_MODEL)).await;
    let job = env.wait_finished(&id, Duration::from_secs(180)).await;
    let logs = env.complete_logs(&id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:#?}\nlog:\n{logs}");
    assert_eq!(job.cluster.as_deref(), Some(SLURM));
    assert!(logs.contains("telemetry job done"), "log:\n{logs}");
    check_trace(&env, &id, SLURM).await;
    check_results(&env, &id, SLURM).await;
    let _ = std::fs::remove_file(&script);
}

/// Broker, cluster and job spans share the job's trace id, and the job's
/// `train` span hangs under the attempt's span.
async fn check_trace(env: &TestEnv, id: &str, head: &str) {
    // The job's spans arrive while it runs; the trace is complete once the
    // job has finished and the cluster's times are recorded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let trace = loop {
        let (status, trace) = env
            .call(reqwest::Method::GET, &format!("/v1/jobs/{id}/trace"), None)
            .await;
        assert_eq!(status, 200, "{trace}");
        let spans = trace["spans"].as_array().cloned().unwrap_or_default();
        let has = |origin: &str| spans.iter().any(|s| s["origin"] == origin);
        if has("job") && has("cluster") {
            break trace;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no job or cluster spans in the trace: {trace:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let trace_id = trace["trace_id"].as_str().expect("a trace id");
    assert_eq!(trace_id.len(), 32);
    let spans = trace["spans"].as_array().expect("spans");
    for span in spans {
        assert_eq!(
            span["trace_id"], trace_id,
            "a span outside the job's trace: {span:#}"
        );
    }
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    for broker_span in [
        "submit",
        "queued",
        "dispatch",
        "placement",
        "running",
        "completion",
    ] {
        assert!(
            named(broker_span).iter().any(|s| s["origin"] == "broker"),
            "no broker span '{broker_span}': {trace:#}"
        );
    }
    let attempt = named("attempt 1");
    assert_eq!(attempt.len(), 1, "{trace:#}");
    assert_eq!(attempt[0]["attributes"]["cluster"], head);
    assert_eq!(attempt[0]["attributes"]["tenant"], "e2e");
    let train = named("train");
    assert_eq!(train.len(), 1, "{trace:#}");
    assert_eq!(train[0]["origin"], "job");
    assert_eq!(train[0]["service"], "e2e-trainer");
    assert_eq!(
        train[0]["parent_span_id"], attempt[0]["span_id"],
        "the job's span is not under the attempt: {trace:#}"
    );
    let epochs = named("epoch");
    assert_eq!(epochs.len(), 3, "{trace:#}");
    assert!(epochs
        .iter()
        .all(|e| e["parent_span_id"] == train[0]["span_id"]));
    let cluster_run = spans
        .iter()
        .find(|s| s["origin"] == "cluster")
        .expect("a span from the head's own times");
    assert_eq!(cluster_run["parent_span_id"], attempt[0]["span_id"]);
    // The broker's calls to the head about this attempt, under it.
    let submit = named("adapter.submit");
    assert_eq!(submit.len(), 1, "{trace:#}");
    assert_eq!(submit[0]["parent_span_id"], attempt[0]["span_id"]);
    assert_eq!(submit[0]["attributes"]["cluster"], head);
    assert_eq!(submit[0]["attributes"]["outcome"], "created");
    let statuses: Vec<&str> = named("adapter.status")
        .iter()
        .filter_map(|s| s["attributes"]["outcome"].as_str())
        .collect();
    assert!(
        statuses.contains(&"succeeded"),
        "no status read saw the end: {statuses:?}"
    );
    // The tree puts the job's spans below the attempt.
    assert!(train[0]["depth"].as_u64() > attempt[0]["depth"].as_u64());
}

/// Metrics from the log lines and over OTLP, the artifact, timings.
async fn check_results(env: &TestEnv, id: &str, head: &str) {
    let (status, r) = env
        .call(
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}/results"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(r["exit_code"], 0, "{r:#}");
    assert_eq!(r["cluster"], head, "{r:#}");
    assert_eq!(r["attempts"].as_array().map(Vec::len), Some(1), "{r:#}");
    // the log format
    assert_eq!(r["last"]["reward"]["value"], 0.7, "{r:#}");
    assert_eq!(r["last"]["reward"]["step"], 2, "{r:#}");
    assert_eq!(r["max"]["reward"]["value"], 0.7, "{r:#}");
    assert_eq!(r["min"]["reward"]["value"], 0.5, "{r:#}");
    assert_eq!(r["min"]["loss"]["step"], 2, "{r:#}");
    // OTLP
    assert_eq!(r["last"]["otlp_accuracy"]["value"], 0.93, "{r:#}");
    assert_eq!(r["last"]["otlp_accuracy"]["step"], 7, "{r:#}");
    assert_eq!(r["last"]["otlp_accuracy"]["attempt"], 1, "{r:#}");
    assert_eq!(r["artifacts"], json!(["s3://e2e-bucket/model.pt"]), "{r:#}");
    assert!(r["timings"]["running_ms"].as_u64() > Some(0), "{r:#}");
    assert!(r["timings"]["total_ms"].as_u64() >= r["timings"]["running_ms"].as_u64());
}

/// Without the job's token, 401; with it but an unreadable body, 400 naming
/// the problem; an unknown encoding, 415.
async fn check_ingest_refusals(env: &TestEnv, id: &str, head: &str) {
    let token = job_token(env, id, head).await;
    let http = reqwest::Client::new();
    let post = |path: &str, headers: &[(&str, &str)], content_type: &str, body: Vec<u8>| {
        let mut request = http
            .post(format!("{}{path}", env.base))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    };
    let ours = [
        ("x-raybroker-job", id),
        ("x-raybroker-token", token.as_str()),
    ];
    let (status, body) = answer(
        post("/v1/traces", &[], "application/x-protobuf", vec![])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("x-raybroker-token"), "{body}");
    let wrong = "0".repeat(64);
    let forged = [
        ("x-raybroker-job", id),
        ("x-raybroker-token", wrong.as_str()),
    ];
    let (status, body) = answer(
        post("/v1/metrics", &forged, "application/json", b"{}".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // Another job's token does not open this job.
    let other = [
        ("x-raybroker-job", "01JDQ3ZK8V6X9T2M4N5P7R8S9A"),
        ("x-raybroker-token", token.as_str()),
    ];
    let (status, body) = answer(
        post("/v1/traces", &other, "application/json", b"{}".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    let (status, body) = answer(
        post(
            "/v1/traces",
            &ours,
            "application/x-protobuf",
            vec![0xff, 0xff, 0xff],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not an OTLP protobuf message"), "{body}");
    let (status, body) = answer(
        post(
            "/v1/metrics",
            &ours,
            "application/json",
            br#"{"resourceMetrics": 5}"#.to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("resourceMetrics"), "{body}");
    let (status, body) = answer(
        post("/v1/traces", &ours, "text/plain", b"hi".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    // A valid empty request is accepted.
    let (status, body) = answer(
        post("/v1/traces", &ours, "application/json", b"{}".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// The job's token, as the broker handed it to the attempt: read from the
/// head's record of the submission's runtime environment.
async fn job_token(env: &TestEnv, id: &str, head: &str) -> String {
    let job = env.job(id).await;
    let submission = &job.attempts[0].submission_id;
    let url = format!("{}/api/jobs/{submission}", env.heads.url(head));
    // Ray 2.31's dashboard answers 500 to a request without a user agent.
    let http = reqwest::Client::builder()
        .user_agent("raybroker-e2e")
        .build()
        .expect("an HTTP client");
    let info: Value = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the head's record of the job")
        .json()
        .await
        .expect("JSON from the head");
    let env_vars = &info["runtime_env"]["env_vars"];
    assert_eq!(
        env_vars["OTEL_EXPORTER_OTLP_ENDPOINT"], env.base,
        "{info:#}"
    );
    let headers = env_vars["OTEL_EXPORTER_OTLP_HEADERS"]
        .as_str()
        .unwrap_or_else(|| panic!("no OTLP headers in the job's environment: {info:#}"));
    assert!(
        env_vars["TRACEPARENT"]
            .as_str()
            .is_some_and(|t| t.starts_with("00-")),
        "{info:#}"
    );
    headers
        .split(',')
        .find_map(|kv| kv.strip_prefix("x-raybroker-token="))
        .unwrap_or_else(|| panic!("no token in {headers}"))
        .to_string()
}

/// Grouped by cluster: one row per head; per job as CSV with metric columns.
async fn check_aggregates(env: &TestEnv) {
    let (status, r) = env
        .call(reqwest::Method::GET, "/v1/results?by=cluster", None)
        .await;
    assert_eq!(status, 200, "{r}");
    let rows = r["aggregates"].as_array().expect("aggregates");
    let keys: Vec<&str> = rows.iter().filter_map(|a| a["key"].as_str()).collect();
    assert_eq!(keys, [HEAD_A, HEAD_B], "{r:#}");
    for row in rows {
        assert_eq!(
            (row["jobs"].as_u64(), row["succeeded"].as_u64()),
            (Some(1), Some(1)),
            "{r:#}"
        );
        assert_eq!(row["metrics"]["reward"]["max_last"], 0.7, "{r:#}");
    }
    let response = reqwest::Client::new()
        .get(format!("{}/v1/results?format=csv", env.base))
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("results as CSV");
    assert_eq!(response.status().as_u16(), 200);
    let csv = response.text().await.unwrap_or_default();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("job_id,name,tenant,state,"), "{csv}");
    assert!(
        lines[0].contains("last:otlp_accuracy") && lines[0].contains("last:reward"),
        "{csv}"
    );
    assert!(
        lines[1..].iter().all(|l| l.contains(",succeeded,")),
        "{csv}"
    );
    let (status, r) = env
        .call(reqwest::Method::GET, "/v1/results?by=colour", None)
        .await;
    assert_eq!(status, 400, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap_or("").contains("by"),
        "{r}"
    );
}
