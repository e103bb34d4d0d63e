//! The Lua scripts, loaded once and run by hash.

/// Every script the queue runs.
pub(crate) struct Scripts {}

impl Scripts {
    pub(crate) fn load() -> Scripts {
        Scripts {}
    }
}
