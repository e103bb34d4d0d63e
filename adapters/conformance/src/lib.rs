//! The conformance suite every raybroker cluster adapter's tests run, so that
//! the broker can rely on one contract whatever the backend (apalis runs the
//! same tests against every storage; this is that idea for clusters).
//!
//! An adapter's test builds a [`Fixture`] (entrypoints the backend can run,
//! time bounds, an id generator, and a second adapter on the same cluster
//! under another origin) and calls [`run_all`], or one check from [`checks`]
//! at a time. Every check submits its own jobs under fresh submission ids,
//! cleans them up afterwards, and explains a failure well enough to act on it
//! without rerunning.

#![warn(missing_docs)]

pub mod checks;
pub mod processes;
mod support;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raybroker_adapter::ClusterAdapter;
use raybroker_core::{Quantity, Resources, TenantId};

/// Shell entrypoints with known behaviour. A real cluster runs them; a
/// simulated backend can recognise and interpret them.
#[derive(Clone, Debug)]
pub struct Entrypoints {
    /// Prints a line and exits 0 within a few seconds.
    pub succeeds: String,
    /// Exits with code 3 at once.
    pub exits_3: String,
    /// Runs far longer than any check waits (until stopped).
    pub runs_long: String,
    /// Prints [`Entrypoints::first_marker`], pauses several seconds, prints
    /// [`Entrypoints::second_marker`], exits 0. The markers must not appear
    /// literally in the command: Ray 2.60 writes `Running entrypoint for job
    /// <id>: <entrypoint>` into the job's log.
    pub logs_twice: String,
    /// The first line `logs_twice` prints.
    pub first_marker: String,
    /// The second line `logs_twice` prints.
    pub second_marker: String,
}

impl Default for Entrypoints {
    fn default() -> Self {
        Entrypoints {
            succeeds: "echo conformance-ok".to_string(),
            exits_3: "exit 3".to_string(),
            runs_long: "sleep 60".to_string(),
            logs_twice:
                "printf 'conformance-%s\\n' first; sleep 5; printf 'conformance-%s\\n' second"
                    .to_string(),
            first_marker: "conformance-first".to_string(),
            second_marker: "conformance-second".to_string(),
        }
    }
}

/// How long the checks wait for the backend.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// From submit until a job is running.
    pub start: Duration,
    /// From submit until a short job is final.
    pub finish: Duration,
    /// From cancel until a running job is final.
    pub stop: Duration,
    /// Pause between two status or log polls.
    pub poll: Duration,
    /// How long a cleaned-up job must stay unknown (a backend that writes a
    /// record back shortly after deletion fails this).
    pub settle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            start: Duration::from_secs(60),
            finish: Duration::from_secs(90),
            stop: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            settle: Duration::from_secs(3),
        }
    }
}

/// Makes a fresh submission id for a check (its name is the argument).
pub type IdGenerator = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What the checks need besides the adapter under test.
#[derive(Clone)]
pub struct Fixture {
    /// Commands to run.
    pub entrypoints: Entrypoints,
    /// Bounds on waiting.
    pub timeouts: Timeouts,
    /// Resources of every job the checks submit (small, so jobs never queue).
    pub resources: Resources,
    /// The tenant jobs are submitted for.
    pub tenant: TenantId,
    /// True when the backend reports exit codes: a job exiting 3 must then
    /// report exactly `Some(3)`; otherwise `None` is accepted too.
    pub reports_exit_codes: bool,
    /// An adapter for the same cluster tagging jobs with another origin; its
    /// jobs must not show up in the tested adapter's `list_owned`.
    pub foreign: Arc<dyn ClusterAdapter>,
    /// Fresh submission ids.
    pub ids: IdGenerator,
}

impl Fixture {
    /// Defaults, ids `<prefix>-<check>-<ulid>`, and the foreign-origin adapter.
    pub fn new(prefix: &str, foreign: Arc<dyn ClusterAdapter>) -> Fixture {
        Fixture {
            entrypoints: Entrypoints::default(),
            timeouts: Timeouts::default(),
            resources: Resources {
                cpus: Quantity::from_units(1_000),
                ..Resources::default()
            },
            tenant: TenantId::new("conformance").expect("a constant, valid tenant name"),
            reports_exit_codes: true,
            foreign,
            ids: unique_ids(prefix),
        }
    }

    /// A fresh submission id for `check`.
    pub fn next_id(&self, check: &str) -> String {
        (self.ids)(check)
    }
}

/// An origin tag unique to this test process and moment,
/// `rbtest-<label>-<pid>-<nanoseconds mod 10^12>`, so that jobs an earlier run
/// left never show up in this run's `list_owned`. Short enough to be a
/// Kubernetes label value for labels of up to 20 characters.
pub fn unique_origin(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!("rbtest-{label}-{}-{nanos}", std::process::id())
}

/// Ids `<prefix>-<check with '-' for '_'>-<lower-case ULID>`: unique, sortable
/// by time, and made of characters every backend accepts in an id or a path.
pub fn unique_ids(prefix: &str) -> IdGenerator {
    let prefix = prefix.to_string();
    Arc::new(move |check: &str| {
        let ulid = ulid::Ulid::new().to_string().to_ascii_lowercase();
        format!("{prefix}-{}-{ulid}", check.replace('_', "-"))
    })
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    /// The check's name (a function in [`checks`]).
    pub check: &'static str,
    /// What was expected and what happened.
    pub message: String,
    /// How long the check ran.
    pub elapsed: Duration,
}

/// Every failed check of a [`run_all`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConformanceFailure {
    /// The adapter's name.
    pub adapter: String,
    /// The failures, in the order the checks ran.
    pub failures: Vec<CheckFailure>,
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "adapter '{}' failed {} conformance check(s):",
            self.adapter,
            self.failures.len()
        )?;
        for failure in &self.failures {
            writeln!(
                f,
                "- {} (after {:.1} s): {}",
                failure.check,
                failure.elapsed.as_secs_f64(),
                failure.message
            )?;
        }
        Ok(())
    }
}

/// What [`run_all`] did: each check that passed and how long it took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// `(check, elapsed)` in the order the checks ran.
    pub passed: Vec<(&'static str, Duration)>,
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (check, elapsed) in &self.passed {
            writeln!(f, "ok {check} ({:.1} s)", elapsed.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Runs every check, one after the other (jobs of one check never compete
/// with another's), and reports all failures rather than the first.
pub async fn run_all(
    adapter: Arc<dyn ClusterAdapter>,
    fixture: &Fixture,
) -> Result<ConformanceReport, ConformanceFailure> {
    let adapter = adapter.as_ref();
    let mut report = ConformanceReport::default();
    let mut failures = Vec::new();
    for check in checks::ALL {
        let started = Instant::now();
        let outcome = tokio::time::timeout(checks::bound(fixture), (check.run)(adapter, fixture))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "did not finish within {:.0} s",
                    checks::bound(fixture).as_secs_f64()
                ))
            });
        let elapsed = started.elapsed();
        match outcome {
            Ok(()) => {
                tracing::info!(check = check.name, ?elapsed, "conformance check passed");
                report.passed.push((check.name, elapsed));
            }
            Err(message) => {
                tracing::warn!(check = check.name, ?elapsed, %message, "conformance check failed");
                failures.push(CheckFailure {
                    check: check.name,
                    message,
                    elapsed,
                });
            }
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(ConformanceFailure {
            adapter: adapter.name().to_string(),
            failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_path_safe() {
        let ids = unique_ids("rbtest-x");
        let (a, b) = (ids("log_cursor_advances"), ids("log_cursor_advances"));
        assert_ne!(a, b);
        assert!(a.starts_with("rbtest-x-log-cursor-advances-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
    }

    #[test]
    fn failures_list_every_check() {
        let failure = ConformanceFailure {
            adapter: "ray-a".into(),
            failures: vec![
                CheckFailure {
                    check: "short_job_succeeds",
                    message: "ended Failed".into(),
                    elapsed: Duration::from_millis(2_500),
                },
                CheckFailure {
                    check: "log_cursor_advances",
                    message: "cursor went back".into(),
                    elapsed: Duration::from_secs(7),
                },
            ],
        };
        let text = failure.to_string();
        assert!(
            text.starts_with("adapter 'ray-a' failed 2 conformance check(s):"),
            "{text}"
        );
        assert!(
            text.contains("- short_job_succeeds (after 2.5 s): ended Failed"),
            "{text}"
        );
        assert!(
            text.contains("- log_cursor_advances (after 7.0 s): cursor went back"),
            "{text}"
        );
    }

    #[test]
    fn every_check_is_listed_once() {
        let mut names: Vec<&str> = checks::ALL.iter().map(|c| c.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        assert_eq!(count, 10);
    }
}
