//! The Ray Jobs API compatible endpoint, driven by Ray's real clients (the
//! `ray` CLI and `JobSubmissionClient` of Ray 2.31.0 and 2.60.0) against an
//! in-process broker whose clusters are two real Ray heads. Run with
//! `deploy/local/test.sh -p raybroker --test rayjobs`, which starts Redis
//! and the heads; without them every test fails, naming that script.

#[path = "rayjobs/support.rs"]
mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{
    describe, headers_json, run, run_script, run_with_env, Broker, RayVersion, MAX_BODY_BYTES,
    MAX_PACKAGE_BYTES, ROBOTICS, VISION,
};

/// `ray job submit --working-dir DIR -- python script.py`: the broker stores
/// the uploaded directory (and a `py_modules` entry), places the job on the
/// head with the GPU model it asks for (A100 on Ray 2.31, L4 on Ray 2.60),
/// delivers the packages there, and the script reads a file of its working
/// directory and imports the module.
async fn submit_with_working_dir(version: RayVersion) {
    let broker = Broker::over_heads().await;
    let dir = tempdir(&format!("rayjobs-wd-{}", version.release()));
    let secret = format!("working-dir-content-{}", ulid::Ulid::new());
    std::fs::write(dir.join("data.txt"), &secret).unwrap();
    std::fs::write(
        dir.join("script.py"),
        "import helper\nprint('read:', open('data.txt').read(), helper.VALUE, flush=True)\n",
    )
    .unwrap();
    // A module outside the working dir, shipped as py_modules.
    let modules = tempdir(&format!("rayjobs-mod-{}", version.release()));
    let helper = modules.join("helper");
    std::fs::create_dir_all(&helper).unwrap();
    std::fs::write(helper.join("__init__.py"), "VALUE = 'from-py-modules'\n").unwrap();
    let runtime_env = json!({ "py_modules": [helper.to_str().unwrap()] }).to_string();
    // Incompressible and over api.max_body_bytes, so the upload proves the
    // package limit applies to packages.
    std::fs::write(dir.join("weights.bin"), noise(MAX_BODY_BYTES as usize * 3)).unwrap();

    let resources = json!({ format!("accelerator_type:{}", version.gpu_model()): 0.001 });
    let args = [
        "job",
        "submit",
        "--address",
        &broker.base,
        "--headers",
        &headers_json(ROBOTICS),
        "--working-dir",
        dir.to_str().unwrap(),
        "--runtime-env-json",
        &runtime_env,
        "--entrypoint-num-gpus",
        "1",
        "--entrypoint-resources",
        &resources.to_string(),
        "--",
        "python",
        "script.py",
    ];
    let output = run(version, "ray", args.iter().map(|a| a.to_string()).collect()).await;
    let shown = describe(&output);
    assert!(output.status.success(), "ray job submit failed:\n{shown}");
    assert!(
        shown.contains(&format!("read: {secret} from-py-modules")),
        "{shown}"
    );
    assert!(shown.contains("succeeded"), "{shown}");

    let submission_id = shown
        .split("Job '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no submission id in:\n{shown}"))
        .to_string();
    let (status, job) = broker
        .get(&format!("/api/jobs/{submission_id}"), ROBOTICS)
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert_eq!(job["raybroker"]["cluster"], version.cluster(), "{job}");
    let working_dir = job["runtime_env"]["working_dir"].as_str().unwrap_or("");
    assert!(working_dir.starts_with("gcs://_ray_pkg_rb"), "{job}");
    let module = job["runtime_env"]["py_modules"][0].as_str().unwrap_or("");
    assert!(module.starts_with("gcs://_ray_pkg_rb"), "{job}");
    let (status, logs) = broker
        .get(&format!("/api/jobs/{submission_id}/logs"), ROBOTICS)
        .await;
    assert_eq!(status, 200);
    assert!(
        logs["logs"].as_str().unwrap_or("").contains(&secret),
        "{logs}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&modules).unwrap();
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ray_job_submit_with_a_working_dir_runs_on_the_head_chosen_by_ray_2_31() {
    submit_with_working_dir(RayVersion::Pinned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ray_job_submit_with_a_working_dir_runs_on_the_head_chosen_by_ray_2_60() {
    submit_with_working_dir(RayVersion::Current).await;
}

/// submit_job, tail_job_logs, get_job_status, get_job_info, get_job_logs,
/// stop_job, delete_job and list_jobs (flow.py asserts each).
async fn sdk_flow(version: RayVersion) {
    let broker = Broker::over_heads().await;
    let summary = run_script(version, "flow.py", &[&broker.base, ROBOTICS]).await;
    let first = summary["first"].as_str().unwrap();
    // What the client saw is the broker's record of the job.
    let (status, job) = broker.get(&format!("/api/jobs/{first}"), ROBOTICS).await;
    assert_eq!(status, 200, "{job}");
    let (status, native) = broker
        .get(
            &format!("/v1/jobs/{}", summary["job_id"].as_str().unwrap()),
            ROBOTICS,
        )
        .await;
    assert_eq!(status, 200, "{native}");
    assert_eq!(native["state"], "succeeded");
    assert_eq!(native["spec"]["idempotency_key"], first);
    assert_eq!(native["spec"]["labels"]["project"], "ant");
    assert_eq!(native["spec"]["max_retries"], 1);
    assert_eq!(job["raybroker"]["cluster"], native["cluster"]);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_submission_client_of_ray_2_31_works_against_the_broker() {
    sdk_flow(RayVersion::Pinned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_submission_client_of_ray_2_60_works_against_the_broker() {
    sdk_flow(RayVersion::Current).await;
}

/// Each case must raise the same exception type against the broker as
/// against a real head of the same version, with a message of the same form.
async fn errors_like_a_head(version: RayVersion) {
    let broker = Broker::over_heads().await;
    let head = run_script(version, "errors.py", &[&version.head_url(), ROBOTICS]).await;
    let ours = run_script(version, "errors.py", &[&broker.base, ROBOTICS]).await;
    let expected = [
        (
            "duplicate_submission_id",
            "status code 500",
            "already exists",
        ),
        ("unknown_job_info", "status code 404", "does not exist"),
        ("unknown_job_stop", "status code 404", "does not exist"),
        ("unknown_job_logs", "status code 404", "does not exist"),
        ("missing_entrypoint", "status code 400", "entrypoint"),
    ];
    for (case, status, words) in expected {
        let (theirs, mine) = (&head[case], &ours[case]);
        assert_eq!(
            theirs["type"], "RuntimeError",
            "{case} against the head: {theirs}"
        );
        assert_eq!(
            mine["type"], theirs["type"],
            "{case}: broker {mine} vs head {theirs}"
        );
        for answer in [theirs, mine] {
            let message = answer["message"].as_str().unwrap_or("");
            assert!(
                message.contains(status) && message.contains(words),
                "{case}: {message:?} should contain {status:?} and {words:?}"
            );
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_fail_as_against_a_ray_2_31_head() {
    errors_like_a_head(RayVersion::Pinned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_fail_as_against_a_ray_2_60_head() {
    errors_like_a_head(RayVersion::Current).await;
}

async fn isolation(version: RayVersion) {
    let broker = Broker::over_heads().await;
    let summary = run_script(version, "isolation.py", &[&broker.base, ROBOTICS, VISION]).await;
    if let RayVersion::Current = version {
        // Ray 2.60 raises its AuthenticationError for 401 and 403 ...
        let auth = summary["auth"].to_string();
        assert!(auth.contains("AuthenticationError"), "{auth}");
        // ... and sends RAY_AUTH_TOKEN as the bearer token by itself.
        let list = "import sys; from ray.job_submission import JobSubmissionClient as C; \
                    print(sorted(j.submission_id for j in C(sys.argv[1]).list_jobs()))";
        let args = vec!["-c".to_string(), list.to_string(), broker.base.clone()];
        let env = vec![
            ("RAY_AUTH_MODE", "token".into()),
            ("RAY_AUTH_TOKEN", VISION.into()),
        ];
        let output = run_with_env(version, "python", args, env).await;
        let shown = describe(&output);
        assert!(output.status.success(), "{shown}");
        assert!(
            shown.contains(summary["shared_id"].as_str().unwrap()),
            "{shown}"
        );
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_for_ray_2_31_clients() {
    isolation(RayVersion::Pinned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_for_ray_2_60_clients() {
    isolation(RayVersion::Current).await;
}

/// The package endpoints over plain HTTP: per tenant, limited, only zips,
/// kept with a TTL; and a submit naming a package the tenant lacks fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_are_kept_per_tenant_with_a_limit_and_a_ttl() {
    let broker = Broker::over_heads().await;
    let path = "/api/packages/gcs/_ray_pkg_0123abcd.zip";
    let send = |method: Method, token: Option<&'static str>, body: Vec<u8>| {
        broker.request(method, path, token).body(body).send()
    };
    let status = |response: reqwest::Response| response.status().as_u16();

    let version = broker
        .request(Method::GET, "/api/version", None)
        .send()
        .await
        .unwrap();
    assert_eq!(version.status().as_u16(), 200);
    let version: Value = version.json().await.unwrap();
    assert_eq!(version["version"], "4", "{version}");
    assert_eq!(status(send(Method::GET, None, vec![]).await.unwrap()), 401);
    let wrong = send(Method::GET, Some("wrong-token-0123456789"), vec![]);
    assert_eq!(status(wrong.await.unwrap()), 403);

    assert_eq!(
        status(send(Method::GET, Some(ROBOTICS), vec![]).await.unwrap()),
        404
    );
    let not_zip = send(Method::PUT, Some(ROBOTICS), b"plain text".to_vec());
    assert_eq!(status(not_zip.await.unwrap()), 400);
    let mut zip = b"PK\x05\x06".to_vec();
    zip.resize(22, 0); // an empty archive
    assert_eq!(
        status(send(Method::PUT, Some(ROBOTICS), zip).await.unwrap()),
        200
    );
    assert_eq!(
        status(send(Method::GET, Some(ROBOTICS), vec![]).await.unwrap()),
        200
    );
    assert_eq!(
        status(send(Method::GET, Some(VISION), vec![]).await.unwrap()),
        404
    );

    let mut huge = b"PK\x03\x04".to_vec();
    huge.resize(MAX_PACKAGE_BYTES as usize + 1, 0);
    assert_eq!(
        status(send(Method::PUT, Some(ROBOTICS), huge).await.unwrap()),
        413
    );
    let s3 = broker
        .request(
            Method::GET,
            "/api/packages/s3/_ray_pkg_0123abcd.zip",
            Some(ROBOTICS),
        )
        .send();
    assert_eq!(status(s3.await.unwrap()), 400);

    let mut conn = support::redis_connection().await;
    for key in broker.keys().await.iter().filter(|k| k.contains(":ray:")) {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 600, "{key} has TTL {ttl}");
    }

    // Vision never uploaded it: its submit is refused before queueing.
    let body = json!({"entrypoint": "python x.py",
                      "runtime_env": {"working_dir": "gcs://_ray_pkg_0123abcd.zip"}});
    let response = broker
        .request(Method::POST, "/api/jobs/", Some(VISION))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("does not exist"), "{text}");
    let (code, listed) = broker.get("/api/jobs/", VISION).await;
    assert_eq!((code, listed), (200, Value::Array(vec![])));
    broker.stop().await;
}

/// `len` bytes that do not compress (xorshift64).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A fresh directory under the system temp dir.
fn tempdir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{label}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
