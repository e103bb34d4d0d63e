//! The `raybroker` binary as users run it: argument parsing, specs built from
//! flags, error messages and exit statuses. No broker is needed; where a
//! command must talk HTTP, a canned in-test responder stands in for it and
//! records what the CLI sent.

#[path = "cli/against_broker.rs"]
mod against_broker;
#[path = "cli/offline.rs"]
mod offline;
#[path = "cli/placement.rs"]
mod placement;
#[path = "cli/support.rs"]
mod support;
