//! Decoding a job hash (see [`crate::keys::Keys::job`]) into a [`Job`].

use std::collections::HashMap;
use std::str::FromStr;

use raybroker_core::{
    Attempt, Failover, FailureClass, Job, JobId, JobSpec, JobState, TenantId, Transition,
};

use crate::queue::QueueError;

/// Builds a job from its hash fields; any missing or malformed field is
/// reported as [`QueueError::Corrupt`] rather than guessed.
pub(crate) fn job_from_fields(
    id: &str,
    fields: &HashMap<String, String>,
) -> Result<Job, QueueError> {
    let corrupt = |detail: String| QueueError::Corrupt {
        id: id.to_string(),
        detail,
    };
    let get = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| corrupt(format!("field '{name}' is missing")))
    };
    let num = |name: &str| -> Result<u64, QueueError> {
        get(name)?
            .parse::<u64>()
            .map_err(|e| corrupt(format!("field '{name}': {e}")))
    };

    let job_id = JobId::from_str(id).map_err(|e| corrupt(e.to_string()))?;
    let tenant = TenantId::new(get("tenant")?).map_err(|e| corrupt(e.to_string()))?;
    let state = JobState::from_str(get("state")?).map_err(|e| corrupt(e.to_string()))?;
    let spec: JobSpec =
        serde_json::from_str(get("spec")?).map_err(|e| corrupt(format!("field 'spec': {e}")))?;
    let attempts: Vec<Attempt> = match fields.get("attempts").map(String::as_str) {
        None | Some("") | Some("[]") | Some("{}") => Vec::new(),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| corrupt(format!("field 'attempts': {e}")))?
        }
    };
    let mut numbered: Vec<(u32, &String)> = fields
        .iter()
        .filter_map(|(name, line)| Some((name.strip_prefix("h:")?.parse().ok()?, line)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    let history = numbered
        .into_iter()
        .map(|(n, line)| {
            serde_json::from_str::<Transition>(line)
                .map_err(|e| corrupt(format!("history field 'h:{n}': {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let exit_code = match fields.get("exit") {
        None => None,
        Some(text) => Some(
            text.parse::<i32>()
                .map_err(|e| corrupt(format!("field 'exit': {e}")))?,
        ),
    };
    // A fresh job's hash leaves out fields still at their initial value
    // (lua/submit.lua): attempt 0.
    let attempt = match fields.get("attempt") {
        None => 0,
        Some(_) => u32::try_from(num("attempt")?).map_err(|e| corrupt(e.to_string()))?,
    };
    // The last change and the reason of the last move between states are
    // read from the history, not stored apart (lua/prelude.lua: record);
    // `updated` and `reason` fields of jobs stored before are ignored.
    let created_at_ms = num("created")?;
    let updated_at_ms = history.last().map_or(created_at_ms, |t| t.at_ms);
    let reason = history
        .iter()
        .rev()
        .find(|t| t.from != Some(t.to))
        .map(|t| t.reason.clone())
        .unwrap_or_default();
    let failure = match fields.get("failure").map(String::as_str) {
        None | Some("") => implied_failure(state, exit_code),
        Some(text) => Some(
            serde_json::from_value::<FailureClass>(serde_json::Value::String(text.to_string()))
                .map_err(|e| corrupt(format!("field 'failure': {e}")))?,
        ),
    };
    let not_before_ms = match fields.get("notbefore").map(String::as_str) {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|e| corrupt(format!("field 'notbefore': {e}")))?,
        ),
    };
    let failover = Failover {
        excluded_clusters: fields
            .get("exclude")
            .map(|list| list.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        not_before_ms,
    };
    Ok(Job {
        id: job_id,
        tenant,
        name: get("name")?.clone(),
        state,
        reason,
        attempt,
        cluster: fields.get("cluster").filter(|c| !c.is_empty()).cloned(),
        cancel_requested: fields.get("cancel").map(String::as_str) == Some("1"),
        exit_code,
        failure,
        failover,
        created_at_ms,
        updated_at_ms,
        spec,
        attempts,
        history,
    })
}

/// The class of a job that ended without one recorded: cancelled jobs
/// (cancelled before any cluster ran them, or stored before classes
/// existed) and jobs whose entrypoint exited non-zero.
fn implied_failure(state: JobState, exit_code: Option<i32>) -> Option<FailureClass> {
    match (state, exit_code) {
        (JobState::Cancelled, _) => Some(FailureClass::Cancelled),
        (JobState::Failed, Some(code)) if code != 0 => Some(FailureClass::JobError),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> HashMap<String, String> {
        [
            ("tenant", "robotics"),
            ("state", "queued"),
            ("seq", "7"),
            ("prio", "0"),
            ("fence", "0"),
            ("attempt", "0"),
            ("cancel", "0"),
            ("reason", "submitted"),
            ("created", "1700000000000"),
            ("updated", "1700000000000"),
            ("name", "train"),
            ("spec", r#"{"entrypoint":"python train.py"}"#),
            ("attempts", "{}"),
            ("nhist", "2"),
            (
                "h:2",
                r#"{"from":"queued","to":"cancelled","at_ms":1700000000001,"attempt":0,"reason":"by user"}"#,
            ),
            (
                "h:1",
                r#"{"to":"queued","at_ms":1700000000000,"attempt":0,"reason":"submitted"}"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    const ID: &str = "01JDQ3ZK8V6X9T2M4N5P7R8S9A";

    #[test]
    fn decodes_a_fresh_job() {
        let job = job_from_fields(ID, &fields()).unwrap();
        assert_eq!(job.state, JobState::Queued);
        let reasons: Vec<_> = job.history.iter().map(|h| h.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["submitted", "by user"],
            "in order of their numbers"
        );
        assert!(job.attempts.is_empty());
        assert_eq!(job.spec.entrypoint, "python train.py");
        assert_eq!(job.failure, None);
        assert!(job.failover.is_empty());
    }

    #[test]
    fn decodes_the_failure_class_and_the_retry_state() {
        let mut f = fields();
        f.insert("failure".into(), "node_lost".into());
        f.insert("notbefore".into(), "1700000005000".into());
        f.insert("exclude".into(), "onprem-a gke".into());
        let job = job_from_fields(ID, &f).unwrap();
        assert_eq!(job.failure, Some(FailureClass::NodeLost));
        assert_eq!(job.failover.not_before_ms, Some(1_700_000_005_000));
        assert_eq!(job.failover.excluded_clusters, ["onprem-a", "gke"]);
        f.insert("failure".into(), "meteor".into());
        assert!(matches!(
            job_from_fields(ID, &f),
            Err(QueueError::Corrupt { .. })
        ));
        let mut f = fields();
        f.insert("state".into(), "cancelled".into());
        let job = job_from_fields(ID, &f).unwrap();
        assert_eq!(job.failure, Some(FailureClass::Cancelled), "implied");
    }

    #[test]
    fn a_fresh_job_leaves_out_what_is_at_its_initial_value() {
        let mut f = fields();
        for name in [
            "fence", "attempt", "cancel", "reason", "updated", "attempts", "h:2",
        ] {
            f.remove(name);
        }
        f.insert("nhist".into(), "1".into());
        let job = job_from_fields(ID, &f).unwrap();
        assert_eq!(job.attempt, 0);
        assert!(!job.cancel_requested);
        assert_eq!(job.reason, "submitted", "the first history line's");
        assert_eq!(job.updated_at_ms, 1_700_000_000_000);
        assert!(job.attempts.is_empty());
        f.insert("attempt".into(), "x".into());
        assert!(job_from_fields(ID, &f).is_err(), "present but not a number");
    }

    #[test]
    fn reason_and_last_change_come_from_the_history() {
        let mut f = fields();
        f.insert("reason".into(), "stale".into());
        f.insert("updated".into(), "1".into());
        f.insert("nhist".into(), "3".into());
        f.insert(
            "h:3".into(),
            r#"{"from":"cancelled","to":"cancelled","at_ms":1700000000009,"attempt":0,"reason":"a note"}"#.into(),
        );
        let job = job_from_fields(ID, &f).unwrap();
        assert_eq!(job.reason, "by user", "the last move's, not a note's");
        assert_eq!(
            job.updated_at_ms, 1_700_000_000_009,
            "the last line's, notes too"
        );
    }

    #[test]
    fn reports_corruption_instead_of_guessing() {
        let mut f = fields();
        f.insert("state".into(), "exploded".into());
        assert!(matches!(
            job_from_fields(ID, &f),
            Err(QueueError::Corrupt { .. })
        ));
        let mut f = fields();
        f.remove("spec");
        let err = job_from_fields(ID, &f).unwrap_err().to_string();
        assert!(err.contains("'spec' is missing"), "{err}");
    }
}
