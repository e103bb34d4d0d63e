//! The offline check of `deploy/k8s` (runs in CI, no cluster needed):
//! `kubectl kustomize` renders it, every object round-trips through its
//! k8s-openapi type without losing or gaining a field (a typo'd or misplaced
//! field is dropped by the typed struct, so it shows up here), the RBAC grants
//! nothing beyond the adapter's needs, and the shipped broker config's
//! `kuberay:` section passes the adapter's own validation.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use raybroker_kuberay::KubeRayClusterConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn render() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s");
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is needed to render deploy/k8s ({e}); install the Debian package kubernetes-client")
        });
    assert!(
        output.status.success(),
        "kubectl kustomize failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8 manifests");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back == object {
        Ok(())
    } else {
        Err(format!(
            "fields were dropped or changed:\n  written: {object}\n  as typed: {back}"
        ))
    }
}

#[test]
fn every_rendered_object_matches_its_schema() {
    let objects = render();
    let mut kinds: Vec<String> = Vec::new();
    for object in &objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let checked = match kind.as_str() {
            "Namespace" => round_trip::<Namespace>(object),
            "ServiceAccount" => round_trip::<ServiceAccount>(object),
            "Role" => round_trip::<Role>(object),
            "RoleBinding" => round_trip::<RoleBinding>(object),
            "ClusterRole" => round_trip::<ClusterRole>(object),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(object),
            "ConfigMap" => round_trip::<ConfigMap>(object),
            "Service" => round_trip::<Service>(object),
            "Deployment" => round_trip::<Deployment>(object),
            "StatefulSet" => round_trip::<StatefulSet>(object),
            other => Err(format!("no schema check for kind {other}: add one")),
        };
        if let Err(problem) = checked {
            panic!("{kind} {name}: {problem}");
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "Namespace",
            "Role",
            "RoleBinding",
            "Service",
            "Service",
            "ServiceAccount",
            "StatefulSet",
        ]
    );
}

#[test]
fn rbac_grants_only_what_the_adapter_uses() {
    let objects = render();
    for object in objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
    {
        for rule in object["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                let values = rule[field].as_array().expect("a list");
                assert!(!values.iter().any(|v| v == "*"), "wildcard in {object}");
            }
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let resources: Vec<&str> = rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if object["kind"] == "ClusterRole" {
                assert_eq!(verbs, ["get", "list"], "cluster-wide access is read only");
            }
            if resources.contains(&"pods") || resources.contains(&"pods/log") {
                assert_eq!(verbs, ["get", "list"], "pods are read only");
            }
            assert!(
                !verbs.contains(&"update")
                    && !verbs.contains(&"escalate")
                    && !verbs.contains(&"bind")
            );
        }
    }
}

#[test]
fn the_redis_keeps_an_append_only_file_on_a_volume() {
    let objects = render();
    let redis = objects
        .iter()
        .find(|o| o["kind"] == "StatefulSet")
        .expect("redis");
    let container = &redis["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "{args:?}"
    );
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
    assert!(args.windows(2).any(|w| w == ["--dir", "/data"]), "{args:?}");
    assert_eq!(
        redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
}

#[test]
fn the_shipped_kuberay_section_is_valid() {
    let objects = render();
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("the config");
    let text = config_map["data"]["broker.yaml"]
        .as_str()
        .expect("broker.yaml");
    let broker: Value = serde_norway::from_str(text).expect("YAML");
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
        config_map["metadata"]["name"],
        "the Deployment mounts the generated ConfigMap"
    );
    for cluster in broker["clusters"].as_array().expect("clusters") {
        if cluster["kind"] != "kuberay" {
            continue;
        }
        let mut section = cluster["kuberay"].clone();
        section["origin"] = broker["origin"].clone();
        let config: KubeRayClusterConfig =
            serde_json::from_value(section).expect("a kuberay section");
        config.validate().expect("a valid kuberay section");
        assert_eq!(
            config.namespace, "ray-jobs",
            "the namespace the Role is granted in"
        );
    }
}
