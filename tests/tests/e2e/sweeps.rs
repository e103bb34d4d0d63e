//! Sweeps over the real heads with `deploy/examples/sweep/toy_train.py`,
//! whose reward converges to a known function of `lr` and `momentum`
//! (maximum 1.0 at lr = 0.01, momentum = 0.7) and is reported step by step
//! in the `RAYBROKER_METRICS` log format:
//!
//! - grid and random sweeps run every trial once and the leaderboard holds
//!   the right objectives, best first; CSV and plot come with it;
//! - seeded TPE reaches within 5 % of the optimum in fewer trials than
//!   random search on the same budget;
//! - ASHA stops clearly bad trials early: they end `stopped_early` in the
//!   sweep, cancelled in the broker and STOPPED on their head.

use std::collections::BTreeSet;
use std::time::Duration;

use raybroker_core::JobState;
use serde_json::{json, Value};

use crate::support::{TestEnv, JOB_CPUS};

/// The toy training script.
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/examples/sweep/toy_train.py"
);

/// The reward a run converges to (the script's `final_reward`).
fn final_reward(lr: f64, momentum: f64) -> f64 {
    1.0 - (lr.log10() + 2.0).powi(2) / 4.0 - (momentum - 0.7).powi(2)
}

/// The script's noise is 0.002; the last report is within this of the target.
const NOISE_BOUND: f64 = 0.01;

/// A sweep spec over the toy script.
fn toy_sweep(steps: u32, step_seconds: f64, search_space: Value, extra: Value) -> Value {
    let entrypoint = format!(
        "python3 {SCRIPT} --lr {{{{lr}}}} --momentum {{{{momentum}}}} --steps {steps} \
         --step-seconds {step_seconds} --seed {{{{seed}}}}"
    );
    let mut spec = json!({
        "name": "toy",
        "template": {"entrypoint": entrypoint, "resources": {"cpus": JOB_CPUS}},
        "search_space": search_space,
        "objective": {"metric": "reward", "mode": "max"},
    });
    for (key, value) in extra.as_object().expect("an object") {
        spec[key] = value.clone();
    }
    spec
}

fn num(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// Checks what every sweep's result must hold: each trial once, finished,
/// on a cluster, its objective what the script converges to, the
/// leaderboard best first and `best` its head.
fn check_leaderboard(sweep: &Value, trials: usize) -> Vec<Value> {
    assert_eq!(sweep["state"], "succeeded", "{sweep:#}");
    let board = sweep["leaderboard"]
        .as_array()
        .expect("a leaderboard")
        .clone();
    assert_eq!(board.len(), trials, "{sweep:#}");
    let indices: BTreeSet<u64> = board.iter().map(|t| t["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..trials as u64).collect(), "each trial once");
    for trial in &board {
        assert_eq!(trial["state"], "succeeded", "{trial:#}");
        assert!(trial["cluster"].is_string(), "{trial:#}");
        assert!(trial["job_id"].is_string(), "{trial:#}");
        let (lr, momentum) = (
            num(&trial["params"]["lr"]),
            num(&trial["params"]["momentum"]),
        );
        let expected = final_reward(lr, momentum);
        let got = num(&trial["objective"]);
        assert!(
            (got - expected).abs() < NOISE_BOUND,
            "trial {trial:#}: objective {got}, the script converges to {expected}"
        );
    }
    let objectives: Vec<f64> = board.iter().map(|t| num(&t["objective"])).collect();
    assert!(
        objectives.windows(2).all(|w| w[0] >= w[1]),
        "best first: {objectives:?}"
    );
    assert_eq!(sweep["best"]["index"], board[0]["index"], "{sweep:#}");
    board
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grid_and_random_sweeps_run_every_trial_once_with_the_right_leaderboard() {
    let env = TestEnv::start("sweep-grid").await;
    let grid = toy_sweep(
        5,
        0.05,
        json!({"lr": {"grid": [0.001, 0.01, 0.1]}, "momentum": {"grid": [0.5, 0.7]}}),
        json!({"algorithm": "grid", "max_concurrent_trials": 3}),
    );
    let id = env.create("sweeps", &grid).await;
    let sweep = env
        .wait_ended("sweeps", &id, Duration::from_secs(240))
        .await;
    let board = check_leaderboard(&sweep, 6);
    let points: BTreeSet<String> = board
        .iter()
        .map(|t| format!("{}/{}", t["params"]["lr"], t["params"]["momentum"]))
        .collect();
    assert_eq!(points.len(), 6, "every grid point once: {points:?}");
    assert_eq!(board[0]["params"], json!({"lr": 0.01, "momentum": 0.7}));

    // Each trial's job is a member of the sweep, labelled with it.
    let jobs = env.group_jobs(&id).await;
    assert_eq!(jobs.len(), 6);
    assert!(jobs.values().all(|copies| copies.len() == 1));

    // CSV: a header and one line per trial, best first; the plot is SVG.
    let csv = text(&env, &format!("/v1/sweeps/{id}/leaderboard.csv")).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(
        lines[0].contains("objective") && lines[0].contains("lr"),
        "{csv}"
    );
    let svg = text(&env, &format!("/v1/sweeps/{id}/plot.svg")).await;
    assert!(
        svg.trim_start().starts_with("<svg") || svg.contains("<svg"),
        "{svg}"
    );

    let random = toy_sweep(
        5,
        0.05,
        json!({"lr": {"loguniform": [0.0001, 1.0]}, "momentum": {"uniform": [0.0, 1.0]}}),
        json!({"algorithm": "random", "num_trials": 5, "max_concurrent_trials": 3, "seed": 11}),
    );
    let id = env.create("sweeps", &random).await;
    let sweep = env
        .wait_ended("sweeps", &id, Duration::from_secs(240))
        .await;
    check_leaderboard(&sweep, 5);
    assert_eq!(env.group_jobs(&id).await.len(), 5);
}

/// GET a text body that must be there.
async fn text(env: &TestEnv, path: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", env.base))
        .bearer_auth(&env.token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.expect("a body")
}

/// The first trial (1-based count) whose objective is within 5 % of the
/// optimum 1.0; `budget + 1` when none is.
fn trials_to_reach(sweep: &Value, budget: usize) -> usize {
    sweep["leaderboard"]
        .as_array()
        .expect("a leaderboard")
        .iter()
        .filter(|t| t["objective"].as_f64().is_some_and(|o| o >= 0.95))
        .map(|t| t["index"].as_u64().unwrap() as usize + 1)
        .min()
        .unwrap_or(budget + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_tpe_reaches_the_optimum_in_fewer_trials_than_random_search() {
    let env = TestEnv::start("sweep-tpe").await;
    const BUDGET: usize = 24;
    let space = json!({
        "lr": {"loguniform": [0.00001, 1.0]},
        "momentum": {"uniform": [0.0, 1.0]},
    });
    // One trial at a time: each suggestion sees every result before it, so
    // the seeded search is deterministic.
    let mut ids = Vec::new();
    for algorithm in ["tpe", "random"] {
        let spec = toy_sweep(
            3,
            0.0,
            space.clone(),
            json!({"algorithm": algorithm, "num_trials": BUDGET, "seed": 5,
                   "max_concurrent_trials": if algorithm == "tpe" { 1 } else { 4 }}),
        );
        ids.push(env.create("sweeps", &spec).await);
    }
    let tpe = env
        .wait_ended("sweeps", &ids[0], Duration::from_secs(400))
        .await;
    let random = env
        .wait_ended("sweeps", &ids[1], Duration::from_secs(200))
        .await;
    check_leaderboard(&tpe, BUDGET);
    check_leaderboard(&random, BUDGET);
    let (tpe_n, random_n) = (
        trials_to_reach(&tpe, BUDGET),
        trials_to_reach(&random, BUDGET),
    );
    eprintln!("trials to reach within 5 % of the optimum: tpe {tpe_n}, random {random_n} (budget {BUDGET})");
    assert!(tpe_n <= BUDGET, "TPE never got within 5 %: {tpe:#}");
    assert!(
        tpe_n < random_n,
        "TPE needed {tpe_n} trials, random search {random_n}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asha_stops_clearly_bad_trials_early_on_their_clusters() {
    let env = TestEnv::start("sweep-asha").await;
    // One good and two clearly bad learning rates, all at once; 30 steps of
    // 0.15 s each, rungs at steps 3, 6, 12 and 24.
    let spec = toy_sweep(
        30,
        0.15,
        json!({"lr": {"grid": [0.01, 0.00001, 0.000003]}, "momentum": {"grid": [0.7]}}),
        json!({"algorithm": "grid", "max_concurrent_trials": 3,
               "early_stopping": {"grace_steps": 3, "reduction_factor": 2, "max_steps": 30}}),
    );
    let id = env.create("sweeps", &spec).await;
    let sweep = env
        .wait_ended("sweeps", &id, Duration::from_secs(240))
        .await;
    assert_eq!(sweep["state"], "succeeded", "{sweep:#}");
    assert_eq!(
        sweep["counts"],
        json!({"succeeded": 1, "stopped_early": 2}),
        "{sweep:#}"
    );
    assert_eq!(sweep["best"]["params"]["lr"], 0.01, "{sweep:#}");
    for trial in sweep["leaderboard"].as_array().unwrap() {
        if trial["state"] != "stopped_early" {
            assert_eq!(
                trial["params"]["lr"], 0.01,
                "the good trial ran to the end: {trial:#}"
            );
            assert_eq!(trial["step"], 30, "{trial:#}");
            continue;
        }
        assert!(num(&trial["params"]["lr"]) < 0.001, "{trial:#}");
        let rung = trial["stopped_at_rung"].as_u64().expect("a rung");
        assert!([3, 6, 12, 24].contains(&rung), "{trial:#}");
        assert!(
            trial["step"].as_u64().unwrap() < 30,
            "stopped before the end: {trial:#}"
        );
        let reason = trial["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(&format!("stopped early by ASHA at rung {rung}")),
            "{reason}"
        );

        // In the broker the job was cancelled, saying why; on its head it is STOPPED.
        let job = env.job(trial["job_id"].as_str().unwrap()).await;
        assert_eq!(job.state, JobState::Cancelled, "{job:#?}");
        assert!(
            job.reason
                .contains(&format!("stopped early by ASHA at rung {rung}")),
            "the job's final reason says why: {job:#?}"
        );
        let attempt = job.attempts.last().expect("it ran");
        let on_ray = env
            .ray_job(&attempt.cluster, &attempt.submission_id)
            .await
            .expect("the head knows it");
        assert_eq!(on_ray.status, "STOPPED", "{on_ray:#?}");
    }
}
