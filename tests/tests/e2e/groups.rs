//! Job groups over the real heads: a parallel group never has more members
//! unfinished than its concurrency (read from the jobs' recorded
//! transitions, not from timing), a series group stops at its first failure
//! when asked to and goes on when not, cancelling a group cancels its
//! members on their clusters, and a broker killed mid-group releases every
//! member exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raybroker_core::{Job, JobState};
use serde_json::{json, Value};

use crate::support::{TestEnv, JOB_CPUS, POLL};

/// The group label every member carries.
const GROUP_LABEL: &str = "raybroker.group";
/// The member-index label.
const MEMBER_LABEL: &str = "raybroker.member";

impl TestEnv {
    /// POSTs a group or sweep (`kind` = `groups` | `sweeps`) that must be
    /// accepted; its id.
    pub async fn create(&self, kind: &str, spec: &Value) -> String {
        let (status, body) = self
            .call(reqwest::Method::POST, &format!("/v1/{kind}"), Some(spec))
            .await;
        assert_eq!(status, 201, "POST /v1/{kind} {spec}: {body}");
        body["id"].as_str().expect("an id").to_string()
    }

    /// GET /v1/{kind}/{id}.
    pub async fn read(&self, kind: &str, id: &str) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/v1/{kind}/{id}"), None)
            .await;
        assert_eq!(status, 200, "GET {kind} {id}: {body}");
        body
    }

    /// Polls the group or sweep until it is no longer running.
    pub async fn wait_ended(&self, kind: &str, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let body = self.read(kind, id).await;
            if body["state"] != "running" {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{kind} {id} still running after {within:?}: {body:#}\nthe broker's log:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every job of the group, by member index, read through the label
    /// listing (so a duplicate would show up).
    pub async fn group_jobs(&self, group: &str) -> BTreeMap<usize, Vec<Job>> {
        let path = format!("/v1/jobs?label={GROUP_LABEL}={group}&limit=500");
        let (status, body) = self.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        let mut by_member: BTreeMap<usize, Vec<Job>> = BTreeMap::new();
        for job in body["jobs"].as_array().expect("jobs") {
            let job: Job = serde_json::from_value(job.clone()).expect("a job");
            let index = job.spec.labels[MEMBER_LABEL].parse().expect("an index");
            by_member.entry(index).or_default().push(job);
        }
        by_member
    }
}

/// A member running `entrypoint`.
fn member(entrypoint: &str) -> Value {
    json!({"entrypoint": entrypoint})
}

/// When the job was created and when it ended, from its history.
fn lifetime(job: &Job) -> (u64, u64) {
    let created = job.history.first().expect("a creation").at_ms;
    let ended = job
        .history
        .iter()
        .find(|t| t.to.is_terminal())
        .unwrap_or_else(|| panic!("job {} never ended: {job:#?}", job.id))
        .at_ms;
    (created, ended)
}

/// Most jobs alive at once; a job ending at the same millisecond another
/// starts does not overlap it.
fn max_overlap(jobs: &[&Job]) -> usize {
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for job in jobs {
        let (start, end) = lifetime(job);
        edges.push((start, 1));
        edges.push((end, -1));
    }
    edges.sort(); // at equal times -1 sorts before +1
    let (mut alive, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        alive += delta;
        most = most.max(alive);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_group_never_exceeds_its_concurrency() {
    let env = TestEnv::start("group-parallel").await;
    let spec = json!({
        "name": "seeds",
        "mode": "parallel",
        "max_concurrency": 2,
        "template": {"entrypoint": "sleep 1", "resources": {"cpus": JOB_CPUS}},
        "jobs": (0..6).map(|i| json!({"name": format!("seed-{i}")})).collect::<Vec<_>>(),
    });
    let id = env.create("groups", &spec).await;
    let group = env
        .wait_ended("groups", &id, Duration::from_secs(180))
        .await;
    assert_eq!(group["state"], "succeeded", "{group:#}");
    assert_eq!(group["counts"], json!({"succeeded": 6}), "{group:#}");

    let jobs = env.group_jobs(&id).await;
    assert_eq!(jobs.len(), 6, "{jobs:#?}");
    let all: Vec<&Job> = jobs.values().flatten().collect();
    assert_eq!(all.len(), 6, "one job per member");
    for job in &all {
        assert_eq!(job.state, JobState::Succeeded, "{job:#?}");
        assert!(job.cluster.is_some(), "{job:#?}");
    }
    // From the recorded transitions: never more than 2 alive, and 2 at some
    // point (it ran in parallel, not one by one).
    assert_eq!(max_overlap(&all), 2, "{all:#?}");
    // Members were released in order.
    let starts: Vec<u64> = (0..6).map(|i| lifetime(&jobs[&i][0]).0).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_group_stops_at_the_first_failure_when_asked_to() {
    let env = TestEnv::start("group-series").await;
    let spec = json!({
        "mode": "series",
        "on_failure": "stop",
        "template": {"resources": {"cpus": JOB_CPUS}},
        "jobs": [member("true"), member("exit 3"), member("true"), member("true")],
    });
    let id = env.create("groups", &spec).await;
    let group = env
        .wait_ended("groups", &id, Duration::from_secs(120))
        .await;
    assert_eq!(group["state"], "failed", "{group:#}");
    assert_eq!(
        group["counts"],
        json!({"succeeded": 1, "failed": 1, "not_started": 2}),
        "{group:#}"
    );
    let reason = group["reason"].as_str().unwrap();
    assert!(reason.contains("first failure"), "{reason}");
    let members = group["members"].as_array().unwrap();
    assert_eq!(members[1]["exit_code"], 3, "{group:#}");
    assert!(members[2]["job_id"].is_null() && members[3]["job_id"].is_null());

    let jobs = env.group_jobs(&id).await;
    assert_eq!(jobs.len(), 2, "only the first two ever ran: {jobs:#?}");
    // In series: the second was created only after the first ended.
    let (_, first_end) = lifetime(&jobs[&0][0]);
    let (second_start, _) = lifetime(&jobs[&1][0]);
    assert!(second_start >= first_end, "{jobs:#?}");

    // With `continue`, the rest still run after a failure.
    let spec = json!({
        "mode": "series",
        "on_failure": "continue",
        "template": {"resources": {"cpus": JOB_CPUS}},
        "jobs": [member("exit 1"), member("true")],
    });
    let id = env.create("groups", &spec).await;
    let group = env
        .wait_ended("groups", &id, Duration::from_secs(120))
        .await;
    assert_eq!(group["state"], "failed", "{group:#}");
    assert_eq!(
        group["counts"],
        json!({"succeeded": 1, "failed": 1}),
        "{group:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_group_cancels_its_running_members_on_their_clusters() {
    let env = TestEnv::start("group-cancel").await;
    let spec = json!({
        "max_concurrency": 2,
        "template": {"entrypoint": "sleep 300", "resources": {"cpus": JOB_CPUS}},
        "jobs": [{}, {}, {}, {}],
    });
    let id = env.create("groups", &spec).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let group = env.read("groups", &id).await;
        if group["counts"]["running"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "never 2 running: {group:#}");
        tokio::time::sleep(POLL).await;
    }
    let (status, body) = env
        .call(
            reqwest::Method::POST,
            &format!("/v1/groups/{id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancel_requested"], true, "{body:#}");
    let group = env.wait_ended("groups", &id, Duration::from_secs(60)).await;
    assert_eq!(group["state"], "cancelled", "{group:#}");
    assert_eq!(
        group["counts"],
        json!({"cancelled": 2, "not_started": 2}),
        "{group:#}"
    );
    for job in env.group_jobs(&id).await.values().flatten() {
        assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
        let attempt = job.attempts.last().expect("it ran");
        let on_ray = env
            .ray_job(&attempt.cluster, &attempt.submission_id)
            .await
            .expect("the head knows it");
        assert_eq!(on_ray.status, "STOPPED", "{on_ray:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_group_releases_every_member_exactly_once() {
    let mut env = TestEnv::start("group-crash").await;
    let spec = json!({
        "max_concurrency": 3,
        "template": {"entrypoint": "sleep 1", "resources": {"cpus": JOB_CPUS}},
        "jobs": (0..8).map(|_| json!({})).collect::<Vec<_>>(),
    });
    let id = env.create("groups", &spec).await;
    for _ in 0..3 {
        // Let the controller release a few members, then SIGKILL it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        env.kill();
        env.restart().await;
    }
    let group = env
        .wait_ended("groups", &id, Duration::from_secs(240))
        .await;
    assert_eq!(group["state"], "succeeded", "{group:#}");
    let jobs = env.group_jobs(&id).await;
    assert_eq!(jobs.len(), 8, "{jobs:#?}");
    for (index, copies) in &jobs {
        assert_eq!(copies.len(), 1, "member {index} has {} jobs", copies.len());
    }
    let all: Vec<&Job> = jobs.values().flatten().collect();
    assert!(max_overlap(&all) <= 3, "{all:#?}");
}
