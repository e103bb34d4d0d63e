//! The checks, one public function each. Each answers `Err(explanation)` on
//! failure and removes the jobs it created, whatever the outcome.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use raybroker_adapter::ClusterAdapter;

use crate::Fixture;

mod lifecycle;
mod observe;

pub use lifecycle::*;
pub use observe::*;

/// What a check returns: `Err` explains the failure.
pub type CheckResult = Result<(), String>;

/// A check's future.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

/// A named check, for [`crate::run_all`].
pub struct Check {
    /// The check function's name.
    pub name: &'static str,
    /// Runs it.
    pub run: for<'a> fn(&'a dyn ClusterAdapter, &'a Fixture) -> CheckFuture<'a>,
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check, in the order [`crate::run_all`] runs them.
        pub const ALL: &[Check] = &[$(Check {
            name: stringify!($name),
            run: |adapter, fixture| Box::pin($name(adapter, fixture)),
        }),*];
    };
}

checks!(
    snapshot_is_consistent,
    unknown_id_is_not_found,
    submit_is_idempotent,
    short_job_succeeds,
    failing_job_reports_exit_code,
    cancel_of_finished_job_is_ok,
    cancel_stops_running_job,
    log_cursor_advances,
    list_owned_sees_only_our_origin,
    cleanup_forgets_finished_job,
);

/// The longest any single check may take before [`crate::run_all`] calls it hung.
pub fn bound(fixture: &Fixture) -> Duration {
    let t = &fixture.timeouts;
    t.start + t.finish + 3 * t.stop + Duration::from_secs(30)
}
