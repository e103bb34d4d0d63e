use serde_json::json;

use super::*;

fn rayjob_schema() -> KindSchema {
    KindSchema::load(&crds_dir(), "rayjobs").expect("the KubeRay CRDs (see RAYBROKER_KUBERAY_CRDS)")
}

fn minimal_rayjob() -> Value {
    json!({
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": "demo", "labels": {"raybroker.io/origin": "test"}},
        "spec": {
            "entrypoint": "python -c 'print(1)'",
            "entrypointNumCpus": 1.5,
            "shutdownAfterJobFinishes": true,
            "rayClusterSpec": {
                "rayVersion": "2.46.0",
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
                    {"name": "ray-head", "image": "rayproject/ray:2.46.0",
                     "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}},
                "workerGroupSpecs": [{"groupName": "gpu-l4", "replicas": 1, "minReplicas": 1, "maxReplicas": 1, "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "w", "image": "x",
                        "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": 2}}}],
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}}}],
            },
        },
    })
}

#[test]
fn a_wellformed_rayjob_passes() {
    let causes = rayjob_schema().validate(&minimal_rayjob());
    assert!(causes.is_empty(), "{causes:?}");
}

#[test]
fn wrong_types_name_the_field() {
    let mut job = minimal_rayjob();
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = json!("two");
    let causes = rayjob_schema().validate(&job);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(
        causes[0].field,
        "spec.rayClusterSpec.workerGroupSpecs[0].replicas"
    );
    assert!(!causes[0].unknown_field);
}

#[test]
fn unknown_fields_are_refused_at_any_depth() {
    let mut job = minimal_rayjob();
    job["spec"]["entrypointNumCPUs"] = json!(1);
    job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["gpu"] =
        json!(1);
    let causes = rayjob_schema().validate(&job);
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert!(fields.contains(&"spec.entrypointNumCPUs"), "{causes:?}");
    assert!(
        fields.contains(&"spec.rayClusterSpec.headGroupSpec.template.spec.containers[0].gpu"),
        "{causes:?}"
    );
    assert!(causes.iter().all(|c| c.unknown_field));
}

#[test]
fn required_fields_and_metadata_are_checked() {
    let mut job = minimal_rayjob();
    job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    job["metadata"]["name"] = json!("Not_DNS");
    let causes = rayjob_schema().validate(&job);
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert!(
        fields.contains(&"spec.rayClusterSpec.headGroupSpec.template.spec.containers[0].name"),
        "{causes:?}"
    );
    assert!(fields.contains(&"metadata.name"), "{causes:?}");
}

#[test]
fn fields_with_cel_rules_are_refused_not_ignored() {
    let mut job = minimal_rayjob();
    job["spec"]["managedBy"] = json!("ray.io/kuberay-operator");
    let causes = rayjob_schema().validate(&job);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].field, "spec.managedBy");
    assert!(causes[0].message.contains("CEL"));
}

#[test]
fn pointers_become_api_field_paths() {
    assert_eq!(field_path("/spec/a~1b/3/c"), "spec.a/b[3].c");
    assert_eq!(field_path(""), "");
}
