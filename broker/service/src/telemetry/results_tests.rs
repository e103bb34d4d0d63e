use raybroker_core::{Job, JobMetrics, MetricPoint};
use serde_json::json;

use super::*;

fn job(id: &str, tenant: &str, state: &str, group: Option<&str>, cluster: &str) -> Job {
    let mut labels = serde_json::Map::new();
    if let Some(g) = group {
        labels.insert(GROUP_LABEL.into(), json!(g));
    }
    labels.insert("project".into(), json!("ant"));
    let t = |from: &str, to: &str, at: u64, attempt: u32| json!({"from": from, "to": to, "at_ms": at, "attempt": attempt, "reason": to});
    serde_json::from_value(json!({
        "id": id, "tenant": tenant, "name": "train", "state": state,
        "reason": state, "attempt": 1, "cancel_requested": false,
        "created_at_ms": 1000, "updated_at_ms": 9000, "cluster": cluster,
        "spec": {"entrypoint": "python t.py", "labels": labels},
        "attempts": [{"number": 1, "cluster": cluster, "submission_id": "s1", "created_at_ms": 1100}],
        "history": [
            {"to": "queued", "at_ms": 1000, "attempt": 0, "reason": "submitted"},
            t("queued", "dispatching", 1500, 0),
            t("dispatching", "submitted", 2000, 1),
            t("submitted", "running", 3000, 1),
            t("running", state, 9000, 1)
        ]
    }))
    .expect("a job")
}

fn metrics(reward: f64, best: f64) -> JobMetrics {
    let p = |v: f64| MetricPoint {
        name: "reward".into(),
        value: v,
        step: Some(1),
        at_ms: 1,
        attempt: 1,
    };
    let mut m = JobMetrics::default();
    m.last.insert("reward".into(), p(reward));
    m.max.insert("reward".into(), p(best));
    m.min.insert("reward".into(), p(0.0));
    m
}

#[test]
fn timings_add_up_the_history() {
    let j = job(
        "01JDQ3ZK8V6X9T2M4N5P7R8S9A",
        "robotics",
        "succeeded",
        None,
        "a",
    );
    let t = timings(&j, 100_000);
    assert_eq!(
        t,
        Timings {
            queued_ms: 1000,
            pending_ms: 1000,
            running_ms: 6000,
            total_ms: 8000
        }
    );
}

#[test]
fn aggregates_by_group_tenant_label_and_cluster() {
    let results = vec![
        job_result(
            &job(
                "01JDQ3ZK8V6X9T2M4N5P7R8S9A",
                "robotics",
                "succeeded",
                Some("g1"),
                "a",
            ),
            metrics(0.5, 0.9),
            vec!["s3://b/1".into()],
            0,
        ),
        job_result(
            &job(
                "01JDQ3ZK8V6X9T2M4N5P7R8S9B",
                "robotics",
                "failed",
                Some("g1"),
                "b",
            ),
            metrics(0.7, 0.8),
            vec![],
            0,
        ),
        job_result(
            &job(
                "01JDQ3ZK8V6X9T2M4N5P7R8S9C",
                "vision",
                "succeeded",
                None,
                "a",
            ),
            JobMetrics::default(),
            vec![],
            0,
        ),
    ];
    let by_group = aggregate(&results, &"group".parse().unwrap());
    assert_eq!(by_group.len(), 2);
    assert_eq!(by_group[1].key, "g1");
    assert_eq!(
        (by_group[1].jobs, by_group[1].succeeded, by_group[1].failed),
        (2, 1, 1)
    );
    assert_eq!(by_group[1].failures["unknown"], 1);
    let reward = &by_group[1].metrics["reward"];
    assert_eq!((reward.jobs, reward.max_last, reward.max), (2, 0.7, 0.9));
    assert!((reward.mean_last - 0.6).abs() < 1e-9);
    assert_eq!(by_group[0].key, "-");
    let by_tenant = aggregate(&results, &GroupBy::Tenant);
    assert_eq!(by_tenant.iter().map(|a| a.jobs).collect::<Vec<_>>(), [2, 1]);
    let by_cluster = aggregate(&results, &"cluster".parse().unwrap());
    assert_eq!(by_cluster[0].key, "a");
    assert_eq!(by_cluster[0].jobs, 2);
    let by_label = aggregate(&results, &"label:project".parse().unwrap());
    assert_eq!(by_label[0].key, "ant");
    assert_eq!(by_label[0].mean_running_ms, 6000.0);
    assert!("label:"
        .parse::<GroupBy>()
        .unwrap_err()
        .contains("label:<key>"));

    let csv = jobs_csv(&results);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[0].ends_with("last:reward,min:reward,max:reward"),
        "{csv}"
    );
    assert!(lines[1].contains(",succeeded,"), "{csv}");
    assert!(lines[1].ends_with(",0.5,0,0.9"), "{csv}");
    let csv = aggregates_csv(&by_group);
    assert!(
        csv.lines().nth(2).unwrap().starts_with("g1,2,1,1,0,0,2,"),
        "{csv}"
    );
}

#[test]
fn csv_quotes_what_needs_it() {
    assert_eq!(
        csv_row(&["a,b".into(), "say \"x\"".into(), "c".into()]),
        "\"a,b\",\"say \"\"x\"\"\",c\r\n"
    );
}
