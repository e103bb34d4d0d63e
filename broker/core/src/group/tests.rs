use proptest::prelude::*;
use serde_json::json;

use super::*;

fn parallel(n: usize, max: Option<u32>) -> GroupSpec {
    GroupSpec {
        max_concurrency: max,
        jobs: vec![json!({"entrypoint": "true"}); n],
        ..GroupSpec::default()
    }
}

fn series(n: usize, on_failure: OnFailure) -> GroupSpec {
    GroupSpec {
        mode: GroupMode::Series,
        on_failure,
        jobs: vec![json!({"entrypoint": "true"}); n],
        ..GroupSpec::default()
    }
}

#[test]
fn template_and_overrides_merge_into_members() {
    let yaml = r#"
name: seeds
mode: parallel
max_concurrency: 2
template:
  entrypoint: python train.py
  resources: {cpus: 1, gpus: 1}
  labels: {project: loco}
jobs:
  - {name: seed-1}
  - {name: seed-2, resources: {gpus: 2}, labels: {seed: "2"}}
"#;
    let spec = GroupSpec::parse(yaml.as_bytes(), true).unwrap();
    let members = spec.members().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].name, "seed-1");
    assert_eq!(members[1].resources.gpus, crate::Quantity::whole(2));
    assert_eq!(members[1].resources.cpus, crate::Quantity::whole(1));
    assert_eq!(members[1].labels["project"], "loco");
    assert_eq!(members[1].labels["seed"], "2");
}

#[test]
fn member_errors_name_the_member_and_field() {
    let spec = GroupSpec {
        template: Some(json!({"entrypoint": "x"})),
        jobs: vec![
            json!({}),
            json!({"resources": {"cpus": -1}}),
            json!({"colour": 1}),
        ],
        ..GroupSpec::default()
    };
    let errors = spec.members().unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["jobs[1].resources.cpus", "jobs[2].colour"],
        "{errors:?}"
    );
    let missing = GroupSpec {
        jobs: vec![json!({"name": "a"})],
        ..GroupSpec::default()
    };
    assert_eq!(
        missing.members().unwrap_err()[0].field,
        "jobs[0].entrypoint"
    );
}

#[test]
fn group_fields_are_checked() {
    let err = GroupSpec::parse(br#"{"jobs": [], "mode": "sideways"}"#, false).unwrap_err();
    assert_eq!(err.field, "mode");
    let err = GroupSpec::parse(br#"{"jobs": [], "max_concurency": 2}"#, false).unwrap_err();
    assert!(err.message.contains("max_concurency"), "{err}");
    let fields = |spec: GroupSpec| -> Vec<String> {
        spec.members()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    };
    assert_eq!(fields(parallel(0, None)), ["jobs"]);
    assert_eq!(fields(parallel(1, Some(0))), ["max_concurrency"]);
    let mut s = series(2, OnFailure::Stop);
    s.max_concurrency = Some(2);
    assert_eq!(fields(s), ["max_concurrency"]);
    let mut p = parallel(1, None);
    p.jobs[0]["idempotency_key"] = json!("k");
    assert_eq!(fields(p), ["jobs[0].idempotency_key"]);
}

#[test]
fn parallel_groups_release_up_to_their_concurrency() {
    let spec = parallel(5, Some(2));
    let plan = plan(&spec, &[None; 5]);
    assert_eq!(plan.release, [0, 1]);
    let states = [
        Some(JobState::Succeeded),
        Some(JobState::Running),
        None,
        None,
        None,
    ];
    assert_eq!(super::plan(&spec, &states).release, [2]);
    let done = [Some(JobState::Succeeded); 5];
    let plan = super::plan(&spec, &done);
    assert_eq!(plan.finish.map(|f| f.0), Some(GroupState::Succeeded));
    let mut some_failed = done;
    some_failed[3] = Some(JobState::Failed);
    let plan = super::plan(&spec, &some_failed);
    assert_eq!(plan.finish.map(|f| f.0), Some(GroupState::Failed));
}

#[test]
fn series_groups_stop_at_the_first_failure_when_asked() {
    let spec = series(4, OnFailure::Stop);
    assert_eq!(plan(&spec, &[None; 4]).release, [0]);
    let states = [
        Some(JobState::Succeeded),
        Some(JobState::Running),
        None,
        None,
    ];
    assert!(plan(&spec, &states).release.is_empty());
    let states = [
        Some(JobState::Succeeded),
        Some(JobState::Failed),
        None,
        None,
    ];
    let p = plan(&spec, &states);
    assert!(p.release.is_empty());
    let (state, reason) = p.finish.unwrap();
    assert_eq!(state, GroupState::Failed);
    assert!(reason.contains("job 1"), "{reason}");
    assert!(reason.contains("2 never started"), "{reason}");

    let spec = series(4, OnFailure::Continue);
    assert_eq!(plan(&spec, &states).release, [2]);
}

proptest! {
    /// Whatever the members' states, releasing what the plan says never
    /// leaves more than the concurrency unfinished, and series groups never
    /// run two members at once.
    #[test]
    fn a_plan_never_exceeds_the_concurrency(
        n in 1usize..12,
        max in 1u32..5,
        series_mode in any::<bool>(),
        outcomes in proptest::collection::vec(0u8..4, 12),
    ) {
        let spec = if series_mode { series(n, OnFailure::Continue) } else { parallel(n, Some(max)) };
        let mut states: Vec<Option<JobState>> = vec![None; n];
        for round in 0..(3 * n) {
            let p = plan(&spec, &states);
            for i in p.release {
                prop_assert!(states[i].is_none());
                states[i] = Some(JobState::Queued);
            }
            let unfinished = states.iter().filter(|s| s.is_some_and(|s| !s.is_terminal())).count();
            prop_assert!(unfinished <= spec.concurrency());
            // One unfinished member ends per round.
            if let Some(s) = states.iter_mut().find(|s| s.is_some_and(|s| !s.is_terminal())) {
                *s = Some(match outcomes[round % outcomes.len()] {
                    0 => JobState::Failed,
                    1 => JobState::Cancelled,
                    _ => JobState::Succeeded,
                });
            }
        }
        prop_assert!(plan(&spec, &states).finish.is_some());
    }
}
