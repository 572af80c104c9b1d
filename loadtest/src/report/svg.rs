//! Small inline SVG charts for the HTML report, drawn by hand so the report is one file
//! with no script, font or stylesheet from anywhere else.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 44.0;

/// Colours that stay apart for the colour-blind (Okabe–Ito).
pub const PALETTE: [&str; 6] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9"];

/// One line: `(x, y)` points, `None` where there is no value (the line breaks there).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, Option<f64>)>,
}

/// Escapes text for SVG and HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest "nice" number (1, 2 or 5 × 10^k) at or above `v`.
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= v * (1.0 - 1e-12)).unwrap_or(10.0 * magnitude)
}

/// Tick label: no trailing zeros, thousands shortened.
fn tick(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v.abs() >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn frame(out: &mut String, title: &str, y_label: &str, y_max: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" class="chart"><text x="{LEFT}" y="18" class="title">{t}</text>"#,
        t = escape(title)
    );
    let plot_h = HEIGHT - TOP - BOTTOM;
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{label}</text>"#,
            x2 = WIDTH - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            label = tick(v)
        );
    }
    let _ = write!(
        out,
        r#"<text transform="translate(14 {cy}) rotate(-90)" class="axis" text-anchor="middle">{}</text>"#,
        escape(y_label),
        cy = TOP + plot_h / 2.0
    );
}

fn legend(out: &mut String, names: &[&str]) {
    let mut x = WIDTH - RIGHT;
    for (i, name) in names.iter().enumerate().rev() {
        x -= 14.0 + 7.0 * name.chars().count() as f64 + 12.0;
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="10" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="19" class="tick">{n}</text>"#,
            c = PALETTE[i % PALETTE.len()],
            tx = x + 14.0,
            n = escape(name)
        );
    }
}

/// A line chart over x in `[0, x_max]`.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, x_max: f64, series: &[Series]) -> String {
    let y_top = series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)).fold(0.0, f64::max);
    let y_max = nice_ceiling(y_top);
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + plot_w * (x / x_max).clamp(0.0, 1.0);
    let sy = |y: f64| TOP + plot_h - plot_h * (y / y_max).clamp(0.0, 1.0);
    let mut out = String::new();
    frame(&mut out, title, y_label, y_max);
    let step = nice_ceiling(x_max / 6.0);
    for v in (0..).map(|i| f64::from(i) * step).take_while(|v| *v <= x_max * (1.0 + 1e-9)) {
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{l}</text>"#,
            x = sx(v),
            y = HEIGHT - BOTTOM + 16.0,
            l = tick(v)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" class="axis" text-anchor="middle">{l}</text>"#,
        x = LEFT + plot_w / 2.0,
        y = HEIGHT - 6.0,
        l = escape(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let mut d = String::new();
        let mut pen_down = false;
        for &(x, y) in &s.points {
            match y {
                Some(y) => {
                    let _ = write!(d, "{}{:.1} {:.1} ", if pen_down { "L" } else { "M" }, sx(x), sy(y));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                out,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                d.trim_end(),
                PALETTE[i % PALETTE.len()]
            );
        }
    }
    legend(&mut out, &series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>());
    out.push_str("</svg>");
    out
}

/// Grouped bars: for each group label, one bar per series name.
pub fn bar_chart(title: &str, y_label: &str, series_names: &[&str], groups: &[(String, Vec<f64>)]) -> String {
    let y_top = groups.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max);
    let y_max = nice_ceiling(y_top);
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let mut out = String::new();
    frame(&mut out, title, y_label, y_max);
    let group_w = plot_w / groups.len().max(1) as f64;
    let bars = series_names.len().max(1) as f64;
    let bar_w = (group_w * 0.7 / bars).min(48.0);
    for (g, (label, values)) in groups.iter().enumerate() {
        let x0 = LEFT + group_w * g as f64 + (group_w - bar_w * bars) / 2.0;
        for (i, v) in values.iter().enumerate() {
            let h = plot_h * (v / y_max).clamp(0.0, 1.0);
            let x = x0 + bar_w * i as f64;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{t}: {v:.2}</title></rect><text x="{tx:.1}" y="{ty:.1}" class="value" text-anchor="middle">{vl}</text>"#,
                y = TOP + plot_h - h,
                w = bar_w - 2.0,
                c = PALETTE[i % PALETTE.len()],
                t = escape(series_names.get(i).copied().unwrap_or("")),
                tx = x + bar_w / 2.0 - 1.0,
                ty = TOP + plot_h - h - 3.0,
                vl = tick(*v)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{l}</text>"#,
            x = LEFT + group_w * (g as f64 + 0.5),
            y = HEIGHT - BOTTOM + 16.0,
            l = escape(label)
        );
    }
    if series_names.len() > 1 {
        legend(&mut out, series_names);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(0.031), 0.05);
        assert_eq!(nice_ceiling(420.0), 500.0);
    }

    #[test]
    fn lines_break_at_gaps_and_text_is_escaped() {
        let s = Series { name: "a<b".into(), points: vec![(0.0, Some(1.0)), (1.0, None), (2.0, Some(2.0))] };
        let svg = line_chart("t & u", "s", "ms", 2.0, &[s]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("t &amp; u") && svg.contains("a&lt;b"));
        // Two separate moves: the gap lifted the pen.
        let path = svg.split("<path d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert!(!path.contains('L'));
    }

    #[test]
    fn bars_are_scaled_to_the_largest_value() {
        let svg = bar_chart("p", "ms", &["p50", "p99"], &[("ttfb".into(), vec![5.0, 10.0])]);
        assert_eq!(svg.matches("<rect").count(), 2 + 2, "two bars and two legend swatches");
        // 10 is the nice ceiling, so the p99 bar spans the whole plot height.
        assert!(svg.contains(&format!("height=\"{:.1}\"", HEIGHT - TOP - BOTTOM)), "{svg}");
    }
}
