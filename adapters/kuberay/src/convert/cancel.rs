//! The cancel record: what the adapter writes on a RayJob when the broker
//! cancels it, so that any broker instance (the same one after a crash or
//! restart, or another replica) reads the cancel back from the object itself
//! rather than from memory.
//!
//! The record is written before the stop, in the same merge patch where it
//! can be (a replay after a crash finds it and only repeats the stop):
//! - `cancel: suspend`: one patch sets the annotation and `spec.suspend:
//!   true`; the suspended RayJob stays, annotated.
//! - `cancel: delete`: one patch sets the annotation and adds the finalizer
//!   [`FINALIZER_CANCEL_RECORD`], then the RayJob is deleted (foreground, so
//!   KubeRay's cluster goes at once). The finalizer keeps the object,
//!   terminating and annotated, until the broker's cleanup removes it.
//!
//! A RayJob that is suspended, stopped or being deleted *without* the
//! annotation was stopped by someone else (kubectl, Kueue): that is no
//! cancel of the broker's, and is not reported as one.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use raybroker_adapter::{RemoteState, RemoteStatus};
use raybroker_core::FailureClass;
use serde_json::{json, Value};

use crate::config::CancelMode;

/// Annotation set on a RayJob the broker cancelled: when (RFC 3339).
pub const ANNOTATION_CANCELLED_AT: &str = "raybroker.io/cancelled-at";

/// Finalizer that keeps a RayJob cancelled by deletion readable until the
/// broker's cleanup: without it the object, and with it the record, would
/// vanish as soon as KubeRay had stopped the job.
pub const FINALIZER_CANCEL_RECORD: &str = "raybroker.io/cancel-record";

fn finalizers(object: &DynamicObject) -> &[String] {
    object.metadata.finalizers.as_deref().unwrap_or_default()
}

/// Whether the broker's cancel is recorded on the RayJob.
pub fn is_recorded(object: &DynamicObject) -> bool {
    object
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_CANCELLED_AT))
}

/// Whether the cancel record's finalizer holds the RayJob.
pub fn holds(object: &DynamicObject) -> bool {
    finalizers(object)
        .iter()
        .any(|f| f == FINALIZER_CANCEL_RECORD)
}

/// The merge patch that records the cancel at `at` (and, with `cancel:
/// suspend`, stops the job in the same write); `None` when everything is
/// already there. The finalizer list is replaced whole by a merge patch, so
/// that patch is conditional on the object's resourceVersion: a concurrent
/// change (KubeRay's own finalizer) makes it fail with 409 and the next
/// round tries again.
pub fn record_patch(object: &DynamicObject, mode: CancelMode, at: &str) -> Option<Value> {
    let recorded = is_recorded(object);
    let annotations = json!({ANNOTATION_CANCELLED_AT: at});
    match mode {
        CancelMode::Suspend => {
            let suspended = object.data["spec"]["suspend"] == json!(true);
            (!recorded || !suspended).then(
                || json!({"metadata": {"annotations": annotations}, "spec": {"suspend": true}}),
            )
        }
        CancelMode::Delete => {
            if recorded && holds(object) {
                return None;
            }
            let mut kept: Vec<String> = finalizers(object).to_vec();
            if !holds(object) {
                kept.push(FINALIZER_CANCEL_RECORD.to_string());
            }
            let mut metadata = json!({
                "resourceVersion": object.metadata.resource_version,
                "finalizers": kept,
            });
            if !recorded {
                metadata["annotations"] = annotations;
            }
            Some(json!({ "metadata": metadata }))
        }
    }
}

/// The merge patch that takes the record's finalizer off (conditional on the
/// resourceVersion, as the list is replaced whole); `None` when it is not there.
pub fn release_patch(object: &DynamicObject) -> Option<Value> {
    if !holds(object) {
        return None;
    }
    let kept: Vec<&String> = finalizers(object)
        .iter()
        .filter(|f| *f != FINALIZER_CANCEL_RECORD)
        .collect();
    Some(json!({"metadata": {
        "resourceVersion": object.metadata.resource_version,
        "finalizers": kept,
    }}))
}

/// The status of a RayJob that the broker cancelled by deleting it.
pub fn deleted_status(annotations: &BTreeMap<String, String>) -> RemoteStatus {
    let at = annotations
        .get(ANNOTATION_CANCELLED_AT)
        .map(|at| format!(" at {at}"))
        .unwrap_or_default();
    RemoteStatus {
        state: RemoteState::Stopped,
        message: format!("cancelled{at}: the RayJob was deleted"),
        exit_code: None,
        started_at_ms: None,
        ended_at_ms: None,
        failure: Some(FailureClass::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rayjob(finalizers: &[&str], annotations: &[(&str, &str)], suspend: bool) -> DynamicObject {
        let mut object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": "j", "resourceVersion": "7"},
            "spec": {"suspend": suspend},
        }))
        .unwrap();
        object.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        object.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        object
    }

    #[test]
    fn a_delete_cancel_adds_the_record_and_keeps_other_finalizers() {
        let fresh = rayjob(&["ray.io/rayjob-finalizer"], &[], false);
        assert!(!is_recorded(&fresh) && !holds(&fresh));
        let patch = record_patch(&fresh, CancelMode::Delete, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {
                "resourceVersion": "7",
                "finalizers": ["ray.io/rayjob-finalizer", FINALIZER_CANCEL_RECORD],
                "annotations": {ANNOTATION_CANCELLED_AT: "2026-01-01T00:00:00Z"},
            }})
        );
        let done = rayjob(
            &["ray.io/rayjob-finalizer", FINALIZER_CANCEL_RECORD],
            &[(ANNOTATION_CANCELLED_AT, "then")],
            false,
        );
        assert!(is_recorded(&done) && holds(&done));
        assert_eq!(record_patch(&done, CancelMode::Delete, "later"), None);
        // Release takes only the record's finalizer off.
        assert_eq!(
            release_patch(&done).unwrap(),
            json!({"metadata": {"resourceVersion": "7", "finalizers": ["ray.io/rayjob-finalizer"]}})
        );
        assert_eq!(release_patch(&fresh), None);
    }

    #[test]
    fn a_suspend_cancel_records_and_suspends_in_one_patch() {
        let running = rayjob(&[], &[], false);
        assert_eq!(
            record_patch(&running, CancelMode::Suspend, "t").unwrap(),
            json!({"metadata": {"annotations": {ANNOTATION_CANCELLED_AT: "t"}},
                   "spec": {"suspend": true}})
        );
        // Suspended by someone else: the record is still written.
        let suspended = rayjob(&[], &[], true);
        assert!(record_patch(&suspended, CancelMode::Suspend, "t").is_some());
        let done = rayjob(&[], &[(ANNOTATION_CANCELLED_AT, "t")], true);
        assert_eq!(record_patch(&done, CancelMode::Suspend, "later"), None);
    }

    #[test]
    fn a_deleted_rayjob_with_the_record_reads_as_cancelled() {
        let annotations = BTreeMap::from([(ANNOTATION_CANCELLED_AT.to_string(), "t0".to_string())]);
        let status = deleted_status(&annotations);
        assert_eq!(status.state, RemoteState::Stopped);
        assert_eq!(status.failure, Some(FailureClass::Cancelled));
        assert_eq!(status.message, "cancelled at t0: the RayJob was deleted");
    }
}
