//! The raybroker service: its configuration, the tenant-scoped REST API over
//! the Redis job queue, and the server that runs it.
//!
//! - [`config`] reads and checks the one versioned YAML file;
//! - [`auth`] turns a bearer token into a tenant (tokens kept only as hashes);
//! - [`metrics`] holds the Prometheus metrics the API exports;
//! - [`raystore`] keeps what the Ray Jobs API compatible endpoint needs
//!   beside the queue (uploaded packages) and delivers packages to clusters;
//! - [`serve`] runs the HTTP server until a shutdown future completes;
//! - [`telemetry`] traces, metrics and results of jobs.
//!
//! The command-line client lives in the binary (`src/main.rs`, `src/cli/`).

mod api;
pub mod auth;
pub mod clusters;
pub mod config;
pub mod loops;
pub mod metrics;
pub mod raystore;
pub mod serve;
pub mod telemetry;

/// The OpenAPI description of the REST API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
