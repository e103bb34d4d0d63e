//! Spec building from files and flags (no broker needed).

use std::time::Duration;

use super::*;
use crate::cli::error::ErrorKind;
use crate::cli::submit::SubmitArgs;

fn args(entrypoint: &[&str]) -> SubmitArgs {
    SubmitArgs {
        entrypoint: entrypoint.iter().map(|w| w.to_string()).collect(),
        ..SubmitArgs::default()
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn every_flag_lands_in_the_spec() {
    let args = SubmitArgs {
        name: Some("ant".into()),
        cpus: Some("8".into()),
        memory: Some("32GiB".into()),
        gpus: Some("0.25".into()),
        gpu_types: strings(&["a100|H100", "H100"]),
        nodes: Some("2".into()),
        resources: Some(r#"{"license_matlab": 1}"#.into()),
        env: strings(&["WANDB_MODE=offline", "OPTS=a=b"]),
        working_dir: Some("s3://bucket/code.zip".into()),
        pip: strings(&["rsl-rl-lib==2.2.4"]),
        py_modules: strings(&["s3://bucket/mod.zip"]),
        priority: Some("-5".into()),
        max_retries: Some("3".into()),
        retry: strings(&["job_error=2", "node_lost=5"]),
        time_limit: Some("1h30m".into()),
        labels: strings(&["project=locomotion"]),
        allow_clusters: strings(&["onprem-a", "gke-burst"]),
        deny_clusters: strings(&["old"]),
        require_labels: strings(&["site=onprem"]),
        idempotency_key: Some("ant-seed-1".into()),
        ..args(&["python", "train.py", "--task", "Isaac-Ant-v0"])
    };
    let spec = build_spec(JobSpec::default(), &args).unwrap();
    assert_eq!(spec.name, "ant");
    assert_eq!(spec.entrypoint, "python train.py --task Isaac-Ant-v0");
    assert_eq!(spec.resources.cpus, Quantity::whole(8));
    assert_eq!(spec.resources.memory, Bytes(32 << 30));
    assert_eq!(spec.resources.gpus.units(), 2_500);
    let models: Vec<&str> = spec
        .resources
        .gpu_types
        .iter()
        .map(|m| m.as_str())
        .collect();
    assert_eq!(models, ["A100", "H100"]);
    assert_eq!(spec.resources.nodes, 2);
    assert_eq!(spec.resources.custom["license_matlab"], Quantity::whole(1));
    assert_eq!(spec.runtime_env.env_vars["WANDB_MODE"], "offline");
    assert_eq!(spec.runtime_env.env_vars["OPTS"], "a=b");
    assert_eq!(
        spec.runtime_env.working_dir.as_deref(),
        Some("s3://bucket/code.zip")
    );
    assert_eq!(spec.runtime_env.pip, ["rsl-rl-lib==2.2.4"]);
    assert_eq!(spec.runtime_env.py_modules, ["s3://bucket/mod.zip"]);
    assert_eq!(spec.priority, -5);
    assert_eq!(spec.max_retries, 3);
    assert_eq!(spec.retry[&raybroker_core::FailureClass::JobError], 2);
    assert_eq!(spec.retry[&raybroker_core::FailureClass::NodeLost], 5);
    assert_eq!(spec.time_limit, Some(Duration::from_secs(5400)));
    assert_eq!(spec.labels["project"], "locomotion");
    assert_eq!(spec.placement.allowed_clusters, ["onprem-a", "gke-burst"]);
    assert_eq!(spec.placement.denied_clusters, ["old"]);
    assert_eq!(spec.placement.required_labels["site"], "onprem");
    assert_eq!(spec.idempotency_key.as_deref(), Some("ant-seed-1"));
}

#[test]
fn the_built_spec_survives_the_wire() {
    let args = SubmitArgs {
        gpus: Some("0.1".into()),
        memory: Some("1.5GiB".into()),
        time_limit: Some("2h".into()),
        ..args(&["python train.py"])
    };
    let spec = build_spec(JobSpec::default(), &args).unwrap();
    let json = serde_json::to_vec(&spec).unwrap();
    assert_eq!(JobSpec::from_json(&json).unwrap(), spec);
}

#[test]
fn flags_override_the_file() {
    let file = "name: from-file\nentrypoint: python old.py\nresources: {cpus: 2, gpus: 1, gpu_type: T4}\n\
                runtime_env: {env_vars: {A: '1', B: '2'}, pip: [torch]}\nlabels: {team: rl}\npriority: 3\n";
    let base = parse_spec_text("job.yaml", file, false).unwrap();
    let args = SubmitArgs {
        cpus: Some("16".into()),
        env: strings(&["B=3"]),
        pip: strings(&["jax"]),
        labels: strings(&["seed=1"]),
        ..args(&["python", "new.py"])
    };
    let spec = build_spec(base, &args).unwrap();
    assert_eq!(spec.name, "from-file");
    assert_eq!(spec.entrypoint, "python new.py");
    assert_eq!(spec.resources.cpus, Quantity::whole(16));
    assert_eq!(spec.resources.gpus, Quantity::whole(1));
    assert_eq!(spec.resources.gpu_types[0].as_str(), "T4");
    assert_eq!(spec.runtime_env.env_vars["A"], "1");
    assert_eq!(spec.runtime_env.env_vars["B"], "3");
    assert_eq!(spec.runtime_env.pip, ["jax"]);
    assert_eq!(spec.labels.len(), 2);
    assert_eq!(spec.priority, 3);
}

#[test]
fn runtime_env_json_replaces_the_files_then_flags_apply() {
    let base = parse_spec_text(
        "job.json",
        r#"{"entrypoint": "x", "runtime_env": {"pip": ["torch"], "env_vars": {"A": "1"}}}"#,
        false,
    )
    .unwrap();
    let args = SubmitArgs {
        runtime_env_json: Some(r#"{"env_vars": {"B": "2"}}"#.into()),
        env: strings(&["C=3"]),
        ..SubmitArgs::default()
    };
    let spec = build_spec(base, &args).unwrap();
    assert!(spec.runtime_env.pip.is_empty());
    let names: Vec<&str> = spec
        .runtime_env
        .env_vars
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["B", "C"]);
}

#[test]
fn a_file_may_leave_the_entrypoint_to_the_command_line() {
    let base = parse_spec_text("job.yaml", "resources: {gpus: 1}\n", true).unwrap();
    let spec = build_spec(base, &args(&["./run.sh"])).unwrap();
    assert_eq!(spec.entrypoint, "./run.sh");
    assert_eq!(spec.resources.gpus, Quantity::whole(1));

    let err = parse_spec_text("job.yaml", "resources: {gpus: 1}\n", false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Usage);
    assert!(
        err.message.contains("missing field `entrypoint`"),
        "{}",
        err.message
    );
    assert!(err.hint.unwrap().contains("after `--`"));
}

#[test]
fn file_errors_name_the_file_and_the_field() {
    let err = parse_spec_text(
        "job.yaml",
        "entrypoint: x\nresources:\n  memory: 3 parsecs\n",
        false,
    )
    .unwrap_err();
    assert!(
        err.message
            .starts_with("job.yaml: resources.memory: unknown unit 'parsecs'"),
        "{}",
        err.message
    );
    let err = parse_spec_text("job.json", "{\"entrypoint\": ", false).unwrap_err();
    assert!(
        err.message.starts_with("job.json: malformed JSON"),
        "{}",
        err.message
    );
    let err = parse_spec_text("job.yaml", "- a\n- b\n", false).unwrap_err();
    assert!(
        err.message.contains("expected a job spec"),
        "{}",
        err.message
    );
    let err = parse_spec_text("job.yaml", "entrypoint: x\ntenant: other\n", false).unwrap_err();
    assert!(
        err.message.contains("unknown field `tenant`"),
        "{}",
        err.message
    );
}

#[test]
fn bad_memory_names_the_flag_value_and_fix() {
    let args = SubmitArgs {
        memory: Some("32 gigs".into()),
        ..args(&["x"])
    };
    let errors = build_spec(JobSpec::default(), &args).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("--memory '32 gigs': unknown unit 'gigs'"),
        "{}",
        errors[0]
    );
    assert!(errors[0].ends_with("; write e.g. 32GiB"), "{}", errors[0]);
}

#[test]
fn every_bad_flag_is_reported_at_once() {
    let args = SubmitArgs {
        cpus: Some("eight".into()),
        gpus: Some("0.00001".into()),
        gpu_types: strings(&["H 100"]),
        nodes: Some("two".into()),
        resources: Some("license=1".into()),
        env: strings(&["NOVALUE"]),
        working_dir: Some("./src".into()),
        runtime_env_json: Some(r#"{"conda": "env.yaml"}"#.into()),
        priority: Some("high".into()),
        max_retries: Some("-1".into()),
        retry: strings(&["meteor=1"]),
        time_limit: Some("soon".into()),
        labels: strings(&["=x"]),
        require_labels: strings(&["site"]),
        ..SubmitArgs::default()
    };
    let errors = build_spec(JobSpec::default(), &args).unwrap_err();
    let flags: Vec<&str> = errors
        .iter()
        .map(|e| e.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        flags,
        [
            "no",
            "--cpus",
            "--gpus",
            "--gpu-type",
            "--nodes",
            "--resources",
            "--runtime-env-json",
            "--working-dir",
            "--env",
            "--priority",
            "--max-retries",
            "--retry",
            "--time-limit",
            "--label",
            "--require-label",
        ]
    );
    assert_eq!(
        errors[1],
        "--cpus 'eight': not a number; write e.g. 8 or 0.5"
    );
    assert!(
        errors[2].contains("at most 4 decimal places"),
        "{}",
        errors[2]
    );
    assert!(errors[6].contains("unknown field `conda`"), "{}", errors[6]);
    assert!(
        errors[7].contains("does not upload local directories"),
        "{}",
        errors[7]
    );
    assert_eq!(
        errors[8],
        "--env 'NOVALUE': expected KEY=VALUE; write e.g. --env WANDB_MODE=offline"
    );
    let summary = flag_errors(errors);
    assert_eq!(summary.message, "15 problems with the flags:");
    assert_eq!(summary.details.len(), 15);
}

#[test]
fn a_missing_entrypoint_says_how_to_give_one() {
    let errors = build_spec(JobSpec::default(), &SubmitArgs::default()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("no entrypoint"), "{}", errors[0]);
    assert!(errors[0].contains("-- python train.py"), "{}", errors[0]);
}

#[test]
fn entrypoints_are_quoted_for_the_shell() {
    let words = strings(&["python", "train.py", "--note", "two words", "--glob=*.ckpt"]);
    assert_eq!(
        join_entrypoint(&words).unwrap(),
        "python train.py --note 'two words' '--glob=*.ckpt'"
    );
    let one = strings(&["python train.py --lr 0.1 && echo done"]);
    assert_eq!(
        join_entrypoint(&one).unwrap(),
        "python train.py --lr 0.1 && echo done"
    );
}
