//! Pure mapping tables between KubeRay's objects and the adapter contract:
//! object names and ownership labels, RayJob states here; API failures in
//! [`errors`]; the cancel record in [`cancel`]; the RayJob itself in
//! [`rayjob`]; node capacity in [`capacity`].
//! No IO, so every rule is unit tested without a cluster.

pub mod cancel;
pub mod capacity;
pub mod errors;
pub mod rayjob;
mod status;

pub use errors::adapter_error;
pub use status::{remote_state, remote_status, RayJobStatus, STATE_TABLE};

use std::collections::BTreeMap;

use raybroker_adapter::{LogChunk, OwnedJob, RemoteState};
use raybroker_core::JobId;
use sha2::{Digest, Sha256};

/// Label holding the broker's origin tag, on everything the adapter creates.
pub const LABEL_ORIGIN: &str = "raybroker.io/origin";
/// Label holding the broker's job id.
pub const LABEL_JOB_ID: &str = "raybroker.io/job-id";
/// Label holding the attempt number.
pub const LABEL_ATTEMPT: &str = "raybroker.io/attempt";
/// Label holding the tenant.
pub const LABEL_TENANT: &str = "raybroker.io/tenant";
/// Annotation holding the submission id exactly (names are derived from it,
/// lossily when it is not DNS-safe).
pub const ANNOTATION_SUBMISSION_ID: &str = "raybroker.io/submission-id";
/// The standard label naming the managing tool.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// KubeRay names a job's cluster `<rayjob>-<5 characters>` and its services
/// after that, so a RayJob name longer than this breaks its Service names.
pub const MAX_NAME_LEN: usize = 47;

/// The RayJob name for a submission id: the id itself when it is already a
/// DNS-1123 label that fits, else `rb-<cleaned prefix>-<hash>`, which is
/// deterministic (a replayed submit finds the same object) and distinct for
/// distinct ids.
pub fn object_name(submission_id: &str) -> String {
    let fits = submission_id.len() <= MAX_NAME_LEN
        && submission_id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && crate::config::is_dns_label(submission_id);
    if fits {
        return submission_id.to_string();
    }
    let digest = Sha256::digest(submission_id.as_bytes());
    let hash = hex::encode(&digest[..5]);
    let mut cleaned = String::new();
    for c in submission_id.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (cleaned.is_empty() || cleaned.ends_with('-'))) {
            cleaned.push(c);
        }
    }
    let room = MAX_NAME_LEN - "rb-".len() - 1 - hash.len();
    let prefix: String = cleaned.chars().take(room).collect();
    let prefix = prefix.trim_end_matches('-');
    if prefix.is_empty() {
        format!("rb-{hash}")
    } else {
        format!("rb-{prefix}-{hash}")
    }
}

/// A label value for free text (tenant names): kept when valid, else cleaned.
pub fn label_value(text: &str) -> String {
    if crate::config::is_label_value(text) {
        return text.to_string();
    }
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "unknown".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The label selector of everything `origin` created.
pub fn origin_selector(origin: &str) -> String {
    format!("{LABEL_ORIGIN}={origin}")
}

/// The RayJob as [`OwnedJob`], or `None` when it carries no submission id
/// (someone removed the annotation; the broker cannot reconcile it by id).
pub fn owned_job(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    state: RemoteState,
) -> Option<OwnedJob> {
    let submission_id = annotations.get(ANNOTATION_SUBMISSION_ID)?.clone();
    Some(OwnedJob {
        submission_id,
        job_id: labels
            .get(LABEL_JOB_ID)
            .and_then(|id| id.parse::<JobId>().ok()),
        attempt: labels.get(LABEL_ATTEMPT).and_then(|a| a.parse().ok()),
        state,
    })
}

/// The part of `whole` after byte `cursor`, cut back to a character boundary.
pub fn log_suffix(whole: &str, cursor: u64) -> LogChunk {
    let mut start = usize::try_from(cursor)
        .unwrap_or(usize::MAX)
        .min(whole.len());
    while !whole.is_char_boundary(start) {
        start -= 1;
    }
    LogChunk {
        text: whole[start..].to_string(),
        next_cursor: whole.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_are_their_own_names() {
        let id = "rb-01jabcdefghjkmnpqrstvwxyz0-1";
        assert_eq!(object_name(id), id);
    }

    #[test]
    fn other_ids_get_stable_distinct_dns_names() {
        let a = object_name("rbtest-kuberay-submit_twice-01JABCDEFGHJKMNPQRSTVWXYZ0");
        let b = object_name("rbtest-kuberay-submit_twice-01JABCDEFGHJKMNPQRSTVWXYZ1");
        assert_ne!(a, b);
        assert_eq!(
            a,
            object_name("rbtest-kuberay-submit_twice-01JABCDEFGHJKMNPQRSTVWXYZ0")
        );
        for name in [
            &a,
            &b,
            &object_name("UPPER"),
            &object_name("--"),
            &object_name("9x"),
        ] {
            assert!(name.len() <= MAX_NAME_LEN, "{name}");
            assert!(crate::config::is_dns_label(name), "{name}");
            assert!(name.starts_with("rb-"), "{name}");
        }
    }

    #[test]
    fn label_values_are_cleaned_only_when_needed() {
        assert_eq!(label_value("vision"), "vision");
        assert_eq!(label_value("team a/b"), "team_a_b");
        assert_eq!(label_value("!!"), "unknown");
    }

    #[test]
    fn ownership_needs_the_submission_annotation() {
        let job = JobId::generate(1_700_000_000_000);
        let labels = BTreeMap::from([
            (LABEL_JOB_ID.to_string(), job.as_str().to_string()),
            (LABEL_ATTEMPT.to_string(), "2".to_string()),
        ]);
        let annotations =
            BTreeMap::from([(ANNOTATION_SUBMISSION_ID.to_string(), "sub-1".to_string())]);
        let owned = owned_job(&labels, &annotations, RemoteState::Running).unwrap();
        assert_eq!(owned.submission_id, "sub-1");
        assert_eq!(owned.job_id, Some(job));
        assert_eq!(owned.attempt, Some(2));
        assert_eq!(
            owned_job(&labels, &BTreeMap::new(), RemoteState::Running),
            None
        );
    }

    #[test]
    fn log_cursor_is_a_byte_offset() {
        let chunk = log_suffix("héllo", 2);
        assert_eq!(chunk.text, "éllo");
        assert_eq!(chunk.next_cursor, 6);
        assert_eq!(log_suffix("ab", 10).text, "");
    }
}
