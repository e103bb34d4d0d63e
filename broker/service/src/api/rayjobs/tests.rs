//! The mapping tables, without IO. The real Ray clients drive the endpoint
//! end to end in `tests/rayjobs.rs`.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use raybroker_core::{
    validate, GpuModel, Job, JobId, JobSpec, JobState, Quantity, TenantId, Transition,
    ValidationContext,
};
use serde_json::{json, Value};

use super::convert::{labels, ray_field, to_spec, SubmitRequest};
use super::details::{job_details, ray_status, submission_id};
use super::RayError;

fn request(body: Value) -> SubmitRequest {
    serde_json::from_value(body).expect("a valid request")
}

fn spec_of(body: Value) -> Result<JobSpec, String> {
    to_spec(&request(body), "raysubmit_test", &HashMap::new())
}

#[test]
fn requests_are_read_strictly() {
    let missing = serde_json::from_value::<SubmitRequest>(json!({"submission_id": "x"}));
    assert!(missing.unwrap_err().to_string().contains("entrypoint"));
    let unknown =
        serde_json::from_value::<SubmitRequest>(json!({"entrypoint": "x", "tenant": "a"}));
    assert!(unknown.unwrap_err().to_string().contains("tenant"));
    // Old clients send nulls for unset fields.
    let nulls = request(json!({"entrypoint": "x", "runtime_env": null, "metadata": null}));
    assert!(spec_of(json!({"entrypoint": "x", "runtime_env": null})).is_ok());
    assert_eq!(nulls.metadata, None);
}

#[test]
fn resources_follow_ray_fields_and_the_gpu_model_convention() {
    let spec = spec_of(json!({
        "entrypoint": "python train.py",
        "entrypoint_num_cpus": 2,
        "entrypoint_num_gpus": 0.5,
        "entrypoint_memory": 1073741824_u64,
        "entrypoint_resources": {"accelerator_type:a100": 0.001, "license": 1},
        "metadata": {"raybroker.gpu_types": "H100|A100"}
    }))
    .unwrap();
    let r = &spec.resources;
    assert_eq!(r.cpus, Quantity::whole(2));
    assert_eq!(r.gpus, Quantity::from_units(5_000));
    assert_eq!(r.memory.0, 1 << 30);
    let models: Vec<&str> = r.gpu_types.iter().map(GpuModel::as_str).collect();
    assert_eq!(models, ["A100", "H100"]);
    assert_eq!(r.custom["license"], Quantity::whole(1));
    assert_eq!(r.custom.len(), 1);
    assert_eq!(spec.idempotency_key.as_deref(), Some("raysubmit_test"));

    // Absent amounts are 0, as in Ray (not the broker's default of 1 CPU).
    let bare = spec_of(json!({"entrypoint": "echo"})).unwrap();
    assert!(bare.resources.cpus.is_zero() && bare.resources.gpus.is_zero());

    let err = spec_of(json!({"entrypoint": "x", "entrypoint_num_cpus": -1})).unwrap_err();
    assert!(err.contains("entrypoint_num_cpus"), "{err}");
    let err =
        spec_of(json!({"entrypoint": "x", "entrypoint_resources": {"accelerator_type:A 1": 1}}))
            .unwrap_err();
    assert!(err.contains("GPU model"), "{err}");
}

#[test]
fn broker_options_come_from_metadata() {
    let spec = spec_of(json!({"entrypoint": "x", "metadata": {
        "raybroker.priority": "5", "raybroker.max_retries": "2", "raybroker.time_limit": "90m"
    }}))
    .unwrap();
    assert_eq!(spec.priority, 5);
    assert_eq!(spec.max_retries, 2);
    assert_eq!(spec.time_limit.map(|d| d.as_secs()), Some(5400));
    let err = spec_of(json!({"entrypoint": "x", "metadata": {"raybroker.priority": "high"}}));
    assert!(err.unwrap_err().contains("raybroker.priority"));
}

#[test]
fn metadata_is_sanitised_into_valid_labels() {
    let long_value = "é".repeat(200);
    let metadata = BTreeMap::from([
        ("project".to_string(), "ant".to_string()),
        ("bad key!".to_string(), "a\nb".to_string()),
        ("bad_key_".to_string(), "loses to the first".to_string()),
        ("k".repeat(80), long_value),
        ("".to_string(), "empty key".to_string()),
    ]);
    let labels = labels(&metadata);
    assert_eq!(labels["project"], "ant");
    assert_eq!(labels["bad_key_"], "ab");
    assert_eq!(labels["k".repeat(63).as_str()].len(), 256);
    assert_eq!(labels.len(), 3);
    let spec = JobSpec {
        entrypoint: "x".into(),
        labels,
        ..JobSpec::default()
    };
    assert_eq!(validate(&spec, &ValidationContext::default()), Ok(()));

    let many: BTreeMap<String, String> =
        (0..100).map(|i| (format!("k{i:03}"), "v".into())).collect();
    assert_eq!(super::convert::labels(&many).len(), 64);
}

#[test]
fn runtime_env_passes_through_and_packages_are_rewritten() {
    let digest = "ab".repeat(32);
    let digests = HashMap::from([("gcs://_ray_pkg_1f.zip".to_string(), digest.clone())]);
    let body = request(json!({
        "entrypoint": "python script.py",
        "runtime_env": {
            "working_dir": "gcs://_ray_pkg_1f.zip",
            "py_modules": ["s3://bucket/mod.zip"],
            "pip": {"packages": ["requests==2.31.0"], "pip_check": false},
            "env_vars": {"A": "1"},
            "excludes": ["*.ckpt"],
            "_ray_commit": "abc"
        }
    }));
    assert_eq!(
        body.uploaded_packages(),
        [("gcs".to_string(), "_ray_pkg_1f.zip".to_string())]
    );
    let env = to_spec(&body, "id", &digests).unwrap().runtime_env;
    assert_eq!(
        env.working_dir,
        Some(format!("gcs://_ray_pkg_rb{digest}.zip"))
    );
    assert_eq!(env.py_modules, ["s3://bucket/mod.zip"]);
    assert_eq!(env.pip, ["requests==2.31.0"]);
    assert_eq!(env.env_vars["A"], "1");

    // A package the tenant never uploaded, a local path, an unsupported key.
    let err = to_spec(&body, "id", &HashMap::new()).unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    for (runtime_env, words) in [
        (json!({"working_dir": "./src"}), "local path"),
        (
            json!({"conda": "env.yaml"}),
            "runtime_env.conda is not supported",
        ),
        (
            json!({"py_modules": ["gcs://m-1.0-py3-none-any.whl"]}),
            "wheels",
        ),
        (
            json!({"pip": {"packages": ["x"], "pip_version": "==23"}}),
            "pip_version",
        ),
        (json!({"env_vars": {"A": 1}}), "must be a string"),
    ] {
        let err = spec_of(json!({"entrypoint": "x", "runtime_env": runtime_env})).unwrap_err();
        assert!(err.contains(words), "{err}");
    }
}

#[test]
fn label_selectors_are_refused_unless_empty() {
    assert!(spec_of(json!({"entrypoint": "x", "entrypoint_label_selector": {}})).is_ok());
    let err = spec_of(json!({"entrypoint": "x", "entrypoint_label_selector": {"zone": "a"}}));
    assert!(err.unwrap_err().contains("entrypoint_label_selector"));
}

#[test]
fn spec_fields_are_named_as_the_request_names_them() {
    assert_eq!(ray_field("resources.gpus"), "entrypoint_num_gpus");
    assert_eq!(
        ray_field("resources.custom.GPU"),
        "entrypoint_resources.GPU"
    );
    assert_eq!(ray_field("labels.a"), "metadata.a");
    assert_eq!(ray_field("idempotency_key"), "submission_id");
    assert_eq!(ray_field("entrypoint"), "entrypoint");
}

fn job(state: JobState, key: Option<&str>) -> Job {
    let id: JobId = "01JDQ3ZK8V6X9T2M4N5P7R8S9A".parse().unwrap();
    Job {
        id,
        tenant: TenantId::new("robotics").unwrap(),
        name: "train".into(),
        state,
        reason: "entrypoint exited with code 3 on ray-a: boom".into(),
        attempt: 1,
        cluster: Some("ray-a".into()),
        cancel_requested: false,
        exit_code: Some(3),
        failure: None,
        failover: Default::default(),
        created_at_ms: 1_000,
        updated_at_ms: 9_000,
        spec: JobSpec {
            entrypoint: "python train.py".into(),
            idempotency_key: key.map(str::to_string),
            labels: BTreeMap::from([("project".to_string(), "ant".to_string())]),
            ..JobSpec::default()
        },
        attempts: Vec::new(),
        history: vec![Transition {
            from: Some(JobState::Running),
            to: state,
            at_ms: 5_000,
            attempt: 1,
            reason: String::new(),
        }],
    }
}

#[test]
fn states_map_onto_rays() {
    let table = [
        (JobState::Queued, "PENDING"),
        (JobState::Dispatching, "PENDING"),
        (JobState::Submitted, "PENDING"),
        (JobState::Running, "RUNNING"),
        (JobState::Succeeded, "SUCCEEDED"),
        (JobState::Failed, "FAILED"),
        (JobState::Cancelled, "STOPPED"),
    ];
    for (state, ray) in table {
        assert_eq!(ray_status(state), ray, "{state}");
    }
}

#[test]
fn jobs_read_as_ray_job_details() {
    let failed = serde_json::to_value(job_details(&job(JobState::Failed, Some("sub-1")))).unwrap();
    assert_eq!(failed["type"], "SUBMISSION");
    assert_eq!(failed["submission_id"], "sub-1");
    assert_eq!(failed["job_id"], "01JDQ3ZK8V6X9T2M4N5P7R8S9A");
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["error_type"], "JOB_ENTRYPOINT_COMMAND_ERROR");
    assert_eq!(
        failed["message"],
        "entrypoint exited with code 3 on ray-a: boom"
    );
    assert_eq!(failed["driver_exit_code"], 3);
    assert_eq!(failed["start_time"], 1_000);
    assert_eq!(failed["end_time"], 5_000);
    assert_eq!(failed["metadata"], json!({"project": "ant"}));
    assert_eq!(failed["runtime_env"], json!({}));
    assert_eq!(failed["raybroker"]["cluster"], "ray-a");

    let running = serde_json::to_value(job_details(&job(JobState::Running, None))).unwrap();
    assert_eq!(running["submission_id"], "01JDQ3ZK8V6X9T2M4N5P7R8S9A");
    assert_eq!(running["end_time"], Value::Null);
    assert_eq!(running["error_type"], Value::Null);
    assert_eq!(submission_id(&job(JobState::Queued, Some("k"))), "k");
}

#[tokio::test]
async fn errors_answer_in_plain_text_like_a_ray_head() {
    let duplicate = RayError::duplicate("sub-1");
    assert_eq!(duplicate.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The string Ray's own tools (and raybroker's Ray adapter) match on.
    assert!(duplicate.text().contains("already exists"));
    let missing = RayError::no_such_job("sub-2");
    assert_eq!(missing.text(), "Job sub-2 does not exist");
    let response = missing.into_response();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}
