//! Checks of a job's life: submit, status, exit, cancel, cleanup.

use raybroker_adapter::{ClusterAdapter, RemoteState, SubmitAck};

use crate::support::{describe, submit_new, tidy, wait_final, wait_until};
use crate::Fixture;

use super::CheckResult;

/// An id the cluster never saw: status is NotFound (not an error), and cancel
/// and cleanup of it succeed (replays after a crash must be harmless).
pub async fn unknown_id_is_not_found(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
) -> CheckResult {
    let id = fixture.next_id("unknown_id_is_not_found");
    match adapter.status(&id).await {
        Ok(status) if status.state == RemoteState::NotFound => {}
        Ok(status) => {
            return Err(format!(
                "status of never-submitted {id} is {}",
                describe(&status)
            ))
        }
        Err(e) => {
            return Err(format!(
                "status of never-submitted {id} failed ({e}); expected NotFound"
            ))
        }
    }
    adapter
        .cancel(&id)
        .await
        .map_err(|e| format!("cancel of never-submitted {id} failed ({e}); expected Ok"))?;
    adapter
        .cleanup(&id)
        .await
        .map_err(|e| format!("cleanup of never-submitted {id} failed ({e}); expected Ok"))
}

/// Submitting one id twice: Created, then AlreadyExists; the cluster holds
/// one job, tagged with the broker's job id and attempt, and it runs once.
pub async fn submit_is_idempotent(adapter: &dyn ClusterAdapter, fixture: &Fixture) -> CheckResult {
    let id = fixture.next_id("submit_is_idempotent");
    let outcome = async {
        let first = submit_new(adapter, fixture, &id, &fixture.entrypoints.succeeds).await?;
        match adapter.submit(&first).await {
            Ok(SubmitAck::AlreadyExists) => {}
            Ok(SubmitAck::Created) => {
                return Err(format!(
                    "the second submit of {id} answered Created; expected AlreadyExists"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "the second submit of {id} failed ({e}); expected AlreadyExists"
                ))
            }
        }
        let owned = adapter
            .list_owned()
            .await
            .map_err(|e| format!("list_owned failed: {e}"))?;
        let listed: Vec<_> = owned.iter().filter(|job| job.submission_id == id).collect();
        let [job] = listed.as_slice() else {
            return Err(format!(
                "list_owned shows {id} {} times after a duplicate submit; expected once",
                listed.len()
            ));
        };
        if job.job_id.as_ref() != Some(&first.job_id) || job.attempt != Some(first.attempt) {
            return Err(format!(
                "list_owned shows {id} tagged job {:?} attempt {:?}; expected job {} attempt {}",
                job.job_id, job.attempt, first.job_id, first.attempt
            ));
        }
        let status = wait_final(adapter, fixture, &id, fixture.timeouts.finish).await?;
        if status.state != RemoteState::Succeeded {
            return Err(format!(
                "the job submitted twice ended {}; expected Succeeded",
                describe(&status)
            ));
        }
        Ok(())
    }
    .await;
    tidy(adapter, fixture, &id).await;
    outcome
}

/// A short job reaches Succeeded, with exit code 0 if any and ordered times.
pub async fn short_job_succeeds(adapter: &dyn ClusterAdapter, fixture: &Fixture) -> CheckResult {
    let id = fixture.next_id("short_job_succeeds");
    let outcome = async {
        submit_new(adapter, fixture, &id, &fixture.entrypoints.succeeds).await?;
        let status = wait_final(adapter, fixture, &id, fixture.timeouts.finish).await?;
        if status.state != RemoteState::Succeeded || !matches!(status.exit_code, None | Some(0)) {
            return Err(format!(
                "{:?} ended {}; expected Succeeded with exit code 0",
                fixture.entrypoints.succeeds,
                describe(&status)
            ));
        }
        if let (Some(start), Some(end)) = (status.started_at_ms, status.ended_at_ms) {
            if start > end {
                return Err(format!(
                    "job {id} ended ({end} ms) before it started ({start} ms)"
                ));
            }
        }
        Ok(())
    }
    .await;
    tidy(adapter, fixture, &id).await;
    outcome
}

/// A job exiting 3 reaches Failed, reporting exit code 3 where the backend
/// reports exit codes.
pub async fn failing_job_reports_exit_code(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
) -> CheckResult {
    let id = fixture.next_id("failing_job_reports_exit_code");
    let outcome = async {
        submit_new(adapter, fixture, &id, &fixture.entrypoints.exits_3).await?;
        let status = wait_final(adapter, fixture, &id, fixture.timeouts.finish).await?;
        let code_ok = match status.exit_code {
            Some(3) => true,
            None => !fixture.reports_exit_codes,
            Some(_) => false,
        };
        if status.state != RemoteState::Failed || !code_ok {
            return Err(format!(
                "{:?} ended {}; expected Failed with exit code 3",
                fixture.entrypoints.exits_3,
                describe(&status)
            ));
        }
        Ok(())
    }
    .await;
    tidy(adapter, fixture, &id).await;
    outcome
}

/// Cancelling a finished job succeeds (twice) and leaves its final state alone.
pub async fn cancel_of_finished_job_is_ok(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
) -> CheckResult {
    let id = fixture.next_id("cancel_of_finished_job_is_ok");
    let outcome = async {
        submit_new(adapter, fixture, &id, &fixture.entrypoints.succeeds).await?;
        let before = wait_final(adapter, fixture, &id, fixture.timeouts.finish).await?;
        for round in ["first", "second"] {
            adapter
                .cancel(&id)
                .await
                .map_err(|e| format!("{round} cancel of finished job {id} failed: {e}"))?;
        }
        let after = adapter
            .status(&id)
            .await
            .map_err(|e| format!("status of {id} failed: {e}"))?;
        if after.state != before.state {
            return Err(format!(
                "cancel changed finished job {id} from {:?} to {}",
                before.state,
                describe(&after)
            ));
        }
        Ok(())
    }
    .await;
    tidy(adapter, fixture, &id).await;
    outcome
}

/// A running job ends Stopped (or Failed) within the stop bound after cancel.
pub async fn cancel_stops_running_job(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
) -> CheckResult {
    let id = fixture.next_id("cancel_stops_running_job");
    let outcome = async {
        submit_new(adapter, fixture, &id, &fixture.entrypoints.runs_long).await?;
        wait_until(
            adapter,
            fixture,
            &id,
            fixture.timeouts.start,
            "running",
            |s| s.state == RemoteState::Running || s.state.is_final(),
        )
        .await?;
        adapter
            .cancel(&id)
            .await
            .map_err(|e| format!("cancel of running job {id} failed: {e}"))?;
        let status = wait_final(adapter, fixture, &id, fixture.timeouts.stop).await?;
        if !matches!(status.state, RemoteState::Stopped | RemoteState::Failed) {
            return Err(format!(
                "{:?} ended {} after cancel; expected Stopped or Failed",
                fixture.entrypoints.runs_long,
                describe(&status)
            ));
        }
        adapter
            .cancel(&id)
            .await
            .map_err(|e| format!("second cancel of {id} failed: {e}"))
    }
    .await;
    tidy(adapter, fixture, &id).await;
    outcome
}

/// Cleanup of a finished job makes it unknown for good: status NotFound (and
/// still NotFound after [`crate::Timeouts::settle`]), gone from `list_owned`,
/// and a second cleanup succeeds.
pub async fn cleanup_forgets_finished_job(
    adapter: &dyn ClusterAdapter,
    fixture: &Fixture,
) -> CheckResult {
    let id = fixture.next_id("cleanup_forgets_finished_job");
    let outcome = async {
        submit_new(adapter, fixture, &id, &fixture.entrypoints.succeeds).await?;
        wait_final(adapter, fixture, &id, fixture.timeouts.finish).await?;
        adapter
            .cleanup(&id)
            .await
            .map_err(|e| format!("cleanup of finished job {id} failed: {e}"))?;
        let cleaned = tokio::time::Instant::now();
        loop {
            let status = adapter
                .status(&id)
                .await
                .map_err(|e| format!("status after cleanup failed: {e}"))?;
            if status.state != RemoteState::NotFound {
                return Err(format!(
                    "{:.1} s after cleanup, {id} is {}; expected NotFound",
                    cleaned.elapsed().as_secs_f64(),
                    describe(&status)
                ));
            }
            if cleaned.elapsed() >= fixture.timeouts.settle {
                break;
            }
            tokio::time::sleep(fixture.timeouts.poll).await;
        }
        adapter
            .cleanup(&id)
            .await
            .map_err(|e| format!("second cleanup of {id} failed: {e}"))?;
        let owned = adapter
            .list_owned()
            .await
            .map_err(|e| format!("list_owned failed: {e}"))?;
        if owned.iter().any(|job| job.submission_id == id) {
            return Err(format!("list_owned still shows {id} after cleanup"));
        }
        Ok(())
    }
    .await;
    tidy(adapter, fixture, &id).await;
    outcome
}
