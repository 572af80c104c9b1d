//! Turns a run's raw samples into the report's numbers: percentiles, ratios, the
//! per-bucket timeline. Pure functions, so every figure in a report can be tested.

use std::collections::BTreeMap;

use crate::egress::OriginEgress;
use crate::record::{CacheOutcome, Kind, RequestSample, Samples, SteeringCounts};
use crate::report::{
    CacheStats, KindStats, Latency, Percentiles, Playback, Point, Report, RunInfo, RungShare, SteeringStats, Timeline,
    Totals, UploadStats,
};

/// Most buckets a timeline gets; longer runs get wider buckets.
const MAX_BUCKETS: f64 = 300.0;

/// Nearest-rank percentiles of `values` (seconds), reported in milliseconds.
pub fn percentiles(values: impl IntoIterator<Item = f32>) -> Percentiles {
    let mut v: Vec<f32> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_by(f32::total_cmp);
    let rank = |p: f64| {
        let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        f64::from(v[i]) * 1000.0
    };
    Percentiles { count: v.len() as u64, p50: rank(0.50), p90: rank(0.90), p99: rank(0.99), max: rank(1.0) }
}

/// The report for `samples` of a run described by `run` (whose `seconds` is the wall time);
/// `steering`: whether viewers followed content steering.
pub fn build(
    samples: Samples,
    run: RunInfo,
    origin: Option<OriginEgress>,
    with_uploads: bool,
    steering: bool,
) -> Report {
    let seconds = run.seconds.max(1e-9);
    let requests = &samples.requests;
    let bytes: u64 = requests.iter().map(|r| r.bytes).sum();
    let errors_by_kind = samples.errors.clone();
    let totals = Totals {
        requests: requests.len() as u64,
        bytes,
        requests_per_second: requests.len() as f64 / seconds,
        bytes_per_second: bytes as f64 / seconds,
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
    };
    let latency = Latency {
        ttfb_ms: percentiles(requests.iter().filter(|r| r.ok).map(|r| r.ttfb)),
        segment_ms: percentiles(requests.iter().filter(|r| r.ok && r.kind == Kind::Segment).map(|r| r.total)),
        startup_ms: percentiles(samples.sessions.iter().filter_map(|s| s.startup)),
        seek_ms: percentiles(samples.sessions.iter().flat_map(|s| s.seek_waits.iter().copied())),
    };
    let uploads = with_uploads.then(|| uploads(&samples, seconds));
    let c = samples.steering;
    let steering =
        (!steering || c != SteeringCounts::default()).then_some(SteeringStats { enabled: steering, counts: c });
    let servers = samples
        .servers
        .iter()
        .map(|(host, c)| (host.clone(), KindStats { requests: c.requests, bytes: c.bytes, errors: c.errors }))
        .collect();
    Report {
        playback: playback(&samples),
        cache: cache(requests, samples.cache_values.clone()),
        rungs: rungs(&samples.rungs),
        by_kind: by_kind(requests),
        servers,
        steering,
        timeline: timeline(requests, run.seconds),
        run,
        totals,
        latency,
        origin,
        uploads,
        cache_vs_optimum: None,
    }
}

fn playback(s: &Samples) -> Playback {
    let paced: Vec<_> = s.sessions.iter().filter(|x| x.paced).collect();
    let played: f64 = paced.iter().map(|x| f64::from(x.played)).sum();
    let stalled: f64 = paced.iter().map(|x| f64::from(x.stalled)).sum();
    Playback {
        arrivals: s.arrivals,
        arrivals_delayed: s.arrivals_delayed,
        sessions: s.sessions.len() as u64,
        completed: s.sessions.iter().filter(|x| x.completed && !x.abandoned).count() as u64,
        abandoned: s.sessions.iter().filter(|x| x.abandoned && x.completed).count() as u64,
        failed: s.sessions.iter().filter(|x| x.failed.is_some()).count() as u64,
        seeks: s.sessions.iter().map(|x| u64::from(x.seeks)).sum(),
        switches: s.sessions.iter().map(|x| u64::from(x.switches)).sum(),
        stalls: paced.iter().map(|x| u64::from(x.stalls)).sum(),
        played_seconds: played,
        stalled_seconds: stalled,
        rebuffer_ratio: (played + stalled > 0.0).then(|| stalled / (played + stalled)),
    }
}

fn cache(requests: &[RequestSample], values: BTreeMap<String, u64>) -> CacheStats {
    let count = |o: CacheOutcome| requests.iter().filter(|r| r.cache == o).count() as u64;
    let (hits, stale, misses) = (count(CacheOutcome::Hit), count(CacheOutcome::Stale), count(CacheOutcome::Miss));
    let judged = hits + stale + misses;
    let bytes_of = |f: fn(CacheOutcome) -> bool| requests.iter().filter(|r| f(r.cache)).map(|r| r.bytes).sum::<u64>();
    let cached_bytes = bytes_of(CacheOutcome::from_cache);
    let judged_bytes = bytes_of(|c| c.from_cache() || c == CacheOutcome::Miss);
    CacheStats {
        values,
        hits,
        stale,
        misses,
        other: count(CacheOutcome::Other),
        absent: count(CacheOutcome::Absent),
        hit_ratio: (judged > 0).then(|| (hits + stale) as f64 / judged as f64),
        byte_hit_ratio: (judged_bytes > 0).then(|| cached_bytes as f64 / judged_bytes as f64),
    }
}

fn rungs(rungs: &BTreeMap<String, (u64, u64)>) -> Vec<RungShare> {
    let total: u64 = rungs.values().map(|(n, _)| n).sum();
    let mut out: Vec<RungShare> = rungs
        .iter()
        .map(|(rung, (segments, bytes))| RungShare {
            rung: rung.clone(),
            segments: *segments,
            bytes: *bytes,
            share: if total > 0 { *segments as f64 / total as f64 } else { 0.0 },
        })
        .collect();
    // By the number in the label (240p before 1080p), not alphabetically.
    let number = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u64>().unwrap_or(0);
    out.sort_by_key(|r| (number(&r.rung), r.rung.clone()));
    out
}

fn by_kind(requests: &[RequestSample]) -> BTreeMap<String, KindStats> {
    let mut out: BTreeMap<String, KindStats> = BTreeMap::new();
    for r in requests {
        let k = out.entry(r.kind.as_str().to_owned()).or_default();
        k.requests += 1;
        k.bytes += r.bytes;
        k.errors += u64::from(!r.ok);
    }
    out
}

fn timeline(requests: &[RequestSample], seconds: f64) -> Timeline {
    let width = (seconds / MAX_BUCKETS).ceil().max(1.0);
    let n = ((seconds / width).ceil() as usize).max(1);
    let mut buckets: Vec<Vec<&RequestSample>> = vec![Vec::new(); n];
    for r in requests {
        let i = ((f64::from(r.at) / width) as usize).min(n - 1);
        buckets[i].push(r);
    }
    let points = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let ttfb = percentiles(b.iter().filter(|r| r.ok).map(|r| r.ttfb));
            let segment = percentiles(b.iter().filter(|r| r.ok && r.kind == Kind::Segment).map(|r| r.total));
            let some = |p: &Percentiles, v: f64| (p.count > 0).then_some(v);
            Point {
                t: i as f64 * width,
                requests: b.len() as u64,
                bytes: b.iter().map(|r| r.bytes).sum(),
                errors: b.iter().filter(|r| !r.ok).count() as u64,
                ttfb_p50_ms: some(&ttfb, ttfb.p50),
                ttfb_p99_ms: some(&ttfb, ttfb.p99),
                segment_p50_ms: some(&segment, segment.p50),
            }
        })
        .collect();
    Timeline { bucket_seconds: width, points }
}

fn uploads(s: &Samples, seconds: f64) -> UploadStats {
    let done: Vec<_> = s.uploads.iter().filter(|u| u.failed.is_none()).collect();
    let bytes: u64 = done.iter().map(|u| u.bytes).sum();
    UploadStats {
        completed: done.len() as u64,
        failed: s.uploads.iter().filter(|u| u.failed.as_deref().is_some_and(|k| k != "interrupted")).count() as u64,
        interrupted: s.uploads.iter().filter(|u| u.failed.as_deref() == Some("interrupted")).count() as u64,
        bytes,
        bytes_per_second: bytes as f64 / seconds,
        chunk_ms: percentiles(s.upload_chunks.iter().copied()),
        upload_ms: percentiles(done.iter().map(|u| u.seconds)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Protocol;
    use crate::record::{ServerCounts, SessionSample};
    use crate::scenario::Pace;
    use crate::stop::StopReason;

    fn sample(at: f32, kind: Kind, total: f32, bytes: u64, cache: CacheOutcome, ok: bool) -> RequestSample {
        RequestSample { at, kind, ttfb: total / 2.0, total, bytes, cache, ok }
    }

    fn info(seconds: f64) -> RunInfo {
        RunInfo {
            scenario: "t".into(),
            description: String::new(),
            target: "http://pop".into(),
            protocol: Protocol::H1,
            pace: Pace::Playback,
            viewers: 1,
            arrival_rate: None,
            seed: 1,
            catalogue_titles: 1,
            started_unix: 0,
            planned_seconds: seconds,
            seconds,
            max_requests: None,
            stopped_by: StopReason::Duration,
            version: "test".into(),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(|i| i as f32 / 1000.0));
        assert_eq!(p.count, 100);
        assert!((p.p50 - 50.0).abs() < 1e-3 && (p.p90 - 90.0).abs() < 1e-3 && (p.p99 - 99.0).abs() < 1e-3);
        assert!((p.max - 100.0).abs() < 1e-3);
        let one = percentiles([0.25]);
        assert!((one.p50 - 250.0).abs() < 1e-3 && (one.p99 - 250.0).abs() < 1e-3);
        assert_eq!(percentiles([]).count, 0);
    }

    #[test]
    fn ratios_rates_and_timeline() {
        let mut s = Samples {
            requests: vec![
                sample(0.5, Kind::Master, 0.010, 100, CacheOutcome::Miss, true),
                sample(0.6, Kind::Segment, 0.100, 9000, CacheOutcome::Hit, true),
                sample(1.5, Kind::Segment, 0.300, 1000, CacheOutcome::Miss, true),
                sample(1.7, Kind::Segment, 0.200, 0, CacheOutcome::Stale, true),
                sample(3.2, Kind::Key, 1.0, 0, CacheOutcome::Absent, false),
            ],
            ..Samples::default()
        };
        s.errors.insert("timeout".into(), 1);
        s.rungs.insert("1080p".into(), (1, 9000));
        s.rungs.insert("240p".into(), (3, 1000));
        s.sessions = vec![
            SessionSample {
                startup: Some(0.2),
                played: 9.0,
                stalled: 1.0,
                paced: true,
                completed: true,
                ..Default::default()
            },
            SessionSample { startup: Some(0.4), played: 10.0, stalled: 0.0, paced: true, ..Default::default() },
            SessionSample {
                played: 100.0,
                stalled: 50.0,
                paced: false,
                failed: Some("x".into()),
                ..Default::default()
            },
        ];
        s.servers.insert("pop-a".into(), ServerCounts { requests: 4, bytes: 10_100, errors: 1 });
        s.steering = SteeringCounts { viewings: 2, failovers: 3, ..SteeringCounts::default() };
        let r = build(s, info(4.0), None, false, true);
        assert_eq!(r.totals.requests, 5);
        assert_eq!(r.totals.bytes, 10_100);
        assert!((r.totals.requests_per_second - 1.25).abs() < 1e-9);
        assert_eq!(r.totals.errors, 1);
        // Hit + stale over hit + stale + miss; the request without a header does not count.
        assert!((r.cache.hit_ratio.unwrap() - 0.5).abs() < 1e-9);
        assert!((r.cache.byte_hit_ratio.unwrap() - 9000.0 / 10_100.0).abs() < 1e-9);
        assert_eq!(r.cache.absent, 1);
        // Only paced sessions: 1 stalled of 20 seconds.
        assert!((r.playback.rebuffer_ratio.unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(r.playback.failed, 1);
        assert_eq!(r.latency.startup_ms.count, 2);
        assert_eq!(r.latency.segment_ms.count, 3);
        assert_eq!(r.rungs[0].rung, "240p");
        assert!((r.rungs[0].share - 0.75).abs() < 1e-9);
        assert_eq!(r.timeline.points.len(), 4);
        assert_eq!(r.timeline.points.iter().map(|p| p.requests).collect::<Vec<_>>(), vec![2, 2, 0, 1]);
        assert_eq!(r.timeline.points[2].ttfb_p50_ms, None);
        assert_eq!(r.timeline.points[3].errors, 1);
        assert_eq!(r.by_kind["segment"].requests, 3);
        assert!(r.uploads.is_none());
        assert_eq!(r.servers["pop-a"].bytes, 10_100);
        let steering = r.steering.unwrap();
        assert!(steering.enabled);
        assert_eq!((steering.counts.viewings, steering.counts.failovers), (2, 3));
    }

    #[test]
    fn steering_is_reported_when_used_or_switched_off() {
        let steered = |viewings| Samples {
            steering: SteeringCounts { viewings, ..SteeringCounts::default() },
            ..Samples::default()
        };
        assert_eq!(build(steered(0), info(1.0), None, false, true).steering, None, "on, but no tag seen");
        let off = build(steered(0), info(1.0), None, false, false).steering.unwrap();
        assert!(!off.enabled);
        assert_eq!(build(steered(3), info(1.0), None, false, true).steering.unwrap().counts.viewings, 3);
    }
}
