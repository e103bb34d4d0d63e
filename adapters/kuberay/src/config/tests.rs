use super::*;

/// A full ephemeral entry as a user writes it (YAML, as in the broker's file).
pub(crate) const EPHEMERAL: &str = r#"
namespace: ray-jobs
origin: prod-broker
template:
  ray_version: 2.46.0
  image: rayproject/ray:2.46.0-gpu
  head: {cpus: 2, memory: 8GiB}
  worker_groups:
    - gpu_model: L4
      label_value: nvidia-l4
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      autoscale_max_nodes: 4
      autoscale_node: {cpus: 8, memory: 32GiB, gpus: 1}
"#;

fn parse(yaml: &str) -> Result<KubeRayClusterConfig, serde_norway::Error> {
    serde_norway::from_str(yaml)
}

#[test]
fn a_full_ephemeral_entry_loads_with_defaults() {
    let config = parse(EPHEMERAL).unwrap();
    config.validate().unwrap();
    assert_eq!(config.mode, Mode::Ephemeral);
    assert_eq!(config.cancel, CancelMode::Delete);
    assert_eq!(config.gpu_label, "cloud.google.com/gke-accelerator");
    assert_eq!(config.ttl_after_finished, Duration::from_secs(300));
    let template = config.template.as_ref().unwrap();
    assert_eq!(template.head.cpus, Quantity::whole(2));
    let l4 = GpuModel::parse("L4").unwrap();
    let group = template.group_of(&l4).unwrap();
    assert_eq!(
        group.pod.tolerations[0].key.as_deref(),
        Some("nvidia.com/gpu")
    );
    assert_eq!(config.model_of_label("nvidia-l4"), Some(l4));
    assert_eq!(config.model_of_label("nvidia-tesla-t4"), None);
}

#[test]
fn unknown_fields_are_refused_with_their_name() {
    let yaml = EPHEMERAL.replace("head: {cpus: 2", "head: {gpus: 1, cpus: 2");
    let err = parse(&yaml).unwrap_err().to_string();
    assert!(err.contains("unknown field `gpus`"), "{err}");
}

#[test]
fn malformed_templates_name_the_field() {
    let cases = [
        (
            "ray_version: 2.46.0",
            "ray_version: latest",
            "template.ray_version",
        ),
        (
            "label_value: nvidia-l4",
            "label_value: 'nvidia l4'",
            "template.worker_groups[0].label_value",
        ),
        (
            "operator: Exists",
            "operator: Sometimes",
            "template.worker_groups[0].tolerations[0].operator",
        ),
        (
            "autoscale_node: {cpus: 8, memory: 32GiB, gpus: 1}",
            "autoscale_node: null",
            "template.worker_groups[0].autoscale_node",
        ),
        ("namespace: ray-jobs", "namespace: Ray_Jobs", "namespace"),
        ("origin: prod-broker", "origin: 'prod broker'", "origin"),
    ];
    for (from, to, field) in cases {
        let config = parse(&EPHEMERAL.replace(from, to)).unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, field, "{to}: {err}");
    }
}

#[test]
fn modes_need_their_own_settings() {
    let mut config = parse(EPHEMERAL).unwrap();
    config.template = None;
    assert_eq!(config.validate().unwrap_err().field, "template");
    config.mode = Mode::Shared;
    assert_eq!(config.validate().unwrap_err().field, "cluster_selector");
    config
        .cluster_selector
        .insert("ray.io/cluster".into(), "shared-l4".into());
    config.validate().unwrap();
    config.cancel = CancelMode::Suspend;
    assert_eq!(config.validate().unwrap_err().field, "cancel");
    config.cancel = CancelMode::Delete;
    config
        .cluster_selector
        .insert("bad key!".into(), "x".into());
    assert!(config
        .validate()
        .unwrap_err()
        .field
        .starts_with("cluster_selector."));
}

#[test]
fn label_rules_follow_kubernetes() {
    assert!(is_label_value("nvidia-l4"));
    assert!(!is_label_value("-x"));
    assert!(!is_label_value(&"a".repeat(64)));
    assert!(is_dns_label("ray-jobs"));
    assert!(!is_dns_label("Ray"));
    assert!(is_label_key("cloud.google.com/gke-accelerator"));
    assert!(!is_label_key("/x"));
}
