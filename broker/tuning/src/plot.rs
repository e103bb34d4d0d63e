//! The sweep's plot as a self-contained SVG: objective per trial as points
//! and the best objective so far as a step line.

use std::fmt::Write as _;

use crate::results::TrialRow;
use crate::suggest::Mode;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
/// The plotting area inside the margins: left, top, right, bottom.
const AREA: (f64, f64, f64, f64) = (70.0, 50.0, 740.0, 370.0);
const POINT_COLOUR: &str = "#4878d0";
const BEST_COLOUR: &str = "#d65f5f";

/// Objective per trial (points; hollow for trials not `succeeded`) and
/// best-so-far in `mode` (a step line), trial index on x. A complete SVG
/// document with inline styles, to save as e.g. `sweep.svg` and open in a
/// browser; hovering a point shows its trial, objective, state and cluster.
pub fn plot_svg(rows_in_trial_order: &[TrialRow], mode: Mode) -> String {
    let points: Vec<(&TrialRow, f64)> = rows_in_trial_order
        .iter()
        .filter_map(|row| row.score().filter(|v| v.is_finite()).map(|v| (row, v)))
        .collect();
    let direction = match mode {
        Mode::Max => "higher is better",
        Mode::Min => "lower is better",
    };
    let mut svg = format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" "#,
            r#"style="background: white; font: 12px sans-serif">"#,
            "\n<text x=\"{mid}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">",
            "Objective per trial ({direction})</text>\n"
        ),
        w = WIDTH,
        h = HEIGHT,
        mid = WIDTH / 2.0,
        direction = direction,
    );
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no trial has reported an objective yet</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        svg.push_str("</svg>\n");
        return svg;
    }

    let (x_lo, x_hi) = span(points.iter().map(|(row, _)| f64::from(row.trial)));
    let (y_lo, y_hi) = span(points.iter().map(|(_, v)| *v));
    let (left, top, right, bottom) = AREA;
    let x_of = |x: f64| left + (x - x_lo) / (x_hi - x_lo) * (right - left);
    let y_of = |y: f64| bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top);

    draw_axes(&mut svg, (x_lo, x_hi), (y_lo, y_hi), &x_of, &y_of);

    // Best so far: a horizontal run from each improvement to the next.
    let mut path = String::new();
    let mut best: Option<f64> = None;
    for (row, value) in &points {
        let x = x_of(f64::from(row.trial));
        match best {
            None => {
                let _ = write!(path, "M{x:.1},{:.1}", y_of(*value));
                best = Some(*value);
            }
            Some(current) if mode.better(*value, current) => {
                let _ = write!(path, " H{x:.1} V{:.1}", y_of(*value));
                best = Some(*value);
            }
            Some(_) => {}
        }
    }
    let _ = write!(path, " H{right:.1}");
    let _ = writeln!(
        svg,
        r#"<path d="{path}" fill="none" stroke="{BEST_COLOUR}" stroke-width="2"/>"#
    );

    for (row, value) in &points {
        let fill = if row.state == "succeeded" {
            POINT_COLOUR
        } else {
            "white"
        };
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{POINT_COLOUR}" stroke-width="1.5"><title>trial {}: {value} ({}{})</title></circle>"#,
            x_of(f64::from(row.trial)),
            y_of(*value),
            row.trial,
            escape(&row.state),
            row.cluster
                .as_deref()
                .map(|c| format!(", on {}", escape(c)))
                .unwrap_or_default(),
        );
    }
    draw_legend(&mut svg);
    svg.push_str("</svg>\n");
    svg
}

/// The data's range, widened by 5 % each side (and to a unit range when
/// every value is equal).
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// About five round values inside `[lo, hi]`.
fn round_steps(lo: f64, hi: f64) -> Vec<f64> {
    let rough = (hi - lo) / 5.0;
    let power = 10f64.powi(rough.log10().floor() as i32);
    let step = match rough / power {
        r if r < 1.5 => power,
        r if r < 3.5 => 2.0 * power,
        r if r < 7.5 => 5.0 * power,
        _ => 10.0 * power,
    };
    let mut value = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while value <= hi && out.len() < 50 {
        out.push(value);
        value += step;
    }
    out
}

fn draw_axes(
    svg: &mut String,
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
    x_of: &dyn Fn(f64) -> f64,
    y_of: &dyn Fn(f64) -> f64,
) {
    let (left, top, right, bottom) = AREA;
    let y_ticks = round_steps(y_lo, y_hi);
    let decimals = match y_ticks.as_slice() {
        [a, b, ..] => (-(b - a).log10().floor()).clamp(0.0, 12.0) as usize,
        _ => 2,
    };
    for y in y_ticks {
        let py = y_of(y);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 6.0,
            py + 4.0,
            format_tick(y, decimals)
        );
    }
    for x in round_steps(x_lo, x_hi)
        .into_iter()
        .filter(|x| x.fract() == 0.0)
    {
        let px = x_of(x);
        let _ = writeln!(
            svg,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            bottom + 18.0,
            format_tick(x, 0)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        right - left,
        bottom - top
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">trial</text>"#,
        (left + right) / 2.0,
        bottom + 38.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{0}" text-anchor="middle" transform="rotate(-90 18 {0})">objective</text>"#,
        (top + bottom) / 2.0
    );
}

fn draw_legend(svg: &mut String) {
    let (_, _, right, _) = AREA;
    let x = right - 230.0;
    let _ = writeln!(
        svg,
        r#"<circle cx="{x}" cy="36" r="4" fill="{POINT_COLOUR}"/><text x="{}" y="40">trial</text>"#,
        x + 8.0
    );
    let _ = writeln!(
        svg,
        r#"<circle cx="{}" cy="36" r="4" fill="white" stroke="{POINT_COLOUR}"/><text x="{}" y="40">not succeeded</text>"#,
        x + 50.0,
        x + 58.0
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{}" y1="36" x2="{}" y2="36" stroke="{BEST_COLOUR}" stroke-width="2"/><text x="{}" y="40">best so far</text>"#,
        x + 150.0,
        x + 170.0,
        x + 174.0
    );
}

/// `value` with enough decimals to tell ticks apart (`-0` written `0`).
fn format_tick(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        return "0".into();
    }
    text
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            other => other.to_string(),
        })
        .collect()
}
