//! A sweep's results: leaderboard, best trial, CSV.

use std::cmp::Ordering;
use std::collections::BTreeSet;

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

impl TrialRow {
    /// The objective when it is a number (not `None`, not NaN).
    pub(crate) fn score(&self) -> Option<f64> {
        self.objective.filter(|v| !v.is_nan())
    }
}

/// Best first in `mode`; rows without an objective (or NaN) after all
/// others; ties by trial index.
fn rank(a: &TrialRow, b: &TrialRow, mode: Mode) -> Ordering {
    let by_objective = match (a.score(), b.score()) {
        (Some(x), Some(y)) => match mode {
            Mode::Max => y.total_cmp(&x),
            Mode::Min => x.total_cmp(&y),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_objective.then(a.trial.cmp(&b.trial))
}

/// The rows sorted best first: by objective in `mode`, rows without one
/// (or with NaN) last; ties by trial index.
pub fn leaderboard(rows: &[TrialRow], mode: Mode) -> Vec<TrialRow> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| rank(a, b, mode));
    sorted
}

/// The best trial with an objective, if any (ties: the lowest index).
pub fn best(rows: &[TrialRow], mode: Mode) -> Option<TrialRow> {
    rows.iter()
        .filter(|row| row.score().is_some())
        .min_by(|a, b| rank(a, b, mode))
        .cloned()
}

/// RFC 4180 CSV: `trial,state,cluster,objective` and one column per
/// parameter name (the union over rows, sorted), in the rows' order; an
/// absent value is an empty field. Lines end in CRLF.
pub fn to_csv(rows: &[TrialRow]) -> String {
    let names: BTreeSet<&str> = rows
        .iter()
        .flat_map(|row| row.params.keys().map(String::as_str))
        .collect();
    let mut out = String::new();
    let header = ["trial", "state", "cluster", "objective"]
        .into_iter()
        .chain(names.iter().copied());
    push_record(&mut out, header.map(str::to_string));
    for row in rows {
        let fixed = [
            row.trial.to_string(),
            row.state.clone(),
            row.cluster.clone().unwrap_or_default(),
            row.objective.map(|v| v.to_string()).unwrap_or_default(),
        ];
        let params = names.iter().map(|name| {
            row.params
                .get(*name)
                .map(ToString::to_string)
                .unwrap_or_default()
        });
        push_record(&mut out, fixed.into_iter().chain(params));
    }
    out
}

fn push_record(out: &mut String, fields: impl Iterator<Item = String>) {
    let quoted: Vec<String> = fields
        .map(|field| {
            if field.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", field.replace('"', "\"\""))
            } else {
                field
            }
        })
        .collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}
