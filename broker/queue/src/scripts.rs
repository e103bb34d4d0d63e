//! The Lua scripts, each with the shared prelude prepended and the lifecycle
//! table rendered in from [`JobState::allowed_next`].

use raybroker_core::JobState;
use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Every script the queue runs; see each file's header for KEYS/ARGV/returns.
pub(crate) struct Scripts {
    pub submit: Script,
    pub lease: Script,
    pub leased: Script,
    pub update_attempt: Script,
    pub cancel: Script,
    pub reclaim: Script,
    pub append_logs: Script,
    pub record_metrics: Script,
    pub record_spans: Script,
    pub record_artifacts: Script,
}

impl Scripts {
    pub(crate) fn load() -> Scripts {
        let prelude = PRELUDE.replace("__ALLOWED__", &allowed_table());
        let with_prelude = |body: &str| Script::new(&format!("{prelude}\n{body}"));
        Scripts {
            submit: with_prelude(include_str!("lua/submit.lua")),
            lease: with_prelude(include_str!("lua/lease.lua")),
            leased: with_prelude(include_str!("lua/leased.lua")),
            update_attempt: with_prelude(include_str!("lua/update_attempt.lua")),
            cancel: with_prelude(include_str!("lua/cancel.lua")),
            reclaim: with_prelude(include_str!("lua/reclaim.lua")),
            append_logs: with_prelude(include_str!("lua/append_logs.lua")),
            record_metrics: with_prelude(include_str!("lua/record_metrics.lua")),
            record_spans: with_prelude(include_str!("lua/record_spans.lua")),
            record_artifacts: with_prelude(include_str!("lua/record_artifacts.lua")),
        }
    }
}

/// `queued = {dispatching = true, ...}, ...` as a Lua table body.
fn allowed_table() -> String {
    JobState::ALL
        .iter()
        .map(|from| {
            let nexts: Vec<String> = from
                .allowed_next()
                .iter()
                .map(|to| format!("{} = true", to.as_str()))
                .collect();
            format!("{} = {{{}}}", from.as_str(), nexts.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_state() {
        let table = allowed_table();
        for state in JobState::ALL {
            assert!(
                table.contains(&format!("{} = {{", state.as_str())),
                "{table}"
            );
        }
        assert!(table.contains("queued = {dispatching = true, failed = true, cancelled = true}"));
        assert!(table.contains("succeeded = {}"));
    }
}
