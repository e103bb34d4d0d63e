//! The test operator: moves each RayJob through KubeRay's status lifecycle
//! and runs its entrypoint on a real Ray head through the Ray Jobs REST API.
//!
//! What KubeRay does, and what this does in its place:
//! - `jobDeploymentStatus` Initializing (cluster coming up) -> Running (job
//!   submitted) -> Complete (Ray says SUCCEEDED or STOPPED) or Failed
//!   (`reason` AppFailed, SubmissionFailed or DeadlineExceeded); `suspend`
//!   -> Suspending -> Suspended. `jobStatus` copies Ray's state.
//! - With `rayClusterSpec` it creates a RayCluster (validated against the
//!   CRD, owned by the RayJob, labelled like it) and its head and worker pods;
//!   with `clusterSelector` it uses the named cluster. Either way the job runs
//!   on the one real Ray head the test server was given.
//! - The submitter pod (label `job-name=<rayjob>`, as a Kubernetes Job's pods
//!   have) serves the Ray job's log as its own, as K8sJobMode's `ray job
//!   submit` does.
//! - `shutdownAfterJobFinishes` deletes the cluster `ttlSecondsAfterFinished`
//!   after the end; `activeDeadlineSeconds` stops the job and fails the RayJob.
//! - Deleting the RayJob stops the Ray job (KubeRay's finalizer does so),
//!   also while another finalizer keeps the object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::store::{now_rfc3339, Propagation, Resource};
use crate::Shared;

/// Annotation on a submitter pod naming the Ray job whose log it serves.
pub const RAY_SUBMISSION_ANNOTATION: &str = "testserver.raybroker.io/ray-submission-id";

const POLL: Duration = Duration::from_millis(200);

fn short_suffix() -> String {
    let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
    id[id.len() - 5..].to_string()
}

/// Starts the lifecycle of the RayJob `name`.
pub fn spawn(shared: Arc<Shared>, namespace: String, name: String) {
    tokio::spawn(async move {
        if let Err(message) = run(&shared, &namespace, &name).await {
            tracing::warn!(%namespace, %name, %message, "test operator gave up on a rayjob");
        }
    });
}

/// Writes `status` fields into the RayJob, checking the result against the CRD.
fn set_status(shared: &Shared, ns: &str, name: &str, fields: Value) -> Result<(), String> {
    let updated = shared
        .store
        .update(Resource::RayJob, ns, name, |job| {
            if !job["status"].is_object() {
                job["status"] = json!({});
            }
            if let (Some(status), Some(fields)) =
                (job["status"].as_object_mut(), fields.as_object())
            {
                for (key, value) in fields {
                    status.insert(key.clone(), value.clone());
                }
            }
            job["status"]["observedGeneration"] = job["metadata"]["generation"].clone();
        })
        .map_err(|_| "the rayjob was deleted".to_string())?;
    shared.check_own_write(Resource::RayJob, &updated);
    Ok(())
}

fn owner(object: &Value) -> Value {
    json!([{
        "apiVersion": object["apiVersion"], "kind": object["kind"],
        "name": object["metadata"]["name"], "uid": object["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    }])
}

/// A running pod from a pod template, bound to the first node its selector fits.
fn pod_from_template(
    shared: &Shared,
    template: &Value,
    name: &str,
    labels: Value,
    owner_of: &Value,
) -> Value {
    let mut spec = template["spec"].clone();
    let selector = spec["nodeSelector"].clone();
    let node = shared
        .store
        .list(Resource::Node, None)
        .into_iter()
        .find(|node| {
            selector.as_object().is_none_or(|wanted| {
                wanted
                    .iter()
                    .all(|(k, v)| node["metadata"]["labels"][k] == *v)
            })
        });
    let phase = if let Some(node) = node {
        spec["nodeName"] = node["metadata"]["name"].clone();
        "Running"
    } else {
        "Pending"
    };
    json!({
        "metadata": {"name": name, "labels": labels, "ownerReferences": owner(owner_of)},
        "spec": spec,
        "status": {"phase": phase},
    })
}

fn merged_labels(base: &Value, extra: Value) -> Value {
    let mut labels = base.clone();
    if !labels.is_object() {
        labels = json!({});
    }
    if let (Some(map), Some(extra)) = (labels.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    labels
}

/// Creates the RayCluster of an ephemeral RayJob and its pods; returns its name.
fn create_cluster(shared: &Shared, ns: &str, job: &Value) -> Result<String, String> {
    let name = format!(
        "{}-{}",
        job["metadata"]["name"].as_str().unwrap_or("job"),
        short_suffix()
    );
    let labels = merged_labels(
        &job["metadata"]["labels"],
        json!({"ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": job["metadata"]["name"]}),
    );
    let cluster = json!({
        "apiVersion": "ray.io/v1", "kind": "RayCluster",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": owner(job)},
        "spec": job["spec"]["rayClusterSpec"],
    });
    let causes = shared.validate(Resource::RayCluster, &cluster);
    if !causes.is_empty() {
        let text: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        return Err(format!("RayCluster is invalid: {}", text.join("; ")));
    }
    let cluster = shared
        .store
        .create(Resource::RayCluster, ns, cluster)
        .map_err(|e| format!("creating the RayCluster: {e:?}"))?;
    let head = &job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"];
    let head_labels = merged_labels(
        &head["metadata"]["labels"],
        json!({"ray.io/cluster": name, "ray.io/node-type": "head"}),
    );
    let pod = pod_from_template(
        shared,
        head,
        &format!("{name}-head-{}", short_suffix()),
        head_labels,
        &cluster,
    );
    let _ = shared.store.create(Resource::Pod, ns, pod);
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let template = &group["template"];
        let group_name = group["groupName"].as_str().unwrap_or("workers");
        let labels = merged_labels(
            &template["metadata"]["labels"],
            json!({"ray.io/cluster": name, "ray.io/node-type": "worker", "ray.io/group": group_name}),
        );
        for _ in 0..group["replicas"].as_u64().unwrap_or(1) {
            let pod_name = format!("{name}-{group_name}-worker-{}", short_suffix());
            let pod = pod_from_template(shared, template, &pod_name, labels.clone(), &cluster);
            let _ = shared.store.create(Resource::Pod, ns, pod);
        }
    }
    let _ = shared.store.update(Resource::RayCluster, ns, &name, |c| {
        c["status"] = json!({"state": "ready", "readyWorkerReplicas": 0});
    });
    Ok(name)
}

/// The Ray Jobs API body for a RayJob's spec.
fn ray_submission(spec: &Value, submission_id: &str) -> Result<Value, String> {
    let mut body = json!({"entrypoint": spec["entrypoint"], "submission_id": submission_id});
    if let Some(yaml) = spec["runtimeEnvYAML"].as_str() {
        let env: Value =
            serde_norway::from_str(yaml).map_err(|e| format!("runtimeEnvYAML: {e}"))?;
        body["runtime_env"] = env;
    }
    for (from, to) in [
        ("entrypointNumCpus", "entrypoint_num_cpus"),
        ("entrypointNumGpus", "entrypoint_num_gpus"),
    ] {
        if !spec[from].is_null() {
            body[to] = spec[from].clone();
        }
    }
    if let Some(text) = spec["entrypointResources"].as_str() {
        body["entrypoint_resources"] =
            serde_json::from_str(text).map_err(|e| format!("entrypointResources: {e}"))?;
    }
    Ok(body)
}

async fn run(shared: &Arc<Shared>, ns: &str, name: &str) -> Result<(), String> {
    let job = shared
        .store
        .get(Resource::RayJob, ns, name)
        .ok_or("gone before it started")?;
    let started = Instant::now();
    let spec = job["spec"].clone();
    let cluster = if spec["rayClusterSpec"].is_object() {
        Some(create_cluster(shared, ns, &job))
    } else {
        None
    };
    let cluster_name = match &cluster {
        Some(Ok(name)) => name.clone(),
        Some(Err(_)) | None => spec["clusterSelector"]["ray.io/cluster"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    };
    set_status(
        shared,
        ns,
        name,
        json!({
            "jobDeploymentStatus": "Initializing", "rayClusterName": cluster_name, "startTime": now_rfc3339(),
        }),
    )?;
    if let Some(Err(message)) = cluster {
        return set_status(
            shared,
            ns,
            name,
            json!({
                "jobDeploymentStatus": "Failed", "reason": "ValidationFailed", "message": message, "endTime": now_rfc3339(),
            }),
        );
    }
    tokio::time::sleep(POLL).await;
    let ray_id = format!("{name}-{}", short_suffix());
    let body = ray_submission(&spec, &ray_id)?;
    if let Err(message) = shared.ray.submit(&body).await {
        return set_status(
            shared,
            ns,
            name,
            json!({
                "jobDeploymentStatus": "Failed", "reason": "SubmissionFailed", "message": message, "endTime": now_rfc3339(),
            }),
        );
    }
    let submitter = json!({
        "metadata": {
            "name": format!("{name}-{}", short_suffix()),
            "labels": {"job-name": name, "batch.kubernetes.io/job-name": name},
            "annotations": {RAY_SUBMISSION_ANNOTATION: ray_id},
            "ownerReferences": owner(&job),
        },
        "spec": {"containers": [{"name": "ray-job-submitter", "image": "rayproject/ray"}]},
        "status": {"phase": "Running"},
    });
    let submitter = shared.store.create(Resource::Pod, ns, submitter).ok();
    set_status(
        shared,
        ns,
        name,
        json!({
            "jobDeploymentStatus": "Running", "jobId": ray_id, "jobStatus": "PENDING",
            "dashboardURL": shared.ray.url(),
        }),
    )?;
    let deadline = spec["activeDeadlineSeconds"]
        .as_u64()
        .map(Duration::from_secs);
    loop {
        tokio::time::sleep(POLL).await;
        let current = shared
            .store
            .get(Resource::RayJob, ns, name)
            .filter(|job| job["metadata"]["deletionTimestamp"].is_null());
        let Some(current) = current else {
            // Deleted, or being deleted (another finalizer holds it):
            // KubeRay's finalizer stops the job.
            let _ = shared.ray.stop(&ray_id).await;
            return Ok(());
        };
        if current["spec"]["suspend"] == json!(true) {
            set_status(
                shared,
                ns,
                name,
                json!({"jobDeploymentStatus": "Suspending"}),
            )?;
            let _ = shared.ray.stop(&ray_id).await;
            if !cluster_name.is_empty() && spec["rayClusterSpec"].is_object() {
                let _ = shared.store.delete(
                    Resource::RayCluster,
                    ns,
                    &cluster_name,
                    Propagation::Background,
                );
            }
            return set_status(
                shared,
                ns,
                name,
                json!({
                    "jobDeploymentStatus": "Suspended", "jobStatus": "", "endTime": now_rfc3339(),
                }),
            );
        }
        if deadline.is_some_and(|d| started.elapsed() > d) {
            let _ = shared.ray.stop(&ray_id).await;
            set_status(
                shared,
                ns,
                name,
                json!({
                    "jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded",
                    "message": format!("The RayJob has passed the activeDeadlineSeconds. StartTime: {}. ActiveDeadlineSeconds: {}",
                        current["status"]["startTime"].as_str().unwrap_or(""), spec["activeDeadlineSeconds"]),
                    "endTime": now_rfc3339(),
                }),
            )?;
            break;
        }
        let Ok(info) = shared.ray.status(&ray_id).await else {
            continue;
        };
        let ray_status = info["status"].as_str().unwrap_or("PENDING").to_string();
        let mut fields = json!({"jobStatus": ray_status});
        match ray_status.as_str() {
            "SUCCEEDED" | "STOPPED" => {
                fields["jobDeploymentStatus"] = json!("Complete");
                fields["endTime"] = json!(now_rfc3339());
            }
            "FAILED" => {
                fields["jobDeploymentStatus"] = json!("Failed");
                fields["reason"] = json!("AppFailed");
                fields["message"] = json!(info["message"].as_str().unwrap_or("the Ray job failed"));
                fields["endTime"] = json!(now_rfc3339());
            }
            _ => {
                set_status(shared, ns, name, fields)?;
                continue;
            }
        }
        set_status(shared, ns, name, fields)?;
        if let Some(pod) = &submitter {
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let phase = if ray_status == "FAILED" {
                "Failed"
            } else {
                "Succeeded"
            };
            let _ = shared.store.update(Resource::Pod, ns, pod_name, |p| {
                p["status"]["phase"] = json!(phase)
            });
        }
        break;
    }
    if spec["shutdownAfterJobFinishes"] == json!(true) && !cluster_name.is_empty() {
        let ttl = spec["ttlSecondsAfterFinished"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(ttl)).await;
        let _ = shared.store.delete(
            Resource::RayCluster,
            ns,
            &cluster_name,
            Propagation::Background,
        );
    }
    Ok(())
}

/// The log of a pod: a submitter pod's is its Ray job's log.
pub async fn pod_log(shared: &Shared, pod: &Value) -> Result<String, String> {
    match pod["metadata"]["annotations"][RAY_SUBMISSION_ANNOTATION].as_str() {
        Some(ray_id) => shared.ray.logs(ray_id).await,
        None => Ok(format!(
            "test server: pod {} runs no process\n",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        )),
    }
}
