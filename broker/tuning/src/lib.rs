//! Hyperparameter sweeps as pure functions: no async, no IO, no clock.
//!
//! The sweep controller in the service gathers the inputs (the sweep spec,
//! the trials recorded so far, the metrics they reported), calls these
//! functions and acts on their answers. Every function is deterministic in
//! its inputs, so after a crash the controller recomputes the same
//! suggestions and decisions from what it persisted.
//!
//! - [`space`]: the search space ([`SearchSpace`], [`Param`]) and parameter
//!   values ([`ParamValue`], [`Params`]).
//! - [`suggest()`]: the next trial's parameters for [`Algorithm::Grid`],
//!   [`Algorithm::Random`] or [`Algorithm::Tpe`]; [`grid_size`],
//!   [`trial_seed`].
//! - [`asha`]: asynchronous successive halving ([`Asha::decide`]).
//! - [`render`]: parameters into an entrypoint, Hydra overrides, env vars.
//! - [`results`]: leaderboard, best trial, CSV, SVG plot.
//! - [`isaaclab`]: Isaac Lab's cluster list into `(name, address)` pairs.

pub mod asha;
pub mod isaaclab;
mod parzen;
mod plot;
pub mod render;
pub mod results;
mod rng;
pub mod space;
mod suggest;
mod tpe;

pub use asha::{Asha, AshaDecision, AshaError, TrialProgress};
pub use isaaclab::{parse_isaaclab_clusters, ImportError};
pub use plot::plot_svg;
pub use render::{
    env_var_name, env_vars, hydra_overrides, render_entrypoint, shell_join, shell_quote,
    RenderError,
};
pub use results::{best, leaderboard, to_csv, TrialRow};
pub use space::{Param, ParamValue, Params, SearchSpace, SpaceError};
pub use suggest::{grid_size, suggest, trial_seed, Algorithm, Mode, Observation};
pub use tpe::{suggest_tpe, TpeSettings};
