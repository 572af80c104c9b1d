//! The summary printed at the end of `loadtest run`.

use std::fmt::Write;

use super::{Percentiles, Report, SteeringStats};
use crate::replay::CacheVsOptimum;
use crate::scenario::Pace;
use crate::stop::StopReason;
use crate::units::{human_bits_per_second, human_bytes};

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.2} %", v * 100.0))
}

fn spread(p: &Percentiles) -> String {
    if p.count == 0 {
        return "-".into();
    }
    format!("p50 {:>8.1} ms   p90 {:>8.1} ms   p99 {:>8.1} ms", p.p50, p.p90, p.p99)
}

/// What content steering did, in one line.
pub fn steering(s: &SteeringStats) -> String {
    if !s.enabled {
        return "off".into();
    }
    let c = &s.counts;
    format!(
        "{} viewings steered, {} manifests ({} failed), {} pathway switches, {} failovers, {} new grants",
        c.viewings, c.manifests, c.manifest_errors, c.switches, c.failovers, c.regrants
    )
}

/// Bytes by server, largest first, with their shares.
pub fn servers(r: &Report) -> String {
    let total: u64 = r.servers.values().map(|s| s.bytes).sum();
    let mut by_bytes: Vec<_> = r.servers.iter().collect();
    by_bytes.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    by_bytes
        .iter()
        .map(|(host, s)| {
            let share = if total > 0 { s.bytes as f64 / total as f64 * 100.0 } else { 0.0 };
            format!("{host} {} ({share:.1} %, {} errors)", human_bytes(s.bytes as f64), s.errors)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text.
pub fn render(r: &Report) -> String {
    let mut t = String::new();
    let pace = match r.run.pace {
        Pace::Playback => "playback",
        Pace::Fast => "fast",
    };
    let stopped = match r.run.stopped_by {
        StopReason::Duration => "its duration",
        StopReason::MaxRequests => "its request cap",
        StopReason::Interrupted => "an interrupt",
    };
    let _ = writeln!(
        t,
        "{} against {} over {}, {pace} pace: {:.1} s, stopped by {stopped} (seed {})",
        r.run.scenario, r.run.target, r.run.protocol, r.run.seconds, r.run.seed
    );
    let line = |t: &mut String, k: &str, v: String| {
        let _ = writeln!(t, "  {k:<15}{v}");
    };
    line(&mut t, "requests", format!("{} ({:.1}/s)", r.totals.requests, r.totals.requests_per_second));
    line(
        &mut t,
        "bytes",
        format!("{} ({})", human_bytes(r.totals.bytes as f64), human_bits_per_second(r.totals.bytes_per_second)),
    );
    let errors = r.totals.errors_by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    line(&mut t, "errors", if errors.is_empty() { "0".into() } else { format!("{} ({errors})", r.totals.errors) });
    line(&mut t, "TTFB", spread(&r.latency.ttfb_ms));
    line(&mut t, "segment time", spread(&r.latency.segment_ms));
    line(&mut t, "startup", spread(&r.latency.startup_ms));
    let p = &r.playback;
    line(
        &mut t,
        "rebuffer",
        format!(
            "{} ({} stalls, {:.1} s stalled, {:.1} s played)",
            pct(p.rebuffer_ratio),
            p.stalls,
            p.stalled_seconds,
            p.played_seconds
        ),
    );
    let values = r.cache.values.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    let cache = if values.is_empty() {
        "no x-cache headers".to_owned()
    } else {
        format!("{} of requests, {} of bytes ({values})", pct(r.cache.hit_ratio), pct(r.cache.byte_hit_ratio))
    };
    line(&mut t, "cache hits", cache);
    let rungs = r.rungs.iter().map(|g| format!("{} {:.0} %", g.rung, g.share * 100.0)).collect::<Vec<_>>().join(", ");
    line(&mut t, "rungs", if rungs.is_empty() { "-".into() } else { rungs });
    line(
        &mut t,
        "viewers",
        format!(
            "{} arrived ({} delayed), {} completed, {} abandoned, {} failed, {} seeks, {} switches",
            p.arrivals, p.arrivals_delayed, p.completed, p.abandoned, p.failed, p.seeks, p.switches
        ),
    );
    if let Some(s) = &r.steering {
        line(&mut t, "steering", steering(s));
    }
    if r.servers.len() > 1 {
        line(&mut t, "servers", servers(r));
    }
    if let Some(o) = &r.origin {
        let share = if r.totals.bytes > 0 { o.bytes / r.totals.bytes as f64 * 100.0 } else { 0.0 };
        line(&mut t, "origin egress", format!("{} ({share:.1} % of delivered)", human_bytes(o.bytes)));
    }
    if let Some(u) = &r.uploads {
        line(
            &mut t,
            "uploads",
            format!(
                "{} completed, {} failed, {} cut short, {}",
                u.completed,
                u.failed,
                u.interrupted,
                human_bits_per_second(u.bytes_per_second)
            ),
        );
        line(&mut t, "upload chunk", spread(&u.chunk_ms));
    }
    if let Some(c) = &r.cache_vs_optimum {
        t.push_str(&cache_vs_optimum(c));
    }
    t
}

/// The replay's table: per PoP, the PoP's own answers, then LRU, S3-FIFO and Belady.
pub fn cache_vs_optimum(c: &CacheVsOptimum) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "cache vs optimum, a {} cache ({} bytes):", human_bytes(c.capacity as f64), c.capacity);
    if let Some(disk) = c.disk {
        let _ = writeln!(
            t,
            "  +disk rows: that cache as the memory tier over a {} disk; opening = the first {} segments of a title admitted on their first request",
            human_bytes(disk.bytes as f64),
            disk.opening
        );
    }
    for pop in &c.pops {
        let _ = writeln!(
            t,
            "  {}: {} requests, {} objects, {}",
            pop.pop,
            pop.requests,
            pop.objects,
            human_bytes(pop.bytes as f64)
        );
        let _ = writeln!(t, "    {:<15}{:>12}{:>14}", "policy", "byte hits", "object hits");
        for row in &pop.policies {
            let _ =
                writeln!(t, "    {:<15}{:>12}{:>14}", row.policy, pct(row.byte_hit_ratio), pct(row.object_hit_ratio));
        }
    }
    t
}
