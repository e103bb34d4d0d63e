//! Commands that need no broker: parsing, specs built from flags, errors.

use std::net::TcpListener;
use std::time::Duration;

use raybroker_core::{JobSpec, Quantity};

use crate::support::*;

#[test]
fn help_lists_every_subcommand() {
    let output = run(&["--help"]);
    assert_eq!(code(&output), 0);
    let text = stdout(&output);
    for name in [
        "submit",
        "status",
        "list",
        "cancel",
        "watch",
        "clusters",
        "explain",
        "serve",
        "hash-token",
    ] {
        assert!(
            text.contains(&format!("  {name} ")),
            "{name} missing:\n{text}"
        );
    }
}

#[test]
fn dry_run_builds_the_spec_from_flags() {
    let output = run(&[
        "submit",
        "--dry-run",
        "--name",
        "ant",
        "--cpus",
        "8",
        "--memory",
        "32GiB",
        "--gpus",
        "0.25",
        "--gpu-type",
        "A100|H100",
        "--env",
        "WANDB_MODE=offline",
        "--label",
        "seed=1",
        "--allow-cluster",
        "onprem-a,gke-burst",
        "--require-label",
        "site=onprem",
        "--submission-id",
        "ant-1",
        "--time-limit",
        "2h",
        "--priority",
        "-3",
        "--",
        "python",
        "train.py",
        "--note",
        "two words",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let spec = JobSpec::from_json(&output.stdout).expect("stdout is a job spec");
    assert_eq!(spec.name, "ant");
    assert_eq!(spec.entrypoint, "python train.py --note 'two words'");
    assert_eq!(spec.resources.cpus, Quantity::whole(8));
    assert_eq!(spec.resources.memory.0, 32 << 30);
    assert_eq!(spec.resources.gpus.units(), 2_500);
    assert_eq!(spec.resources.gpu_types.len(), 2);
    assert_eq!(spec.runtime_env.env_vars["WANDB_MODE"], "offline");
    assert_eq!(spec.labels["seed"], "1");
    assert_eq!(spec.placement.allowed_clusters, ["onprem-a", "gke-burst"]);
    assert_eq!(spec.placement.required_labels["site"], "onprem");
    assert_eq!(spec.idempotency_key.as_deref(), Some("ant-1"));
    assert_eq!(spec.time_limit, Some(Duration::from_secs(7200)));
    assert_eq!(spec.priority, -3);
}

#[test]
fn flags_override_a_spec_file_and_stdin_works() {
    let yaml =
        "name: from-file\nentrypoint: python old.py\nresources: {cpus: 2, gpus: 1}\npriority: 4\n";
    let path = temp_file("job.yaml", yaml);
    let path = path.to_str().expect("utf-8 temp path");
    let output = run(&["submit", "--dry-run", "-f", path, "--cpus", "16"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let spec = JobSpec::from_json(&output.stdout).expect("a job spec");
    assert_eq!(spec.entrypoint, "python old.py");
    assert_eq!(spec.resources.cpus, Quantity::whole(16));
    assert_eq!(spec.resources.gpus, Quantity::whole(1));
    assert_eq!(spec.priority, 4);

    let output = run_with(
        &["submit", "--dry-run", "-f", "-", "--", "./run.sh"],
        r#"{"resources": {"gpus": 4}}"#,
        &[],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let spec = JobSpec::from_json(&output.stdout).expect("a job spec");
    assert_eq!(spec.entrypoint, "./run.sh");
    assert_eq!(spec.resources.gpus, Quantity::whole(4));
}

#[test]
fn a_bad_flag_names_the_flag_and_the_fix_and_exits_2() {
    let output = run(&["submit", "--memory", "32 gigs", "--", "python", "train.py"]);
    assert_eq!(code(&output), 2);
    let text = stderr(&output);
    assert!(
        text.starts_with("error: --memory '32 gigs': unknown unit 'gigs'"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("write e.g. 32GiB"), "{text}");
    assert!(stdout(&output).is_empty());
}

#[test]
fn a_missing_entrypoint_or_bad_file_exits_2() {
    let output = run(&["submit", "--gpus", "1"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("no entrypoint"),
        "{}",
        stderr(&output)
    );

    let output = run(&["submit", "-f", "/nonexistent/job.yaml"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).starts_with("error: -f /nonexistent/job.yaml:"),
        "{}",
        stderr(&output)
    );

    let path = temp_file("bad.yaml", "entrypoint: x\nresources: {gpus: lots}\n");
    let output = run(&["submit", "-f", path.to_str().expect("utf-8"), "--dry-run"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("resources.gpus"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn usage_errors_exit_2() {
    let output = run(&["status", "not-a-job"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("is not a job id"),
        "{}",
        stderr(&output)
    );

    let output = run(&["list", "--state", "done"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("unknown state 'done'"),
        "{}",
        stderr(&output)
    );

    let output = run(&["list", "--server", "broker:8080"]);
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("--server 'broker:8080'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_broker_gets_a_hint() {
    // Bind and release a port so nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let output = run(&["clusters", "--server", &server]);
    assert_eq!(code(&output), 1);
    let text = stderr(&output);
    assert!(
        text.starts_with("error: cannot connect to the broker at"),
        "{text}"
    );
    assert!(
        text.contains(&format!("is the broker running at {server}?")),
        "{text}"
    );
    assert!(text.contains("raybroker serve --config"), "{text}");
}

#[test]
fn hash_token_prints_the_sha256_of_the_trimmed_token() {
    let output = run_with(&["hash-token"], "abc\n", &[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    );
    let output = run_with(&["hash-token"], "\n", &[]);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("empty"), "{}", stderr(&output));
}
