//! Failure classes, retries and failover on real Ray heads.
//!
//! - a head is killed while it runs jobs: they are classified as
//!   infrastructure failures (`cluster_unreachable`), retried on the other
//!   head and succeed; the head is written off (`down`) and comes back by
//!   itself; once it is back nothing has run twice;
//! - a job whose entrypoint exits 1 is not retried by default, and is when
//!   its policy says so;
//! - `/metrics` carries every broker family with values that fit the run.
//!
//! The head-kill test starts two heads of its own (`rbfo-a`, `rbfo-b`, port
//! blocks 15 and 16, or `RAYBROKER_TEST_FAILOVER_INDEXES`) with
//! `deploy/local/ray.sh` and stops them at the end: the shared heads other
//! tests use are never touched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use raybroker_core::{FailureClass, JobState};
use serde_json::json;

use crate::support::{ray, spec, Heads, Options, TestEnv, HEAD_A, HEAD_B, POLL};

/// The Ray version of the test's own heads (installed by `ray.sh install`).
const RAY_VERSION: &str = "2.60.0";
/// The test's own heads' names.
const OWN_HEADS: [&str; 2] = ["rbfo-a", "rbfo-b"];
/// Their port blocks, unless `RAYBROKER_TEST_FAILOVER_INDEXES` says other
/// ones (`13,19`: for a machine where 15 and 16 are taken).
const OWN_INDEXES: [u32; 2] = [15, 16];

/// The port blocks of the two heads.
fn own_indexes() -> [u32; 2] {
    let Ok(text) = std::env::var("RAYBROKER_TEST_FAILOVER_INDEXES") else {
        return OWN_INDEXES;
    };
    let parsed: Vec<u32> = text
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("RAYBROKER_TEST_FAILOVER_INDEXES is two numbers, e.g. 15,16")
        })
        .collect();
    match parsed[..] {
        [a, b] => [a, b],
        _ => panic!("RAYBROKER_TEST_FAILOVER_INDEXES is two numbers, e.g. 15,16"),
    }
}
/// Jobs the head-kill test runs.
const JOBS: usize = 4;

fn ray_sh(args: &[&str]) -> Result<String, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/ray.sh");
    let out = Command::new(&script)
        .args(args)
        .output()
        .map_err(|e| format!("run {}: {e}", script.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "ray.sh {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start_head(name: &str, index: u32) -> String {
    let index = index.to_string();
    ray_sh(&[
        "start",
        name,
        "--version",
        RAY_VERSION,
        "--index",
        &index,
        "--cpus",
        "2",
    ])
    .unwrap_or_else(|e| panic!("start head {name}: {e}"))
    .trim_end_matches('/')
    .to_string()
}

/// The test's own two heads; stopped when dropped, whatever happened.
struct OwnHeads {
    heads: Heads,
}

impl OwnHeads {
    fn start() -> OwnHeads {
        ray_sh(&["install", RAY_VERSION]).expect("the Ray venv (cached after the first run)");
        let [ia, ib] = own_indexes();
        let a = start_head(OWN_HEADS[0], ia);
        let b = start_head(OWN_HEADS[1], ib);
        OwnHeads {
            heads: Heads { a, b },
        }
    }

    /// The ray.sh name and port block of the head the broker calls `cluster`.
    fn of(cluster: &str) -> (&'static str, u32) {
        let [ia, ib] = own_indexes();
        match cluster {
            HEAD_A => (OWN_HEADS[0], ia),
            HEAD_B => (OWN_HEADS[1], ib),
            other => panic!("no own head is called {other}"),
        }
    }
}

impl Drop for OwnHeads {
    fn drop(&mut self) {
        for name in OWN_HEADS {
            if let Err(e) = ray_sh(&["stop", name]) {
                eprintln!("stopping {name}: {e}");
            }
        }
    }
}

/// Waits until the broker reports `cluster`'s breaker in `state`.
async fn wait_health(env: &TestEnv, cluster: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, body) = env.call(reqwest::Method::GET, "/v1/clusters", None).await;
        let found = body["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == cluster)
            .map(|c| c["health"].clone());
        if found.as_ref().is_some_and(|h| h == state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{cluster} did not become {state} within {within:?}: {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_a_killed_head_fail_over_and_run_once() {
    let own = OwnHeads::start();
    let marks_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "failover-marks-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&marks_dir).expect("a directory for the jobs' marks");
    let marks = marks_dir.join("done.txt");
    let extra = "retry:\n  cluster_unreachable: {backoff: {initial: 1s, max: 2s}}\n\
                 circuit_breaker: {down_after: 2, open_for: 2s, max_open_for: 4s}\n";
    let env = TestEnv::start_on(
        "failover",
        Options { gc_every: "2s" },
        own.heads.clone(),
        extra,
    )
    .await;

    // Each job sleeps, then appends its own token: a superseded attempt that
    // ran to its end would leave a second line.
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let entrypoint = format!(
            "python -c \"import time; time.sleep(15); open('{}', 'a').write('job-{i}\\n')\"",
            marks.display()
        );
        ids.push(env.submit(&spec(&entrypoint)).await);
    }
    let mut placed = BTreeMap::new();
    for id in &ids {
        let job = env
            .wait_state(id, JobState::Running, Duration::from_secs(90))
            .await;
        placed.insert(
            id.clone(),
            job.cluster.clone().expect("a running job's cluster"),
        );
    }
    // Kill the head that runs the most jobs.
    let on_a = placed.values().filter(|c| *c == HEAD_A).count();
    let (victim, survivor) = if on_a * 2 >= JOBS {
        (HEAD_A, HEAD_B)
    } else {
        (HEAD_B, HEAD_A)
    };
    let (victim_name, victim_index) = OwnHeads::of(victim);
    ray_sh(&["stop", victim_name]).expect("kill the head");
    wait_health(&env, victim, "down", Duration::from_secs(30)).await;

    for id in &ids {
        let job = env.wait_finished(id, Duration::from_secs(180)).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
        assert_eq!(job.cluster.as_deref(), Some(survivor), "{job:#?}");
        assert_eq!(job.failure, None, "a success clears the class: {job:#?}");
        if placed[id] == victim {
            assert_eq!(job.attempts.len(), 2, "{job:#?}");
            assert_eq!(job.attempts[0].cluster, victim);
            assert!(
                job.history.iter().any(|t| t
                    .reason
                    .contains("attempt 1 failed (cluster_unreachable)")
                    && t.to == JobState::Queued),
                "no infrastructure failure recorded: {:#?}",
                job.history
            );
        } else {
            assert_eq!(job.attempts.len(), 1, "{job:#?}");
        }
        let successes = job
            .history
            .iter()
            .filter(|t| t.to == JobState::Succeeded)
            .count();
        assert_eq!(successes, 1, "{:#?}", job.history);
    }

    // The killed head comes back (empty, as a restarted Ray head is): the
    // breaker's probe finds it and it takes jobs again.
    let url = start_head(victim_name, victim_index);
    assert_eq!(url, own.heads.url(victim));
    wait_health(&env, victim, "healthy", Duration::from_secs(60)).await;
    let victim_collections = format!(
        "raybroker_adapter_call_duration_seconds_count{{cluster=\"{victim}\",operation=\"list_owned\",outcome=\"ok\"}}"
    );
    let collected_before = value(&scrape(&env).await, &victim_collections).unwrap_or(0.0);
    // Two garbage collections later, nothing of a superseded attempt runs.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let text = std::fs::read_to_string(&marks).unwrap_or_default();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        *seen.entry(line).or_default() += 1;
    }
    assert_eq!(seen.len(), JOBS, "every job finished its work: {text:?}");
    assert!(seen.values().all(|n| *n == 1), "a job ran twice: {seen:?}");
    // Garbage collection (every 2 s here) has removed the finished Ray jobs
    // of the finished broker jobs; nothing of this test runs on either head.
    let on_heads = env.ray_jobs().await;
    assert!(
        on_heads.iter().all(|j| j.is_final()),
        "a remote job still runs: {on_heads:#?}"
    );

    let metrics = scrape(&env).await;
    let victim_failures = format!(
        "raybroker_job_failures_total{{class=\"cluster_unreachable\",cluster=\"{victim}\"}}"
    );
    let moved = placed.values().filter(|c| *c == victim).count();
    assert_eq!(
        value(&metrics, &victim_failures),
        Some(moved as f64),
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            "raybroker_job_retries_total{class=\"cluster_unreachable\"}"
        ),
        Some(moved as f64),
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            &format!("raybroker_cluster_health{{cluster=\"{victim}\"}}")
        ),
        Some(0.0),
        "back to healthy: {metrics}"
    );
    assert_eq!(
        value(&metrics, "raybroker_queue_depth{tenant=\"e2e\"}"),
        Some(0.0),
        "{metrics}"
    );
    let waits = value(&metrics, "raybroker_job_wait_seconds_count{tenant=\"e2e\"}");
    assert_eq!(
        waits,
        Some((JOBS + moved) as f64),
        "one per dispatch: {metrics}"
    );
    for cluster in [HEAD_A, HEAD_B] {
        let free = value(
            &metrics,
            &format!("raybroker_cluster_free_cpus{{cluster=\"{cluster}\"}}"),
        );
        assert!(
            free.is_some_and(|f| (0.0..=2.0).contains(&f)),
            "{cluster}: {metrics}"
        );
    }
    let dispatched: f64 = sum(&metrics, "raybroker_dispatch_latency_seconds_count{");
    assert_eq!(dispatched, (JOBS + moved) as f64, "{metrics}");
    let status_errors = value(
        &metrics,
        &format!(
            "raybroker_adapter_call_duration_seconds_count{{cluster=\"{victim}\",operation=\"status\",outcome=\"error\"}}"
        ),
    );
    assert!(status_errors.is_some_and(|n| n >= 1.0), "{metrics}");
    let snapshots_ok = value(
        &metrics,
        &format!(
            "raybroker_adapter_call_duration_seconds_count{{cluster=\"{survivor}\",operation=\"snapshot\",outcome=\"ok\"}}"
        ),
    );
    assert!(snapshots_ok.is_some_and(|n| n >= 5.0), "{metrics}");
    let collected = value(&metrics, &victim_collections).unwrap_or(0.0);
    assert!(
        collected > collected_before,
        "garbage collection visited the returned head: {metrics}"
    );
    let _ = std::fs::remove_dir_all(&marks_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_1_is_retried_only_when_the_policy_says_so() {
    let extra = "retry:\n  job_error: {backoff: {initial: 1s, max: 1s}}\n";
    let env = TestEnv::start_on("exit1", Options::default(), Heads::from_env(), extra).await;
    let failing = spec(r#"python -c "import sys; sys.exit(1)""#);

    // Default: one attempt.
    let plain = env.submit(&failing).await;
    let job = env.wait_finished(&plain, Duration::from_secs(120)).await;
    assert_eq!(
        (job.state, job.exit_code, job.failure),
        (JobState::Failed, Some(1), Some(FailureClass::JobError)),
        "{job:#?}"
    );
    assert_eq!(job.attempts.len(), 1, "{job:#?}");
    assert!(
        job.reason.contains("job_error is not retried"),
        "{}",
        job.reason
    );

    // The policy asks for two retries: three attempts, each on a head.
    let mut retried = failing.clone();
    retried["retry"] = json!({"job_error": 2});
    let id = env.submit(&retried).await;
    let job = env.wait_finished(&id, Duration::from_secs(180)).await;
    assert_eq!(
        (job.state, job.exit_code, job.failure),
        (JobState::Failed, Some(1), Some(FailureClass::JobError)),
        "{job:#?}"
    );
    assert_eq!(job.attempts.len(), 3, "{job:#?}");
    assert!(job.reason.contains("no retries left"), "{}", job.reason);
    let runs = env
        .ray_jobs()
        .await
        .into_iter()
        .filter(|j| j.meta(ray::META_JOB_ID) == Some(id.as_str()))
        .filter(|j| j.driver_exit_code == Some(1))
        .count();
    assert_eq!(runs, 3, "each attempt ran once on a head");

    // A job that fails once and then succeeds, with one retry allowed.
    let flag = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "exit1-flag-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    let mut flaky = spec(&format!(
        "python -c \"import os, sys; p = '{0}'; seen = os.path.exists(p); open(p, 'a').close(); sys.exit(0 if seen else 1)\"",
        flag.display()
    ));
    flaky["retry"] = json!({"job_error": 1});
    let id = env.submit(&flaky).await;
    let job = env.wait_finished(&id, Duration::from_secs(120)).await;
    let _ = std::fs::remove_file(&flag);
    assert_eq!(
        (job.state, job.failure),
        (JobState::Succeeded, None),
        "{job:#?}"
    );
    assert_eq!(job.attempts.len(), 2, "{job:#?}");

    // A bad policy is refused with the field named.
    let mut bad = failing.clone();
    bad["retry"] = json!({"cancelled": 1});
    let (status, body) = env.post_job(&bad).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("retry.cancelled"), "{body}");
}

/// The broker's `/metrics` text.
async fn scrape(env: &TestEnv) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", env.base))
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics text")
}

/// The value of the sample written exactly `series` (name and labels).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// The sum of every sample whose line starts with `prefix`.
fn sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
