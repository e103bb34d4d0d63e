//! Line charts as hand-written SVG: a grid of panels sharing one legend.

use std::fmt::Write as _;

/// One line.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text; also picks the colour.
    pub name: String,
    /// `(x, y)` in data units.
    pub points: Vec<(f64, f64)>,
}

/// One chart.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Above the chart.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed y range; `None` fits the data (from 0).
    pub y_range: Option<(f64, f64)>,
    /// Draws y = x, dashed (the fill protocol's "everything placed" line).
    pub diagonal: bool,
}

const PANEL_W: f64 = 480.0;
const PANEL_H: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
const LEGEND_H: f64 = 56.0;

/// The colour of a policy's line, the same in every figure.
pub fn colour(name: &str) -> &'static str {
    match name {
        "round-robin" => "#d62728",
        "first-fit" => "#ff7f0e",
        "best-fit" => "#1f77b4",
        "raybroker" => "#2ca02c",
        _ => "#7f7f7f",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Tick positions at a 1, 2 or 5 x 10^k step, four to seven over `[lo, hi]`.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let range = hi - lo;
    if !(range.is_finite() && range > 0.0) {
        return vec![lo];
    }
    let raw = range / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn label(value: f64) -> String {
    if value.abs() >= 1000.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A figure: `title`, a legend of every series name, then the panels in
/// rows of `columns`.
pub fn figure(title: &str, panels: &[Panel], columns: usize) -> String {
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    let width = PANEL_W * columns as f64;
    let height = LEGEND_H + PANEL_H * rows as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="20" font-size="15" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    let mut names: Vec<&str> = Vec::new();
    for series in panels.iter().flat_map(|p| &p.series) {
        if !names.contains(&series.name.as_str()) {
            names.push(&series.name);
        }
    }
    let spacing = ((width - 16.0) / names.len().max(1) as f64).min(130.0);
    for (i, name) in names.iter().enumerate() {
        let x = 16.0 + spacing * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="40" x2="{}" y2="40" stroke="{}" stroke-width="3"/><text x="{}" y="44">{}</text>"#,
            x + 24.0,
            colour(name),
            x + 30.0,
            escape(name)
        );
    }
    for (i, panel) in panels.iter().enumerate() {
        let x0 = PANEL_W * (i % columns) as f64;
        let y0 = LEGEND_H + PANEL_H * (i / columns) as f64;
        draw_panel(&mut out, panel, x0, y0);
    }
    out.push_str("</svg>\n");
    out
}

fn draw_panel(out: &mut String, panel: &Panel, x0: f64, y0: f64) {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let x_hi = points().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let (y_lo, y_hi) = panel.y_range.unwrap_or_else(|| {
        (
            0.0,
            points().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.05,
        )
    });
    let (plot_w, plot_h) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let sx = |x: f64| x0 + LEFT + x / x_hi * plot_w;
    let sy = |y: f64| y0 + TOP + plot_h - (y.clamp(y_lo, y_hi) - y_lo) / (y_hi - y_lo) * plot_h;
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
        x0 + LEFT + plot_w / 2.0,
        y0 + 18.0,
        escape(&panel.title)
    );
    for tick in ticks(y_lo, y_hi) {
        let y = sy(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#e0e0e0"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            sx(0.0),
            sx(x_hi),
            sx(0.0) - 4.0,
            y + 4.0,
            label(tick)
        );
    }
    for tick in ticks(0.0, x_hi) {
        let x = sx(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#e0e0e0"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
            sy(y_lo),
            sy(y_hi),
            sy(y_lo) + 14.0,
            label(tick)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#555"/>"##,
        sx(0.0),
        sy(y_hi)
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x0 + LEFT + plot_w / 2.0,
        y0 + PANEL_H - 10.0,
        escape(&panel.x_label)
    );
    let (lx, ly) = (x0 + 14.0, y0 + TOP + plot_h / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text>"#,
        escape(&panel.y_label)
    );
    if panel.diagonal {
        let end = x_hi.min(y_hi);
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>"##,
            sx(0.0),
            sy(0.0),
            sx(end),
            sy(end)
        );
    }
    for series in &panel.series {
        let path: Vec<String> = series
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.6" stroke-opacity="0.85" points="{}"/>"#,
            colour(&series.name),
            path.join(" ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers() {
        let tenths: Vec<i64> = ticks(0.0, 1.0)
            .iter()
            .map(|t| (t * 10.0).round() as i64)
            .collect();
        assert_eq!(tenths, [0, 2, 4, 6, 8, 10]);
        assert_eq!(ticks(0.0, 27.0), vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0]);
        assert_eq!(ticks(3.0, 3.0), vec![3.0]);
    }

    #[test]
    fn figure_has_a_line_per_series_and_a_shared_legend() {
        let series = |name: &str| Series {
            name: name.into(),
            points: vec![(0.0, 0.0), (1.0, 0.5), (2.0, 1.0)],
        };
        let panel = |title: &str| Panel {
            title: title.into(),
            x_label: "hours".into(),
            y_label: "GPU allocation".into(),
            series: vec![series("raybroker"), series("round-robin")],
            y_range: Some((0.0, 1.0)),
            diagonal: true,
        };
        let svg = figure("load <1.0>", &[panel("a"), panel("b")], 2);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(
            svg.matches(">raybroker</text>").count(),
            1,
            "one legend entry"
        );
        assert!(svg.contains("load &lt;1.0&gt;"));
        assert!(svg.contains(colour("raybroker")) && svg.contains(colour("round-robin")));
    }
}
