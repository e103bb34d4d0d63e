//! A sweep's results: leaderboard, best trial, CSV.

use serde::{Deserialize, Serialize};

use crate::space::Params;
use crate::suggest::Mode;

/// One trial in a leaderboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRow {
    /// The trial's index in the sweep (0-based).
    pub trial: u32,
    /// Its parameters.
    pub params: Params,
    /// Its objective; `None` when it has none (yet).
    pub objective: Option<f64>,
    /// Its state as the service names it (`running`, `succeeded`,
    /// `stopped_early`, ...).
    pub state: String,
    /// Where it ran, once placed.
    pub cluster: Option<String>,
}

/// The rows sorted best first: by objective in `mode`, rows without one
/// (or with NaN) last; ties by trial index.
pub fn leaderboard(rows: &[TrialRow], mode: Mode) -> Vec<TrialRow> {
    let _ = mode;
    rows.to_vec()
}

/// The best trial with an objective, if any (the first row of the
/// leaderboard when it has an objective).
pub fn best(rows: &[TrialRow], mode: Mode) -> Option<TrialRow> {
    let _ = (rows, mode);
    None
}

/// RFC 4180 CSV: `trial,state,cluster,objective` and one column per
/// parameter name (the union over rows, sorted), in the rows' order.
pub fn to_csv(rows: &[TrialRow]) -> String {
    let _ = rows;
    String::new()
}
