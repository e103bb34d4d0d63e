//! The replay end to end on a synthetic trace small enough to work out by
//! hand: three nodes in two clusters, five tasks.

use std::path::PathBuf;
use std::process::Command;

use raybroker_replay::federation::Federation;
use raybroker_replay::policy::{self, EngineConfig};
use raybroker_replay::queueing::{run_paced, Pace};
use raybroker_replay::split::SplitFile;
use raybroker_replay::summary::{fill_summary, queue_summary, QueueSummary};
use raybroker_replay::trace::{parse_nodes, parse_tasks, LoadOptions, Task, TenantRule};
use raybroker_replay::{fill, split::ClusterSpec};

/// onprem (tier 0): an 8-GPU G2 node and a CPU-only node; burst (tier 1):
/// a 2-GPU T4 node. 10 GPUs in all.
const NODES: &str = "sn,cpu_milli,memory_mib,gpu,model
g2-0,96000,393216,8,G2
cpu-0,32000,131072,0,
t4-0,32000,131072,2,T4
";

const SPLIT: &str = "version: 1
clusters:
  - name: onprem
    tier: 0
    cost_per_gpu_hour: 1.0
    nodes:
      - models: [G2, cpu]
  - name: burst
    tier: 1
    cost_per_gpu_hour: 3.0
    nodes:
      - models: [T4]
";

/// 8 GPUs for 100 s; a T4 GPU for 50 s, twice; a G2 GPU for 30 s; 16 CPUs
/// for 10 s. Round-robin sends task 2 (T4 only) to onprem and task 3 (G2
/// only) to burst: neither can ever run there.
const PODS: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
big,8000,16384,8,1000,,LS,Running,0,100,0
t4a,4000,8192,1,1000,T4,BE,Running,0,50,0
t4b,4000,8192,1,1000,T4,LS,Running,10,60,10
g2,4000,8192,1,1000,G2,BE,Running,20,50,20
cpu,16000,8192,0,0,,LS,Running,30,40,30
";

fn setup() -> (Vec<ClusterSpec>, Vec<Task>) {
    let nodes = parse_nodes(NODES, "nodes").unwrap();
    let specs = SplitFile::parse(SPLIT).unwrap().assign(&nodes).unwrap();
    let options = LoadOptions {
        duration_cap_s: 3600,
        tenants: TenantRule::Qos,
    };
    let tasks = parse_tasks(PODS, "pods", options).unwrap().tasks;
    (specs, tasks)
}

fn replay(policy: &str) -> QueueSummary {
    let (specs, tasks) = setup();
    let mut p = policy::by_name(policy, &EngineConfig::default()).unwrap();
    let fed = Federation::new(&specs);
    let pace = Pace {
        load: 1.0,
        factor: 1.0,
        dispatch_ms: 0,
    };
    let run = run_paced(&tasks, fed.clone(), p.as_mut(), pace);
    queue_summary(&run, &tasks, &fed)
}

#[test]
fn round_robin_sends_jobs_where_they_never_run() {
    let rr = replay("round-robin");
    assert_eq!(rr.sent_never, 2);
    assert_eq!((rr.started, rr.never_started), (3, 2));
    // The three it could run start at once: 0 s waits. The two stranded
    // (arrived 10 s and 20 s) wait until the replay ends at 100 s.
    assert_eq!(rr.wait_mean_s, 0.0);
    assert_eq!(rr.wait_mean_all_s, (90.0 + 80.0) / 5.0);
}

#[test]
fn checking_policies_send_nothing_where_it_never_runs() {
    for policy in ["first-fit", "best-fit", "raybroker"] {
        let s = replay(policy);
        assert_eq!((s.sent_never, s.rejected, s.started), (0, 0, 5), "{policy}");
    }
}

#[test]
fn metrics_by_hand() {
    for policy in ["best-fit", "raybroker"] {
        let s = replay(policy);
        // Starts: big 0 s, t4a 0 s, t4b 10 s (at arrival), g2 100 s (when
        // big frees the G2 node; arrived 20 s), cpu 30 s: waits 0, 0, 0, 80, 0.
        assert_eq!((s.wait_mean_s, s.wait_mean_all_s), (16.0, 16.0), "{policy}");
        assert_eq!(s.wait_p95_s, 80.0, "{policy}");
        // The last job (g2) ends at 130 s.
        assert!((s.makespan_h - 130.0 / 3600.0).abs() < 1e-12, "{policy}");
        // GPU-seconds: 800 + 50 + 50 + 30 = 930, of which the T4 jobs' 100 burst.
        assert!((s.gpu_hours - 930.0 / 3600.0).abs() < 1e-12, "{policy}");
        assert!((s.burst_share - 100.0 / 930.0).abs() < 1e-12, "{policy}");
        assert!(
            (s.cost - (830.0 * 1.0 + 100.0 * 3.0) / 3600.0).abs() < 1e-12,
            "{policy}"
        );
        // Allocated GPUs: 9 over [0, 10), 10 [10, 50), 9 [50, 60), 8 [60, 100),
        // 1 [100, 130): (90 + 400 + 90 + 320 + 30) / (10 GPUs x 130 s).
        assert!(
            (s.alloc_mean - 930.0 / 1300.0).abs() < 1e-12,
            "{policy}: {}",
            s.alloc_mean
        );
        // Bounded slowdowns: LS 1, 1, 1 (big, t4b, cpu); BE 1 (t4a) and
        // (80 + 30) / 30 (g2). Means 1 and (1 + 11/3) / 2 = 7/3.
        assert_eq!(s.tenants["ls"], (0.0, 1.0), "{policy}");
        let be = 7.0 / 3.0;
        assert!((s.tenants["be"].1 - be).abs() < 1e-12, "{policy}");
        let jain = (1.0 + be) * (1.0 + be) / (2.0 * (1.0 + be * be));
        assert!((s.jain_slowdown - jain).abs() < 1e-12, "{policy}");
    }
}

#[test]
fn fill_by_hand() {
    let (specs, tasks) = setup();
    let run = |name: &str| {
        let mut p = policy::by_name(name, &EngineConfig::default()).unwrap();
        fill_summary(&fill::run(&tasks, Federation::new(&specs), p.as_mut(), 1.0))
    };
    // Demand reaches 10 GPUs (100 %) with the third task: 8 + 1 + 1.
    let rr = run("round-robin");
    assert_eq!((rr.arrived, rr.placed, rr.sent_never), (3, 2, 1));
    assert_eq!(rr.alloc_at_full, 0.9);
    assert!((rr.unallocated_gpus_at_full - 1.0).abs() < 1e-9);
    for name in ["best-fit", "raybroker"] {
        let s = run(name);
        assert_eq!(
            (s.placed, s.sent_never, s.alloc_at_full),
            (3, 0, 1.0),
            "{name}"
        );
    }
}

/// A fresh directory under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raybroker-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_binary_writes_tables_csvs_and_figures() {
    let dir = scratch("binary");
    std::fs::write(dir.join("openb_node_list_all_node.csv"), NODES).unwrap();
    std::fs::write(dir.join("openb_pod_list_synthetic.csv"), PODS).unwrap();
    std::fs::write(dir.join("split.yaml"), SPLIT).unwrap();
    let out = dir.join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_raybroker-replay"))
        .args([
            "--workloads",
            "synthetic",
            "--loads",
            "1.0",
            "--repeat",
            "2",
            "--threads",
            "2",
        ])
        .arg("--trace")
        .arg(&dir)
        .arg("--split")
        .arg(dir.join("split.yaml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("| round-robin") && stdout.contains("| raybroker"),
        "{stdout}"
    );
    let summary = std::fs::read_to_string(out.join("summary-queueing.csv")).unwrap();
    let header: Vec<&str> = summary.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = summary
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 4, "{summary}");
    for row in &rows {
        assert_eq!(row.len(), header.len());
        let sent_never: usize = row[column("sent_never")].parse().unwrap();
        // Two copies of the list: round-robin strands two jobs per copy.
        let expected = if row[column("policy")] == "round-robin" {
            4
        } else {
            0
        };
        assert_eq!(sent_never, expected, "{row:?}");
    }
    for file in [
        "fill-synthetic.svg",
        "queueing-synthetic.svg",
        "timeseries-synthetic.csv",
        "summary-fill.csv",
    ] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(text.len() > 100, "{file} is nearly empty");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_split_is_an_error_that_names_the_problem() {
    let dir = scratch("badsplit");
    std::fs::write(dir.join("openb_node_list_all_node.csv"), NODES).unwrap();
    std::fs::write(
        dir.join("split.yaml"),
        SPLIT.replace("models: [T4]", "models: [A10]"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_raybroker-replay"))
        .arg("--trace")
        .arg(&dir)
        .arg("--split")
        .arg(dir.join("split.yaml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("belong to no cluster"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
