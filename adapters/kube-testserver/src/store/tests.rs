use super::*;

#[test]
fn selectors_follow_kubernetes_syntax() {
    let labels = json!({"raybroker.io/origin": "a", "tier": "gpu"});
    let yes = [
        "raybroker.io/origin=a",
        "tier,!missing",
        "tier in (cpu, gpu)",
        "tier notin (cpu)",
        "tier!=cpu",
        "",
    ];
    for text in yes {
        assert!(Selector::parse(text).unwrap().matches(&labels), "{text}");
    }
    let no = ["raybroker.io/origin=b", "missing", "tier in (cpu)", "!tier"];
    for text in no {
        assert!(!Selector::parse(text).unwrap().matches(&labels), "{text}");
    }
    assert!(Selector::parse("a in b").is_err());
}

#[test]
fn field_selectors_cover_pod_fields() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
    assert!(field_matches("spec.nodeName!=,status.phase!=Succeeded", &pod).unwrap());
    assert!(!field_matches("status.phase=Pending", &pod).unwrap());
    assert!(field_matches("spec.schedulerName=x", &pod).is_err());
}

#[test]
fn deleting_an_owner_collects_what_it_owns() {
    let store = Store::default();
    let job = store
        .create(Resource::RayJob, "ns", json!({"metadata": {"name": "j"}}))
        .unwrap();
    let owner = |o: &Value| json!([{"uid": o["metadata"]["uid"].clone()}]);
    let cluster = store
        .create(
            Resource::RayCluster,
            "ns",
            json!({"metadata": {"name": "c", "ownerReferences": owner(&job)}}),
        )
        .unwrap();
    store
        .create(
            Resource::Pod,
            "ns",
            json!({"metadata": {"name": "p", "ownerReferences": owner(&cluster)}}),
        )
        .unwrap();
    store
        .create(Resource::Pod, "ns", json!({"metadata": {"name": "other"}}))
        .unwrap();
    assert_eq!(
        store.create(Resource::RayJob, "ns", json!({"metadata": {"name": "j"}})),
        Err(WriteError::AlreadyExists)
    );
    store
        .delete(Resource::RayJob, "ns", "j", Propagation::Background)
        .unwrap();
    assert!(store.list(Resource::RayCluster, None).is_empty());
    let pods = store.list(Resource::Pod, Some("ns"));
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["metadata"]["name"], "other");
}

#[test]
fn a_finalizer_holds_a_deleted_object_until_an_update_removes_it() {
    let store = Store::default();
    let job = store
        .create(
            Resource::RayJob,
            "ns",
            json!({"metadata": {"name": "j", "finalizers": ["a/b"]}}),
        )
        .unwrap();
    let owner = json!([{"uid": job["metadata"]["uid"].clone()}]);
    let cluster = json!({"metadata": {"name": "c", "ownerReferences": owner}});
    store
        .create(Resource::RayCluster, "ns", cluster.clone())
        .unwrap();
    // Background: the owner stays (terminating) and so does what it owns.
    let kept = store
        .delete(Resource::RayJob, "ns", "j", Propagation::Background)
        .unwrap();
    assert!(kept["metadata"]["deletionTimestamp"].is_string());
    assert!(store.get(Resource::RayJob, "ns", "j").is_some());
    assert!(store.get(Resource::RayCluster, "ns", "c").is_some());
    // Foreground: what it owns goes now; the owner still waits.
    store
        .delete(Resource::RayJob, "ns", "j", Propagation::Foreground)
        .unwrap();
    assert!(store.get(Resource::RayCluster, "ns", "c").is_none());
    assert!(store.get(Resource::RayJob, "ns", "j").is_some());
    // Removing the last finalizer completes the deletion.
    store
        .update(Resource::RayJob, "ns", "j", |o| {
            o["metadata"]["finalizers"] = json!([])
        })
        .unwrap();
    assert!(store.get(Resource::RayJob, "ns", "j").is_none());
}
