//! Crash safety, end to end: jobs are submitted and run while the broker
//! process is killed with SIGKILL again and again and started on the same
//! config. Afterwards every job has finished, and the heads' own job lists
//! agree with the broker's records: every recorded attempt ran exactly once,
//! on its cluster, and nothing ran that is not a recorded attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use raybroker_core::{Job, JobState};
use serde_json::{json, Value};

use crate::support::{ray, Options, RayJob, TestEnv, JOB_CPUS};

/// Jobs submitted; `RAYBROKER_E2E_CRASH_JOBS` overrides it (each costs a
/// head about a second of CPU to start).
const JOBS: usize = 200;
/// Kills of the broker, each 1.5-3 s after it was ready again.
const KILLS: u32 = 8;
/// Pause between two submissions, so submitting overlaps the first kills.
const SUBMIT_EVERY: Duration = Duration::from_millis(50);
/// How long all jobs may take once the kills are over.
const FINISH_WITHIN: Duration = Duration::from_secs(420);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_runs_exactly_once_while_the_broker_is_killed_again_and_again() {
    let jobs = std::env::var("RAYBROKER_E2E_CRASH_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(JOBS);
    // The garbage collector deletes finished Ray jobs of finished broker
    // jobs: keep it away from the evidence.
    let mut env = TestEnv::start_with("crash", Options { gc_every: "24h" }).await;
    let started = Instant::now();
    let submitter = tokio::spawn(submit_all(env.base.clone(), env.token.clone(), jobs));

    for _ in 0..KILLS {
        let pause = rand::random_range(1500..=3000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        env.kill();
        env.restart().await;
    }
    let kills_done = started.elapsed();
    let (ids, resubmits) = submitter.await.expect("the submitter did not panic");
    let finished_at_last_kill = finished(&list_all(&env).await);
    assert!(
        finished_at_last_kill < jobs,
        "every job had finished before the last kill: the kills did not hit running work"
    );

    // Let it finish.
    let deadline = Instant::now() + FINISH_WITHIN;
    let all = loop {
        let all = list_all(&env).await;
        if finished(&all) == all.len() && all.len() >= ids.len() {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "not every job finished within {FINISH_WITHIN:?} after the kills: {:?}",
            count_states(&all)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let total = started.elapsed();

    // One job per submission, whatever the retries through the crashes.
    let listed: BTreeSet<&str> = all.iter().map(|j| j.id.as_str()).collect();
    let submitted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(all.len(), jobs, "jobs listed: {}", all.len());
    assert_eq!(
        listed, submitted,
        "the listed jobs are not the submitted ones"
    );

    let on_heads = env.ray_jobs().await;
    let mut problems = check_against_heads(&all, &on_heads);
    problems.extend(check_logs(&env, &all).await);
    let retried = all.iter().filter(|j| j.attempts.len() > 1).count();
    eprintln!(
        "crash test: {jobs} jobs, {} broker starts ({KILLS} SIGKILLs in {:.0} s), \
         {resubmits} submissions retried through a crash, {retried} jobs retried, \
         {} Ray jobs; all finished after {:.0} s",
        env.starts,
        kills_done.as_secs_f64(),
        on_heads.len(),
        total.as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} problems, the first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Submits `jobs` jobs one after the other, each with its own idempotency
/// key, retrying each until the broker answers (it may be down); the ids in
/// order and how many submissions needed a retry.
async fn submit_all(base: String, token: String, jobs: usize) -> (Vec<String>, usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let mut ids = Vec::with_capacity(jobs);
    let mut retried = 0;
    for i in 0..jobs {
        let spec = json!({
            "name": format!("crash-{i}"),
            "entrypoint": "echo ok",
            "resources": {"cpus": JOB_CPUS},
            "max_retries": 2,
            "idempotency_key": format!("crash-{i}"),
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut tries = 0;
        let id = loop {
            tries += 1;
            let answer = client
                .post(format!("{base}/v1/jobs"))
                .bearer_auth(&token)
                .json(&spec)
                .send()
                .await;
            match answer {
                Ok(response) if matches!(response.status().as_u16(), 200 | 201) => {
                    let job: Value = response.json().await.expect("a job");
                    break job["id"].as_str().expect("an id").to_string();
                }
                Ok(response) if response.status().is_client_error() => {
                    panic!("submission {i} refused: {}", response.status())
                }
                // Down, starting or unavailable: try again.
                Ok(_) | Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "submission {i} never got through"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if tries > 1 {
            retried += 1;
        }
        ids.push(id);
        tokio::time::sleep(SUBMIT_EVERY).await;
    }
    (ids, retried)
}

/// Every job of the tenant (one page holds them all).
async fn list_all(env: &TestEnv) -> Vec<Job> {
    let (status, page) = env
        .call(reqwest::Method::GET, "/v1/jobs?limit=500", None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page["next_cursor"].is_null(), "more than one page");
    serde_json::from_value(page["jobs"].clone()).expect("a list of jobs")
}

fn finished(jobs: &[Job]) -> usize {
    jobs.iter().filter(|j| j.state.is_terminal()).count()
}

fn count_states(jobs: &[Job]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs {
        *counts.entry(job.state.to_string()).or_default() += 1;
    }
    counts
}

/// Everything on which the broker's records and the heads' disagree.
fn check_against_heads(jobs: &[Job], on_heads: &[RayJob]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_submission: BTreeMap<&str, Vec<&RayJob>> = BTreeMap::new();
    for ray_job in on_heads {
        match ray_job.submission_id.as_deref() {
            Some(id) => by_submission.entry(id).or_default().push(ray_job),
            None => problems.push(format!(
                "a Ray job of ours without submission id: {ray_job:?}"
            )),
        }
    }
    let mut recorded = BTreeSet::new();
    for job in jobs {
        if job.state != JobState::Succeeded {
            problems.push(format!(
                "job {} ended {}: {}",
                job.id, job.state, job.reason
            ));
        }
        let numbers: Vec<u32> = job.attempts.iter().map(|a| a.number).collect();
        let expected: Vec<u32> = (1..=job.attempt).collect();
        if numbers != expected {
            problems.push(format!(
                "job {} has attempts {numbers:?}, current {}",
                job.id, job.attempt
            ));
        }
        for attempt in &job.attempts {
            let sid = attempt.submission_id.as_str();
            recorded.insert(sid);
            let copies = by_submission
                .get(sid)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let [ray_job] = copies else {
                problems.push(format!(
                    "attempt {sid} of job {} is on the heads {} times: {copies:?}",
                    job.id,
                    copies.len()
                ));
                continue;
            };
            if ray_job.cluster != attempt.cluster {
                problems.push(format!(
                    "attempt {sid} recorded on {} ran on {}",
                    attempt.cluster, ray_job.cluster
                ));
            }
            let number = attempt.number.to_string();
            if ray_job.meta(ray::META_JOB_ID) != Some(job.id.as_str())
                || ray_job.meta(ray::META_ATTEMPT) != Some(number.as_str())
            {
                problems.push(format!("attempt {sid} is tagged {:?}", ray_job.metadata));
            }
            let last = attempt.number == job.attempt;
            match (last, ray_job.status.as_str()) {
                (true, "SUCCEEDED") => {}
                (true, status) => problems.push(format!(
                    "the last attempt {sid} of job {} is {status} on its head",
                    job.id
                )),
                // A superseded attempt must not have succeeded: the job
                // would then have run to completion twice.
                (false, "SUCCEEDED") => problems.push(format!(
                    "job {} was retried although attempt {sid} succeeded",
                    job.id
                )),
                (false, _) => {}
            }
        }
    }
    for (sid, copies) in &by_submission {
        if !recorded.contains(sid) {
            problems.push(format!("Ray job {sid} is no recorded attempt: {copies:?}"));
        }
    }
    problems
}

/// Each job's log, as the broker kept it through the crashes, holds the
/// entrypoint's output exactly once.
async fn check_logs(env: &TestEnv, jobs: &[Job]) -> Vec<String> {
    let mut problems = Vec::new();
    for job in jobs {
        let logs = env
            .complete_logs(job.id.as_str(), Duration::from_secs(30))
            .await;
        let outputs = logs.lines().filter(|line| line.trim() == "ok").count();
        if outputs != 1 {
            problems.push(format!(
                "the log of job {} shows the output {outputs} times: {logs:?}",
                job.id
            ));
        }
    }
    problems
}
