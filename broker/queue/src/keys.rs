//! Every Redis key the queue uses, in one place, with its type and meaning.
//!
//! All keys start with a configurable prefix, so several brokers (or tests)
//! share one Redis without seeing each other's jobs.

use raybroker_core::group::GroupId;
use raybroker_core::{JobId, JobState, TenantId};

/// Builds key names under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `rb` gives `rb:job:<id>`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// HASH, one per job: `tenant`, `state`, `seq` (creation order), `prio`,
    /// `fence` (bumped by every lease and reclaim), `attempt`, `cluster`,
    /// `cancel` ("1" when asked), `exit`, `reason`, `created`, `updated` (ms),
    /// `name`, `spec` (JSON), `attempts` (JSON array), `nhist` and `h:1`,
    /// `h:2`, ... (one JSON state change each),
    /// `logcur` (see [`Keys::logs`]), `failure` (the latest attempt's
    /// failure class), `notbefore` (ms; a retry's backoff) and `exclude`
    /// (space-separated clusters the next attempt avoids).
    pub fn job(&self, id: &JobId) -> String {
        format!("{}:job:{}", self.prefix, id)
    }

    /// The `job` key without the id, for scripts that build it from ARGV.
    pub fn job_base(&self) -> String {
        format!("{}:job:", self.prefix)
    }

    /// ZSET of a tenant's queued jobs; score orders by priority then age
    /// (see [`ready_score`]).
    pub fn ready(&self, tenant: &TenantId) -> String {
        format!("{}:ready:{}", self.prefix, tenant)
    }

    /// SET of tenants that may have queued jobs (a hint: checked against `ready`).
    pub fn ready_tenants(&self) -> String {
        format!("{}:ready-tenants", self.prefix)
    }

    /// ZSET of leased (dispatching) jobs; score is the lease expiry in ms.
    pub fn leases(&self) -> String {
        format!("{}:leases", self.prefix)
    }

    /// HASH of a tenant's idempotency keys -> job id.
    pub fn idempotency(&self, tenant: &TenantId) -> String {
        format!("{}:idem:{}", self.prefix, tenant)
    }

    /// ZSET of all a tenant's jobs by creation sequence (listing).
    pub fn tenant_jobs(&self, tenant: &TenantId) -> String {
        format!("{}:jobs:{}", self.prefix, tenant)
    }

    /// ZSET of every job by creation sequence (admin listing).
    pub fn all_jobs(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// ZSET of the jobs in one state by creation sequence (listing, loops).
    /// Never written for `dispatching`: those jobs are the lease set's.
    pub fn in_state(&self, state: JobState) -> String {
        format!("{}:state:{}", self.prefix, state.as_str())
    }

    /// The `in_state` key without the state name, for scripts.
    pub fn in_state_base(&self) -> String {
        format!("{}:state:", self.prefix)
    }

    /// SET of jobs on a cluster (or leased) whose cancel must still be carried out.
    pub fn cancels(&self) -> String {
        format!("{}:cancels", self.prefix)
    }

    /// STREAM of state changes: `job`, `tenant`, `from`, `to`, `attempt`, `reason`, `at`.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// STRING: the job's log as fetched from its clusters, newest
    /// `log_cap_bytes` kept; the job hash's `logcur` field ("attempt:offset")
    /// says how far the current attempt's remote log has been read.
    pub fn logs(&self, id: &JobId) -> String {
        format!("{}:logs:{}", self.prefix, id)
    }

    /// HASH of a job's telemetry summary (see `queue/telemetry.rs`): per
    /// metric `last:<name>`, `min:<name>`, `max:<name>` (point JSON) with
    /// `lastat:`, `minv:`, `maxv:` beside them; `nnames`, `mdropped`;
    /// `a:<uri>` per artifact, `adropped`; `jobbytes`/`jobdropped` and
    /// `brokerbytes`/`brokerdropped` for the span lists; `rstart:<attempt>`,
    /// `rend:<attempt>` (the cluster's own start/end of that attempt, ms);
    /// `logtail:<attempt>` (the log's unfinished last line).
    pub fn telemetry(&self, id: &JobId) -> String {
        format!("{}:tele:{}", self.prefix, id)
    }

    /// LIST of one metric's points (JSON), oldest first: the key is this base
    /// followed by the metric's name.
    pub fn metric_series_base(&self, id: &JobId) -> String {
        format!("{}:series:{}:", self.prefix, id)
    }

    /// LIST of spans the job (or its cluster) sent over OTLP, JSON, bounded.
    pub fn job_spans(&self, id: &JobId) -> String {
        format!("{}:spans:{}", self.prefix, id)
    }

    /// LIST of the broker's adapter-call spans for the job, JSON, bounded.
    pub fn broker_spans(&self, id: &JobId) -> String {
        format!("{}:bspans:{}", self.prefix, id)
    }

    /// LIST of artifact URIs the job reported, each once, report order.
    pub fn artifacts(&self, id: &JobId) -> String {
        format!("{}:artifacts:{}", self.prefix, id)
    }

    /// STRING: the broker's secret for per-job telemetry tokens, made once
    /// by the first broker when the config names none.
    pub fn telemetry_secret(&self) -> String {
        format!("{}:telemetry-secret", self.prefix)
    }

    /// STRING: the event-stream cursor up to which finished jobs' spans were
    /// exported over OTLP.
    pub fn telemetry_export_cursor(&self) -> String {
        format!("{}:telemetry-export-cursor", self.prefix)
    }

    /// STRING counter giving each job its creation sequence number.
    pub fn seq(&self) -> String {
        format!("{}:seq", self.prefix)
    }

    /// HASH, one per job group or sweep (see `queue/groups.rs`): `tenant`,
    /// `kind` (`group`|`sweep`), `name`, `spec` (JSON), `count` (members;
    /// 0 for a sweep), `state`, `reason`, `cancel` ("1" when asked),
    /// `cancel_reason`, `created`, `updated`, `finished` (ms); `m:<i>` the
    /// job id of member `i` once released; `t:<i>` trial `i` of a sweep
    /// (JSON: parameters, seed, state, objective), written before its job.
    pub fn group(&self, id: &GroupId) -> String {
        format!("{}:group:{}", self.prefix, id)
    }

    /// ZSET of a tenant's groups and sweeps by creation time in ms (listing).
    pub fn tenant_groups(&self, tenant: &TenantId) -> String {
        format!("{}:groups:{}", self.prefix, tenant)
    }

    /// SET of groups and sweeps still running, walked by the group controller.
    pub fn active_groups(&self) -> String {
        format!("{}:groups-active", self.prefix)
    }
}

/// Priorities run from -1000 to 1000; the sequence number stays below 10^12,
/// so `(1000 - prio) * 10^12 + seq` is an exact double (< 2^53) that orders by
/// priority (high first) then age (old first).
pub fn ready_score(priority: i32, seq: u64) -> f64 {
    let band = (1000 - i64::from(priority.clamp(-1000, 1000))) as f64;
    band * 1e12 + (seq % 1_000_000_000_000) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_order_by_priority_then_age() {
        assert!(ready_score(10, 500) < ready_score(0, 1));
        assert!(ready_score(0, 1) < ready_score(0, 2));
        assert!(ready_score(-1000, 999_999_999_999) < 2f64.powi(53));
        assert!(ready_score(1000, 999_999_999_999) < ready_score(999, 0));
    }
}
