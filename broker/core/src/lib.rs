//! raybroker's domain model, with no IO: what a job asks for ([`JobSpec`],
//! [`Resources`]), how it is validated ([`validate`]), and the lifecycle every
//! job follows ([`JobState`], [`Job`]).
//!
//! Everything here is plain data plus pure functions, so the Redis queue, the
//! HTTP API, the CLI and the placement engine all agree on one definition.

pub mod failure;
pub mod gpu;
pub mod group;
pub mod job;
pub mod metrics;
pub mod quantity;
pub mod resources;
pub mod spec;
pub mod state;
pub mod validate;

pub use failure::FailureClass;
pub use gpu::{GpuCatalog, GpuModel};
pub use job::{Attempt, Failover, Job, JobEvent, JobId, TenantId, Transition};
pub use metrics::{JobMetrics, MetricPoint};
pub use quantity::{Bytes, Quantity};
pub use resources::Resources;
pub use spec::{JobSpec, Placement, RuntimeEnv};
pub use state::{JobState, TransitionError};
pub use validate::{validate, FieldError, ValidationContext};
