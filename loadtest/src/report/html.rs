//! `report.html`: one self-contained page (inline CSS and SVG, no script) an operator can
//! attach to a ticket or open from a CI artifact.

use std::fmt::Write;

use super::svg::{self, Series, escape};
use super::{Percentiles, Report};
use crate::replay::CacheVsOptimum;
use crate::units::{human_bits_per_second, human_bytes};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:760px;color:#1b1b1b}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}.sub{color:#555;margin:0 0 16px}\
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}.card{border:1px solid #ddd;border-radius:6px;padding:8px}\
.card b{display:block;font-size:18px}.card span{color:#555;font-size:12px}\
table{border-collapse:collapse;width:100%;margin:4px 0}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.chart{width:100%;height:auto;margin:8px 0}.chart .title{font-weight:600;font-size:13px}\
.chart .tick,.chart .value{font-size:11px;fill:#444}.chart .axis{font-size:11px;fill:#444}.chart .grid{stroke:#e6e6e6}";

/// Renders the page.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Load test: {}</title><style>{STYLE}</style></head><body>",
        escape(&r.run.scenario)
    );
    let _ = write!(
        h,
        "<h1>Load test: {}</h1><p class=\"sub\">{} · {} over {} · {} pace · {:.1} s (stopped by {}) · {} viewers at most · catalogue of {} · seed {}</p>",
        escape(&r.run.scenario),
        escape(&r.run.description),
        escape(&r.run.target),
        r.run.protocol,
        match r.run.pace {
            crate::scenario::Pace::Playback => "playback",
            crate::scenario::Pace::Fast => "fast",
        },
        r.run.seconds,
        stop_name(r),
        r.run.viewers,
        r.run.catalogue_titles,
        r.run.seed
    );
    cards(&mut h, r);
    charts(&mut h, r);
    tables(&mut h, r);
    if let Some(c) = &r.cache_vs_optimum {
        cache_vs_optimum(&mut h, c);
    }
    h.push_str("</body></html>\n");
    h
}

fn stop_name(r: &Report) -> &'static str {
    match r.run.stopped_by {
        crate::stop::StopReason::Duration => "its duration",
        crate::stop::StopReason::MaxRequests => "its request cap",
        crate::stop::StopReason::Interrupted => "an interrupt",
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{:.1} %", v * 100.0))
}

fn ms(p: &Percentiles, v: f64) -> String {
    if p.count == 0 { "—".into() } else { format!("{v:.1} ms") }
}

fn cards(h: &mut String, r: &Report) {
    let card = |h: &mut String, value: String, label: &str| {
        let _ = write!(h, "<div class=\"card\"><b>{}</b><span>{}</span></div>", escape(&value), escape(label));
    };
    h.push_str("<div class=\"cards\">");
    card(h, format!("{:.1}/s", r.totals.requests_per_second), "requests");
    card(h, human_bits_per_second(r.totals.bytes_per_second), "throughput");
    card(h, pct(r.cache.hit_ratio), "cache hit ratio");
    card(h, r.totals.errors.to_string(), "errors");
    card(h, ms(&r.latency.ttfb_ms, r.latency.ttfb_ms.p50), "TTFB p50");
    card(h, ms(&r.latency.segment_ms, r.latency.segment_ms.p90), "segment time p90");
    card(h, ms(&r.latency.startup_ms, r.latency.startup_ms.p50), "startup p50");
    card(h, pct(r.playback.rebuffer_ratio), "rebuffer ratio");
    h.push_str("</div>");
}

fn charts(h: &mut String, r: &Report) {
    let points = &r.timeline.points;
    let width = r.timeline.bucket_seconds;
    let x_max = points.len() as f64 * width;
    let mid = |t: f64| t + width / 2.0;
    h.push_str("<h2>Over time</h2>");
    let throughput = Series {
        name: "Mbit/s".into(),
        points: points.iter().map(|p| (mid(p.t), Some(p.bytes as f64 * 8.0 / width / 1e6))).collect(),
    };
    h.push_str(&svg::line_chart("Throughput", "seconds", "Mbit/s", x_max, &[throughput]));
    let rps = Series {
        name: "requests/s".into(),
        points: points.iter().map(|p| (mid(p.t), Some(p.requests as f64 / width))).collect(),
    };
    let eps = Series {
        name: "errors/s".into(),
        points: points.iter().map(|p| (mid(p.t), Some(p.errors as f64 / width))).collect(),
    };
    h.push_str(&svg::line_chart("Requests", "seconds", "per second", x_max, &[rps, eps]));
    let latency = [
        ("TTFB p50", points.iter().map(|p| (mid(p.t), p.ttfb_p50_ms)).collect()),
        ("TTFB p99", points.iter().map(|p| (mid(p.t), p.ttfb_p99_ms)).collect()),
        ("segment p50", points.iter().map(|p| (mid(p.t), p.segment_p50_ms)).collect()),
    ]
    .map(|(name, points)| Series { name: name.into(), points });
    h.push_str(&svg::line_chart("Latency", "seconds", "ms", x_max, &latency));

    h.push_str("<h2>Distributions</h2>");
    let l = &r.latency;
    let groups: Vec<(String, Vec<f64>)> =
        [("TTFB", &l.ttfb_ms), ("segment time", &l.segment_ms), ("startup", &l.startup_ms), ("seek", &l.seek_ms)]
            .iter()
            .filter(|(_, p)| p.count > 0)
            .map(|(name, p)| ((*name).to_owned(), vec![p.p50, p.p90, p.p99]))
            .collect();
    if !groups.is_empty() {
        h.push_str(&svg::bar_chart("Latency percentiles", "ms", &["p50", "p90", "p99"], &groups));
    }
    if !r.rungs.is_empty() {
        let groups: Vec<(String, Vec<f64>)> = r.rungs.iter().map(|g| (g.rung.clone(), vec![g.share * 100.0])).collect();
        h.push_str(&svg::bar_chart("Rung distribution (video segments)", "% of segments", &["share"], &groups));
    }
}

fn tables(h: &mut String, r: &Report) {
    h.push_str("<h2>Numbers</h2><table>");
    let row = |h: &mut String, k: &str, v: String| {
        let _ = write!(h, "<tr><th>{}</th><td class=\"n\">{}</td></tr>", escape(k), escape(&v));
    };
    row(h, "requests", format!("{} ({:.1}/s)", r.totals.requests, r.totals.requests_per_second));
    row(
        h,
        "bytes",
        format!("{} ({})", human_bytes(r.totals.bytes as f64), human_bits_per_second(r.totals.bytes_per_second)),
    );
    for (name, p) in [
        ("TTFB", &r.latency.ttfb_ms),
        ("segment time", &r.latency.segment_ms),
        ("startup", &r.latency.startup_ms),
        ("seek", &r.latency.seek_ms),
    ] {
        row(h, name, format!("p50 {} · p90 {} · p99 {}", ms(p, p.p50), ms(p, p.p90), ms(p, p.p99)));
    }
    let p = &r.playback;
    row(
        h,
        "rebuffer ratio",
        format!(
            "{} ({} stalls, {:.1} s of {:.1} s)",
            pct(p.rebuffer_ratio),
            p.stalls,
            p.stalled_seconds,
            p.played_seconds + p.stalled_seconds
        ),
    );
    row(
        h,
        "viewers",
        format!(
            "{} arrived ({} delayed), {} viewings, {} completed, {} abandoned, {} failed",
            p.arrivals, p.arrivals_delayed, p.sessions, p.completed, p.abandoned, p.failed
        ),
    );
    row(h, "seeks, rung switches", format!("{}, {}", p.seeks, p.switches));
    row(
        h,
        "cache hit ratio",
        format!("{} of requests, {} of bytes", pct(r.cache.hit_ratio), pct(r.cache.byte_hit_ratio)),
    );
    if let Some(s) = &r.steering {
        row(h, "content steering", super::table::steering(s));
    }
    if r.servers.len() > 1 {
        row(h, "bytes by server", super::table::servers(r));
    }
    if let Some(o) = &r.origin {
        let share = if r.totals.bytes > 0 {
            format!(" ({:.1} % of delivered)", o.bytes / r.totals.bytes as f64 * 100.0)
        } else {
            String::new()
        };
        row(h, "origin egress", format!("{}{share} from {}", human_bytes(o.bytes), o.metric));
    }
    if let Some(u) = &r.uploads {
        row(
            h,
            "uploads",
            format!(
                "{} completed, {} failed, {} cut short; {}",
                u.completed,
                u.failed,
                u.interrupted,
                human_bits_per_second(u.bytes_per_second)
            ),
        );
        row(
            h,
            "upload chunk time",
            format!(
                "p50 {} · p90 {} · p99 {}",
                ms(&u.chunk_ms, u.chunk_ms.p50),
                ms(&u.chunk_ms, u.chunk_ms.p90),
                ms(&u.chunk_ms, u.chunk_ms.p99)
            ),
        );
    }
    h.push_str("</table>");

    let counts = |h: &mut String, title: &str, rows: Vec<(String, String)>| {
        if rows.is_empty() {
            return;
        }
        let _ = write!(h, "<h2>{}</h2><table>", escape(title));
        for (k, v) in rows {
            let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{}</td></tr>", escape(&k), escape(&v));
        }
        h.push_str("</table>");
    };
    counts(h, "Errors by kind", r.totals.errors_by_kind.iter().map(|(k, v)| (k.clone(), v.to_string())).collect());
    counts(h, "x-cache values", r.cache.values.iter().map(|(k, v)| (k.clone(), v.to_string())).collect());
    counts(
        h,
        "Requests by kind",
        r.by_kind
            .iter()
            .map(|(k, s)| {
                (k.clone(), format!("{} · {} · {} errors", s.requests, human_bytes(s.bytes as f64), s.errors))
            })
            .collect(),
    );
    counts(
        h,
        "Rungs",
        r.rungs
            .iter()
            .map(|g| {
                (
                    g.rung.clone(),
                    format!("{} segments · {} · {:.1} %", g.segments, human_bytes(g.bytes as f64), g.share * 100.0),
                )
            })
            .collect(),
    );
}

/// The run's trace replayed: per PoP, what it served from cache beside LRU, S3-FIFO and
/// Belady with the same capacity, as bars and as a table.
fn cache_vs_optimum(h: &mut String, c: &CacheVsOptimum) {
    let _ = write!(
        h,
        "<h2>Cache vs optimum</h2><p class=\"sub\">The run's requests replayed with a {} cache. \
         Belady knows the future (farthest next use): about the best any cache of this size could do.</p>",
        escape(&human_bytes(c.capacity as f64))
    );
    for pop in &c.pops {
        // A row without figures (a PoP that sent no `x-cache`) is no bar at zero.
        let groups: Vec<(String, Vec<f64>)> = pop
            .policies
            .iter()
            .filter_map(|p| Some((p.policy.clone(), vec![p.byte_hit_ratio? * 100.0, p.object_hit_ratio? * 100.0])))
            .collect();
        let title = format!("{}: hit ratios", pop.pop);
        h.push_str(&svg::bar_chart(&title, "%", &["bytes", "requests"], &groups));
        let _ = write!(
            h,
            "<table><tr><th>{} · {} requests · {} objects · {}</th><th class=\"n\">byte hit ratio</th><th class=\"n\">object hit ratio</th></tr>",
            escape(&pop.pop),
            pop.requests,
            pop.objects,
            escape(&human_bytes(pop.bytes as f64))
        );
        for p in &pop.policies {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&p.policy),
                escape(&pct(p.byte_hit_ratio)),
                escape(&pct(p.object_hit_ratio))
            );
        }
        h.push_str("</table>");
    }
}
