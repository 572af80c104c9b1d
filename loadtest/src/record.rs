//! Everything measured during a run, as raw samples: one per request, one per viewing, one
//! per upload. Counters the progress line reads are atomics; the samples sit behind one
//! short-held lock and are summarised once, at the end (`summary`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::client::{FetchError, Fetched};
use crate::error::Result as HarnessResult;
use crate::trace::{TraceRecord, TraceWriter};

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Multivariant playlist.
    Master,
    /// Media playlist.
    Playlist,
    /// Init section (`EXT-X-MAP`).
    Init,
    /// Content key (`EXT-X-KEY`).
    Key,
    /// Video (or muxed) media segment.
    Segment,
    /// Audio-only media segment.
    Audio,
}

impl Kind {
    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Playlist => "playlist",
            Self::Init => "init",
            Self::Key => "key",
            Self::Segment => "segment",
            Self::Audio => "audio",
        }
    }
}

/// What the edge's `x-cache` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// `hit`, `hit-memory`, `hit-disk`, ...
    Hit,
    /// `stale`: served from cache while revalidating or because the origin failed.
    Stale,
    /// `miss`: fetched from the origin.
    Miss,
    /// Some other value (`pass`, `bypass`, ...).
    Other,
    /// No header.
    Absent,
}

impl CacheOutcome {
    /// Classifies a header value.
    pub fn of(value: Option<&str>) -> Self {
        let Some(v) = value else { return Self::Absent };
        let v = v.trim().to_ascii_lowercase();
        if v == "hit" || v.starts_with("hit-") || v.starts_with("hit ") || v.starts_with("tcp_hit") {
            Self::Hit
        } else if v.starts_with("stale") {
            Self::Stale
        } else if v == "miss" || v.starts_with("miss-") || v.starts_with("miss ") || v.starts_with("tcp_miss") {
            Self::Miss
        } else {
            Self::Other
        }
    }

    /// Served from the cache (a stale copy counts: the origin was not asked for the body).
    pub fn from_cache(self) -> bool {
        matches!(self, Self::Hit | Self::Stale)
    }
}

/// What content steering did, as a viewer's player saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteeringEvent {
    /// A viewing's multivariant playlist asked for steering, and the player followed it.
    Viewing,
    /// A steering manifest was loaded.
    Manifest,
    /// A steering manifest could not be loaded (or was not one).
    ManifestError,
    /// The player moved to another pathway (a manifest or a failure moved it).
    Switch,
    /// A request that failed (network or 5xx) was sent again at once on another pathway.
    Failover,
    /// A multivariant playlist that failed was asked for again from a new playback grant,
    /// where the origin sent it.
    Regrant,
}

/// Content steering counts (see [`SteeringEvent`]), kept by the record and reported as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringCounts {
    /// Viewings whose multivariant playlist asked for steering and that followed it.
    pub viewings: u64,
    /// Steering manifests loaded.
    pub manifests: u64,
    /// Steering manifest loads that failed.
    pub manifest_errors: u64,
    /// Pathway changes (by a manifest or by a failure).
    pub switches: u64,
    /// Requests that failed (network or 5xx) and were sent again at once on another pathway.
    pub failovers: u64,
    /// Multivariant playlists that failed and were asked for again from a new grant.
    pub regrants: u64,
}

/// Requests one server (`host[:port]`) answered, or failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Requests sent to it.
    pub requests: u64,
    /// Body bytes received from it.
    pub bytes: u64,
    /// Of the requests, those that failed.
    pub errors: u64,
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct RequestSample {
    /// Seconds since the run started, at completion.
    pub at: f32,
    /// What it was for.
    pub kind: Kind,
    /// Seconds to the response head.
    pub ttfb: f32,
    /// Seconds to the last byte.
    pub total: f32,
    /// Body bytes.
    pub bytes: u64,
    /// `x-cache`.
    pub cache: CacheOutcome,
    /// 2xx and complete.
    pub ok: bool,
}

/// One viewing (`loadtest run --sessions` writes one JSON line each).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionSample {
    /// Seconds since the run started.
    pub started: f32,
    /// Master request → first segment complete.
    pub startup: Option<f32>,
    /// Seek → first segment after it complete.
    pub seek_waits: Vec<f32>,
    /// Played seconds (playback pace only).
    pub played: f32,
    /// Stalled seconds (playback pace only).
    pub stalled: f32,
    /// Stalls.
    pub stalls: u32,
    /// Whether the buffer was simulated (playback pace).
    pub paced: bool,
    /// Seeks.
    pub seeks: u32,
    /// Rung changes.
    pub switches: u32,
    /// Video segments fetched.
    pub segments: u32,
    /// Gave up early by plan.
    pub abandoned: bool,
    /// Watched what it meant to.
    pub completed: bool,
    /// Ended by an error of this kind.
    pub failed: Option<String>,
}

/// One upload.
#[derive(Debug, Clone)]
pub struct UploadSample {
    /// Bytes acknowledged.
    pub bytes: u64,
    /// Seconds from creation to the last acknowledgement.
    pub seconds: f32,
    /// Error kind if it failed; `interrupted` if the run ended first.
    pub failed: Option<String>,
}

/// All samples of a run.
#[derive(Debug, Default)]
pub struct Samples {
    /// Per request.
    pub requests: Vec<RequestSample>,
    /// Error counts by kind (`timeout`, `http_404`, ...).
    pub errors: BTreeMap<String, u64>,
    /// `x-cache` values as received.
    pub cache_values: BTreeMap<String, u64>,
    /// Video segments and bytes by rung label.
    pub rungs: BTreeMap<String, (u64, u64)>,
    /// Requests by the server they were sent to (`host[:port]`).
    pub servers: BTreeMap<String, ServerCounts>,
    /// Content steering.
    pub steering: SteeringCounts,
    /// Per viewing.
    pub sessions: Vec<SessionSample>,
    /// Per upload.
    pub uploads: Vec<UploadSample>,
    /// Seconds per acknowledged PATCH.
    pub upload_chunks: Vec<f32>,
    /// Viewers who arrived.
    pub arrivals: u64,
    /// Of those, how many had to wait for a free viewer slot.
    pub arrivals_delayed: u64,
}

/// Live counters for the progress line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Requests completed (with or without error).
    pub requests: u64,
    /// Body bytes.
    pub bytes: u64,
    /// Errors.
    pub errors: u64,
    /// Responses served from cache.
    pub hits: u64,
    /// Responses with a cache verdict (hit, stale or miss).
    pub judged: u64,
    /// Viewers watching now.
    pub viewers: u64,
    /// Uploads finished.
    pub uploads: u64,
}

/// The run's recorder, shared by every task.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    requests: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    hits: AtomicU64,
    judged: AtomicU64,
    viewers: AtomicU64,
    uploads: AtomicU64,
    /// Viewings planned so far, and their total length in media microseconds.
    plans: AtomicU64,
    plan_micros: AtomicU64,
    samples: Mutex<Samples>,
    /// The request trace, when the run keeps one.
    trace: Option<TraceWriter>,
}

impl Recorder {
    /// Starts the clock.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            judged: AtomicU64::new(0),
            viewers: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            plans: AtomicU64::new(0),
            plan_micros: AtomicU64::new(0),
            samples: Mutex::new(Samples::default()),
            trace: None,
        }
    }

    /// Starts the clock, and writes the request trace to `trace`.
    pub fn with_trace(trace: TraceWriter) -> Self {
        Self { trace: Some(trace), ..Self::new() }
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Samples> {
        // A panicking task cannot leave the samples half-written in a way that matters.
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one request's outcome; `server` is the `host[:port]` it was sent to, `rung`
    /// labels video segments.
    pub fn request(&self, kind: Kind, server: &str, result: &Result<Fetched, FetchError>, rung: Option<&str>) {
        let at = self.elapsed() as f32;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sample = match result {
            Ok(f) => {
                let ok = (200..300).contains(&f.status);
                let cache = CacheOutcome::of(f.x_cache.as_deref());
                self.bytes.fetch_add(f.bytes, Ordering::Relaxed);
                if matches!(cache, CacheOutcome::Hit | CacheOutcome::Stale | CacheOutcome::Miss) {
                    self.judged.fetch_add(1, Ordering::Relaxed);
                    if cache.from_cache() {
                        self.hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
                RequestSample {
                    at,
                    kind,
                    ttfb: f.ttfb.as_secs_f32(),
                    total: f.total.as_secs_f32(),
                    bytes: f.bytes,
                    cache,
                    ok,
                }
            }
            Err(e) => RequestSample {
                at,
                kind,
                ttfb: e.elapsed.as_secs_f32(),
                total: e.elapsed.as_secs_f32(),
                bytes: 0,
                cache: CacheOutcome::Absent,
                ok: false,
            },
        };
        if !sample.ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut s = self.lock();
        s.requests.push(sample);
        let counts = s.servers.entry(server.to_owned()).or_default();
        counts.requests += 1;
        counts.bytes += sample.bytes;
        counts.errors += u64::from(!sample.ok);
        match result {
            Ok(f) if !sample.ok => *s.errors.entry(format!("http_{}", f.status)).or_default() += 1,
            Ok(_) => {}
            Err(e) => *s.errors.entry(e.kind.to_owned()).or_default() += 1,
        }
        if let Ok(f) = result {
            if let Some(v) = &f.x_cache {
                *s.cache_values.entry(v.trim().to_ascii_lowercase()).or_default() += 1;
            }
            if let (true, Some(rung)) = (sample.ok && kind == Kind::Segment, rung) {
                let entry = s.rungs.entry(rung.to_owned()).or_default();
                entry.0 += 1;
                entry.1 += f.bytes;
            }
        }
    }

    /// Adds a request to the run's trace when it keeps one: only a successful fetch with a
    /// body, dated when it was sent (see `trace`).
    pub fn trace(&self, server: &str, url: &Url, result: &Result<Fetched, FetchError>) {
        let (Some(trace), Ok(f)) = (&self.trace, result) else { return };
        if !(200..300).contains(&f.status) || f.bytes == 0 {
            return;
        }
        let sent = self.start.elapsed().saturating_sub(f.total);
        trace.record(TraceRecord {
            at_ms: sent.as_millis() as u64,
            server: server.to_owned(),
            key: crate::trace::object_key(url.path()).to_owned(),
            bytes: f.bytes,
            x_cache: f.x_cache.clone(),
        });
    }

    /// Writes out and closes the trace (the run is over): the lines written, `None` without
    /// a trace.
    pub fn finish_trace(&self) -> HarnessResult<Option<u64>> {
        self.trace.as_ref().map(TraceWriter::finish).transpose()
    }

    /// Something content steering did.
    pub fn steering(&self, event: SteeringEvent) {
        let mut s = self.lock();
        let c = &mut s.steering;
        match event {
            SteeringEvent::Viewing => c.viewings += 1,
            SteeringEvent::Manifest => c.manifests += 1,
            SteeringEvent::ManifestError => c.manifest_errors += 1,
            SteeringEvent::Switch => c.switches += 1,
            SteeringEvent::Failover => c.failovers += 1,
            SteeringEvent::Regrant => c.regrants += 1,
        }
    }

    /// An error that is not a response (an unparsable playlist, a failed token request).
    pub fn error(&self, kind: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.lock().errors.entry(kind.to_owned()).or_default() += 1;
    }

    /// A viewer arrived; `delayed` if it waited for a free slot.
    pub fn arrival(&self, delayed: bool) {
        let mut s = self.lock();
        s.arrivals += 1;
        s.arrivals_delayed += u64::from(delayed);
    }

    /// A viewer starts watching.
    pub fn viewer_started(&self) {
        self.viewers.fetch_add(1, Ordering::Relaxed);
    }

    /// A viewing ended.
    pub fn session(&self, sample: SessionSample) {
        self.viewers.fetch_sub(1, Ordering::Relaxed);
        self.lock().sessions.push(sample);
    }

    /// One PATCH acknowledged after `took`.
    pub fn upload_chunk(&self, took: Duration) {
        self.lock().upload_chunks.push(took.as_secs_f32());
    }

    /// An upload ended.
    pub fn upload(&self, sample: UploadSample) {
        if sample.failed.is_none() {
            self.uploads.fetch_add(1, Ordering::Relaxed);
        }
        let mut s = self.lock();
        if let Some(kind) = &sample.failed
            && kind != "interrupted"
        {
            *s.errors.entry(format!("upload_{kind}")).or_default() += 1;
        }
        s.uploads.push(sample);
    }

    /// A viewer knows how long it will watch: its planned watch time capped by the video.
    pub fn planned(&self, seconds: f64) {
        self.plans.fetch_add(1, Ordering::Relaxed);
        self.plan_micros.fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// How long viewers stay on average, once a few have planned: with Little's law it turns
    /// a target population into an arrival rate whatever the videos' lengths. Counted
    /// before anyone leaves, so it is known within the first seconds of a run.
    pub fn mean_stay(&self) -> Option<f64> {
        let n = self.plans.load(Ordering::Relaxed);
        (n >= 3).then(|| self.plan_micros.load(Ordering::Relaxed) as f64 / 1e6 / n as f64)
    }

    /// The live counters.
    pub fn counters(&self) -> Counters {
        Counters {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            judged: self.judged.load(Ordering::Relaxed),
            viewers: self.viewers.load(Ordering::Relaxed),
            uploads: self.uploads.load(Ordering::Relaxed),
        }
    }

    /// Takes the samples out (the run is over).
    pub fn take(&self) -> Samples {
        std::mem::take(&mut *self.lock())
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_cache_values_are_classified() {
        for (v, want) in [
            ("hit-memory", CacheOutcome::Hit),
            ("hit-disk", CacheOutcome::Hit),
            ("HIT", CacheOutcome::Hit),
            ("stale", CacheOutcome::Stale),
            ("miss", CacheOutcome::Miss),
            ("pass", CacheOutcome::Other),
        ] {
            assert_eq!(CacheOutcome::of(Some(v)), want, "{v}");
        }
        assert_eq!(CacheOutcome::of(None), CacheOutcome::Absent);
        assert!(CacheOutcome::Stale.from_cache() && !CacheOutcome::Miss.from_cache());
    }

    #[test]
    fn only_successful_fetches_with_a_body_are_traced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.tsv");
        let r = Recorder::with_trace(TraceWriter::create(&path).unwrap());
        let url = Url::parse("http://pop-a:8081/p/tok/vid/hi/seg_001.m4s?token=secret").unwrap();
        let fetched = |status, bytes| Fetched {
            status,
            x_cache: Some("hit-disk".into()),
            ttfb: Duration::ZERO,
            total: Duration::ZERO,
            bytes,
            body: None,
        };
        r.trace("pop-a:8081", &url, &Ok(fetched(200, 1000)));
        r.trace("pop-a:8081", &url, &Ok(fetched(404, 10)));
        r.trace("pop-a:8081", &url, &Ok(fetched(204, 0)));
        let failure = FetchError { kind: "timeout", message: String::new(), elapsed: Duration::from_secs(1) };
        r.trace("pop-a:8081", &url, &Err(failure));
        assert_eq!(r.finish_trace().unwrap(), Some(1));
        let lines = crate::trace::read_file(&path).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].key, "/vid/hi/seg_001.m4s", "neither the path's token nor the query");
        assert_eq!((lines[0].server.as_str(), lines[0].bytes), ("pop-a:8081", 1000));
        assert_eq!(lines[0].x_cache.as_deref(), Some("hit-disk"));
        assert_eq!(Recorder::new().finish_trace().unwrap(), None);
    }

    #[test]
    fn requests_feed_counters_errors_and_rungs() {
        let r = Recorder::new();
        let ok = |x: &str, status| Fetched {
            status,
            x_cache: Some(x.into()),
            ttfb: Duration::from_millis(5),
            total: Duration::from_millis(20),
            bytes: 1000,
            body: None,
        };
        r.request(Kind::Segment, "pop-a:8081", &Ok(ok("hit-memory", 200)), Some("720p"));
        r.request(Kind::Segment, "pop-a:8081", &Ok(ok("miss", 200)), Some("720p"));
        r.request(Kind::Segment, "pop-b:8081", &Ok(ok("miss", 404)), Some("720p"));
        let failure = FetchError { kind: "timeout", message: String::new(), elapsed: Duration::from_secs(1) };
        r.request(Kind::Key, "pop-b:8081", &Err(failure), None);
        r.steering(SteeringEvent::Failover);
        r.steering(SteeringEvent::Failover);
        r.steering(SteeringEvent::Manifest);
        let c = r.counters();
        assert_eq!((c.requests, c.errors, c.hits, c.judged, c.bytes), (4, 2, 1, 3, 3000));
        let s = r.take();
        assert_eq!(s.errors.get("http_404"), Some(&1));
        assert_eq!(s.errors.get("timeout"), Some(&1));
        assert_eq!(s.rungs.get("720p"), Some(&(2, 2000)), "only successful segments count");
        assert_eq!(s.cache_values.get("miss"), Some(&2));
        assert_eq!(s.servers["pop-a:8081"], ServerCounts { requests: 2, bytes: 2000, errors: 0 });
        assert_eq!(s.servers["pop-b:8081"], ServerCounts { requests: 2, bytes: 1000, errors: 2 });
        assert_eq!((s.steering.failovers, s.steering.manifests, s.steering.switches), (2, 1, 0));
    }
}
