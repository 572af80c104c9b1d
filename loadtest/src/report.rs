//! The report: what a run measured, in one serialisable value. `json` writes and reads
//! `report.json` (the cost mode starts from it), `html` renders a self-contained
//! `report.html` with inline SVG charts (`svg`), `table` prints the terminal summary.

pub mod html;
pub mod json;
pub mod svg;
pub mod table;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::client::Protocol;
use crate::egress::OriginEgress;
use crate::error::{Error, Result};
use crate::replay::CacheVsOptimum;
use crate::scenario::Pace;
use crate::stop::StopReason;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What was run.
    pub run: RunInfo,
    /// Requests, bytes and errors.
    pub totals: Totals,
    /// Latency percentiles, milliseconds.
    pub latency: Latency,
    /// Viewing quality.
    pub playback: Playback,
    /// The edge's `x-cache` verdicts.
    pub cache: CacheStats,
    /// Video segments by rung.
    pub rungs: Vec<RungShare>,
    /// Requests by what they were for.
    pub by_kind: BTreeMap<String, KindStats>,
    /// Requests by the server (`host[:port]`) they were sent to: with steering, which PoP
    /// served how much.
    #[serde(default)]
    pub servers: BTreeMap<String, KindStats>,
    /// Content steering: `None` when it was on and no playlist asked for it.
    #[serde(default)]
    pub steering: Option<SteeringStats>,
    /// Per time bucket.
    pub timeline: Timeline,
    /// Origin egress over the run, when `--origin-metrics` was given.
    pub origin: Option<OriginEgress>,
    /// The upload storm, when there was one.
    pub uploads: Option<UploadStats>,
    /// The PoP's cache against LRU, S3-FIFO and Belady replaying the run's own trace, when
    /// the run had `--trace` and `--replay-cache`.
    #[serde(default)]
    pub cache_vs_optimum: Option<CacheVsOptimum>,
}

/// What was run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// The PoP.
    pub target: String,
    /// HTTP version.
    pub protocol: Protocol,
    /// Playback or fast.
    pub pace: Pace,
    /// Concurrent viewers at most.
    pub viewers: usize,
    /// Arrivals per second outside a burst when the run ended (`None`: as fast as viewers
    /// free up). Unless the scenario fixes it, it follows the population target.
    pub arrival_rate: Option<f64>,
    /// Seed of every random draw.
    pub seed: u64,
    /// Titles in the catalogue.
    pub catalogue_titles: usize,
    /// Start, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Planned wall time, seconds.
    pub planned_seconds: f64,
    /// Measured wall time, seconds.
    pub seconds: f64,
    /// Request cap.
    pub max_requests: Option<u64>,
    /// What ended the run.
    pub stopped_by: StopReason,
    /// Harness version.
    pub version: String,
}

/// Totals over the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Totals {
    /// Requests completed, with or without error.
    pub requests: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// `requests / seconds`.
    pub requests_per_second: f64,
    /// `bytes / seconds`.
    pub bytes_per_second: f64,
    /// All errors.
    pub errors: u64,
    /// Errors by kind (`timeout`, `connect`, `tls`, `http_404`, `playlist`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
}

/// p50/p90/p99 of some latency, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The latency distributions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Time to the response head, every successful request.
    pub ttfb_ms: Percentiles,
    /// Time to the last byte of video segments.
    pub segment_ms: Percentiles,
    /// Master request → first segment complete.
    pub startup_ms: Percentiles,
    /// Seek → first segment after it complete.
    pub seek_ms: Percentiles,
}

/// Viewing quality.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Playback {
    /// Viewers who arrived.
    pub arrivals: u64,
    /// Arrivals that waited for a free viewer slot.
    pub arrivals_delayed: u64,
    /// Viewings recorded.
    pub sessions: u64,
    /// Watched what they meant to (abandoners not included).
    pub completed: u64,
    /// Left early, as planned.
    pub abandoned: u64,
    /// Ended by an error.
    pub failed: u64,
    /// Seeks.
    pub seeks: u64,
    /// Rung changes.
    pub switches: u64,
    /// Stalls (playback pace).
    pub stalls: u64,
    /// Seconds played (playback pace).
    pub played_seconds: f64,
    /// Seconds stalled (playback pace).
    pub stalled_seconds: f64,
    /// Stalled / (stalled + played); `None` in fast pace, where there is no playhead.
    pub rebuffer_ratio: Option<f64>,
}

/// The `x-cache` verdicts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheStats {
    /// Each value as received, counted.
    pub values: BTreeMap<String, u64>,
    /// `hit*`.
    pub hits: u64,
    /// `stale`.
    pub stale: u64,
    /// `miss`.
    pub misses: u64,
    /// Any other value.
    pub other: u64,
    /// Responses without the header.
    pub absent: u64,
    /// (hits + stale) / (hits + stale + misses); `None` without any verdict.
    pub hit_ratio: Option<f64>,
    /// The same, weighted by bytes: the share of bytes the origin did not have to send.
    pub byte_hit_ratio: Option<f64>,
}

/// What content steering did over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringStats {
    /// Whether viewers followed it (off: `--no-steering`, `[steering] enabled = false`, or
    /// HTTP/3).
    pub enabled: bool,
    /// The run's counts, as the record keeps them.
    #[serde(flatten)]
    pub counts: crate::record::SteeringCounts,
}

/// One rung's share of video segments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RungShare {
    /// `720p`, or a bandwidth.
    pub rung: String,
    /// Segments fetched.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Fraction of all video segments.
    pub share: f64,
}

/// Requests of one kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KindStats {
    /// Requests.
    pub requests: u64,
    /// Bytes.
    pub bytes: u64,
    /// Failed.
    pub errors: u64,
}

/// Measurements per time bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    /// Bucket width.
    pub bucket_seconds: f64,
    /// Buckets in order.
    pub points: Vec<Point>,
}

/// One bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// Bucket start, seconds.
    pub t: f64,
    /// Requests completed.
    pub requests: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Errors.
    pub errors: u64,
    /// Median TTFB, milliseconds.
    pub ttfb_p50_ms: Option<f64>,
    /// 99th-percentile TTFB, milliseconds.
    pub ttfb_p99_ms: Option<f64>,
    /// Median segment time, milliseconds.
    pub segment_p50_ms: Option<f64>,
}

/// The upload storm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadStats {
    /// Finished.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Cut short by the end of the run.
    pub interrupted: u64,
    /// Bytes acknowledged by finished uploads.
    pub bytes: u64,
    /// Acknowledged bytes per second of the run.
    pub bytes_per_second: f64,
    /// Time per acknowledged PATCH, milliseconds.
    pub chunk_ms: Percentiles,
    /// Time per finished upload, milliseconds.
    pub upload_ms: Percentiles,
}

/// Writes `report.json` and `report.html` into `dir` (created if needed).
pub fn write(dir: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    json::write(&dir.join("report.json"), report)?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html::render(report)).map_err(Error::io(&html_path))
}
