//! Ray token auth (`RAY_AUTH_MODE=token`, Ray 2.60+) against a real head
//! started with a token: without it or with a wrong one the adapter reports
//! `Unauthorized`; with the token from a file every call works.

mod common;

use std::time::Duration;

use raybroker_adapter::{ClusterAdapter, ErrorKind, RemoteState, SubmitAck, SubmitRequest};
use raybroker_core::{JobId, JobSpec, TenantId};
use raybroker_ray::{RayAdapter, RayClusterConfig};

const HEAD: &str = "RAYBROKER_TEST_RAY_TOKEN_HEAD";
const TOKEN_FILE: &str = "RAYBROKER_TEST_RAY_TOKEN_FILE";

fn env(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{var} is not set: this test needs a Ray head started with a token. \
             deploy/local/test.sh starts one (rbtest-token) and sets {HEAD} and {TOKEN_FILE}."
        ),
    }
}

fn adapter(token_file: Option<std::path::PathBuf>) -> RayAdapter {
    let mut config = RayClusterConfig::new(env(HEAD), common::unique_origin("token"));
    config.token_file = token_file;
    config.max_retries = 0;
    RayAdapter::new("token-head", config).expect("a valid config")
}

#[tokio::test]
async fn calls_need_the_right_token() {
    let none = adapter(None)
        .snapshot()
        .await
        .expect_err("no token is refused");
    assert_eq!(none.kind, ErrorKind::Unauthorized, "{none}");

    let wrong = std::env::temp_dir().join(common::unique_origin("wrong-token"));
    std::fs::write(&wrong, "not-the-token-0123456789").unwrap();
    let refused = adapter(Some(wrong.clone()))
        .snapshot()
        .await
        .expect_err("a wrong token is refused");
    assert_eq!(refused.kind, ErrorKind::Unauthorized, "{refused}");
    let _ = std::fs::remove_file(wrong);

    let ray = adapter(Some(env(TOKEN_FILE).into()));
    let snapshot = ray.snapshot().await.expect("the right token works");
    assert!(!snapshot.nodes.is_empty());
    let job = JobId::generate(common::now_ms());
    let request = SubmitRequest {
        submission_id: format!("rbtest-token-{}", job.as_str().to_ascii_lowercase()),
        job_id: job,
        tenant: TenantId::new("robotics").unwrap(),
        attempt: 1,
        spec: JobSpec {
            entrypoint: "echo authorised".into(),
            ..JobSpec::default()
        },
        extra_env: Default::default(),
    };
    assert_eq!(ray.submit(&request).await.unwrap(), SubmitAck::Created);
    let status = common::wait_final(&ray, &request.submission_id, Duration::from_secs(90)).await;
    assert_eq!(status.state, RemoteState::Succeeded, "{status:?}");
    let logs = ray.logs(&request.submission_id, 0).await.unwrap();
    assert!(logs.text.contains("authorised"), "{}", logs.text);
    ray.cleanup(&request.submission_id).await.unwrap();
}
