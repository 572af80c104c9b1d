//! One run: read the catalogue, note the origin's egress counter, release viewers as a
//! Poisson process (after a warm population that stands for viewers already watching),
//! optionally storm the origin with uploads, stop on time, budget or interrupt, let
//! requests in flight finish, and summarise; with `--trace`, write the request trace and
//! (with `--replay-cache`) replay it for the report's "cache vs optimum".

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use reqwest::Url;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::arrivals::Arrivals;
use crate::catalogue::Catalogue;
use crate::client::{Connector, Protocol, h1h2};
use crate::clip::Clip;
use crate::egress::{self, OriginEgress};
use crate::error::{Error, Result};
use crate::popularity::{Flash, Picker, shuffled_ranks};
use crate::progress::Progress;
use crate::record::Recorder;
use crate::replay::{self, CacheVsOptimum};
use crate::report::{Report, RunInfo};
use crate::scenario::{Order, Pace, Scenario};
use crate::stop::{Stop, StopReason};
use crate::tls::Trust;
use crate::trace::{self, TraceWriter};
use crate::upload::{self, Storm};
use crate::viewer::{Audience, Viewer};
use crate::{summary, tls};

/// How often a pending arrival checks whether the arrival rate changed, seconds.
const RATE_CHECK: f64 = 1.0;

/// Everything a run needs besides the scenario's own settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What the viewers do.
    pub scenario: Scenario,
    /// The PoP (scheme, host and port; master URLs are moved onto it).
    pub target: Url,
    /// HTTP version.
    pub protocol: Protocol,
    /// Server certificate trust.
    pub trust: Trust,
    /// A list of master playlists, overriding the scenario's.
    pub catalogue: Option<PathBuf>,
    /// The origin's API (catalogue, playback tokens, uploads).
    pub origin: Option<Url>,
    /// The origin's Prometheus page, read before and after.
    pub origin_metrics: Option<Url>,
    /// The egress counter on that page.
    pub egress_metric: String,
    /// Creator bearer token for uploads.
    pub creator_token: Option<String>,
    /// The file uploads send, overriding the scenario's.
    pub upload_file: Option<PathBuf>,
    /// Draw the live progress line (on a terminal).
    pub progress: bool,
    /// Write every viewing here, one JSON line each (runs from several hosts merge exactly).
    pub sessions: Option<PathBuf>,
    /// Write the request trace here (`trace`).
    pub trace: Option<PathBuf>,
    /// Replay the trace at the end with a cache of this many bytes (`replay`).
    pub replay_cache: Option<u64>,
}

impl RunOptions {
    /// Options for `scenario` against `target` with everything else at its default.
    pub fn new(scenario: Scenario, target: Url) -> Self {
        Self {
            scenario,
            target,
            protocol: Protocol::H2,
            trust: Trust::System,
            catalogue: None,
            origin: None,
            origin_metrics: None,
            egress_metric: egress::DEFAULT_METRIC.into(),
            creator_token: None,
            upload_file: None,
            progress: false,
            sessions: None,
            trace: None,
            replay_cache: None,
        }
    }
}

/// Runs until the scenario's duration or request budget is spent, or `interrupt` fires, and
/// returns the report (also after an interrupt).
pub async fn run(options: RunOptions, interrupt: CancellationToken) -> Result<Report> {
    tls::init();
    let scenario = Arc::new(options.scenario.clone());
    let seed = scenario.run.seed.unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
    });
    let control_tls = match options.trust {
        // The origin API and metrics usually sit behind a public name or on a private
        // network: the same trust rules apply, over HTTP/1.1.
        Trust::System => None,
        ref t => Some(t.client_config(&[b"http/1.1"], false)?),
    };
    let control = h1h2::client(Protocol::H1, control_tls, scenario.run.request_timeout.max(Duration::from_secs(30)))?;

    let catalogue = Arc::new(catalogue(&options, &scenario, control.clone()).await?);
    tracing::info!(titles = catalogue.len(), "catalogue ready");
    let storm = storm(&options, &scenario).await?;
    let egress_before = match &options.origin_metrics {
        Some(url) => Some(
            egress::read(&control, url, &options.egress_metric)
                .await
                .map_err(|e| Error::Usage(format!("--origin-metrics: {e}")))?,
        ),
        None => None,
    };
    let connector = Connector::new(
        options.protocol,
        &options.trust,
        &options.target,
        scenario.run.request_timeout,
        scenario.run.connections,
    )
    .await?;

    // One QUIC connection per viewer, to the target: an HTTP/3 viewer cannot move to another
    // PoP, so it does not follow steering.
    let steering = scenario.steering.enabled && options.protocol != Protocol::H3;
    if scenario.steering.enabled && !steering {
        tracing::warn!("content steering is not followed over HTTP/3: every request goes to the target");
    }
    let recorder = Arc::new(match &options.trace {
        Some(path) => Recorder::with_trace(TraceWriter::create(path)?),
        None => Recorder::new(),
    });
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stop = Arc::new(Stop::new(scenario.run.max_requests));
    let audience = Arc::new(Audience {
        scenario: scenario.clone(),
        catalogue: catalogue.clone(),
        recorder: recorder.clone(),
        stop: stop.clone(),
        steering,
        control: control.clone(),
    });
    let progress = if options.progress { Progress::start(recorder.clone(), scenario.run.duration) } else { None };
    {
        let stop = stop.clone();
        let duration = scenario.run.duration;
        tokio::spawn(async move {
            tokio::select! {
                () = interrupt.cancelled() => stop.stop(StopReason::Interrupted),
                () = tokio::time::sleep(duration) => stop.stop(StopReason::Duration),
                () = stop.stopped() => {}
            }
        });
    }
    let uploads = storm.as_ref().map(|(storm, _clip)| {
        tokio::spawn(upload::run(storm.clone(), control.clone(), recorder.clone(), stop.clone()))
    });

    let (viewers, arrival_rate) = release_viewers(&audience, &connector, seed).await;
    drain(viewers, scenario.run.request_timeout + Duration::from_secs(1)).await;
    if let Some(u) = uploads {
        let _ = u.await;
    }
    let seconds = recorder.elapsed();
    if let Some(p) = progress {
        p.finish();
    }
    if let Some(lines) = recorder.finish_trace()? {
        tracing::info!(lines, "request trace written");
    }

    let origin = match (&options.origin_metrics, egress_before) {
        (Some(url), Some(before)) => match egress::read(&control, url, &options.egress_metric).await {
            Ok(after) => {
                Some(OriginEgress { metric: options.egress_metric.clone(), before, after, bytes: after - before })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the origin's metrics after the run");
                None
            }
        },
        _ => None,
    };
    let info = RunInfo {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        target: options.target.to_string(),
        protocol: options.protocol,
        pace: scenario.run.pace,
        viewers: scenario.run.viewers,
        arrival_rate,
        seed,
        catalogue_titles: catalogue.len(),
        started_unix,
        planned_seconds: scenario.run.duration.as_secs_f64(),
        seconds,
        max_requests: scenario.run.max_requests,
        stopped_by: stop.reason().unwrap_or(StopReason::Duration),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let samples = recorder.take();
    if let Some(path) = &options.sessions {
        write_sessions(path, &samples.sessions)?;
    }
    let mut report = summary::build(samples, info, origin, storm.is_some(), steering);
    if let (Some(path), Some(capacity)) = (&options.trace, options.replay_cache) {
        // Replaying a long trace takes seconds of CPU: off the runtime's threads.
        let path = path.clone();
        let replayed = tokio::task::spawn_blocking(move || replay_trace(&path, capacity)).await;
        report.cache_vs_optimum = Some(replayed.map_err(|e| Error::Usage(format!("trace replay: {e}")))??);
    }
    Ok(report)
}

/// The run's own trace replayed at `capacity` bytes, each PoP on its own.
fn replay_trace(path: &std::path::Path, capacity: u64) -> Result<CacheVsOptimum> {
    let records = trace::read_file(path)?;
    replay::replay(&records, capacity, None, None).map_err(|message| Error::Trace { path: path.to_owned(), message })
}

/// One JSON line per viewing.
fn write_sessions(path: &std::path::Path, sessions: &[crate::record::SessionSample]) -> Result<()> {
    let mut text = String::new();
    for s in sessions {
        text.push_str(&serde_json::to_string(s).expect("a session always serialises"));
        text.push('\n');
    }
    std::fs::write(path, text).map_err(Error::io(path))
}

async fn catalogue(options: &RunOptions, scenario: &Scenario, control: reqwest::Client) -> Result<Catalogue> {
    let limit = scenario.catalogue.limit;
    let list = options.catalogue.clone().or_else(|| scenario.catalogue.list.as_ref().map(|l| scenario.resolve(l)));
    match (list, &options.origin) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
            Catalogue::from_list(&text, &options.target, limit)
        }
        (None, Some(origin)) => Catalogue::from_origin(control, origin, &options.target, limit).await,
        (None, None) => Err(Error::Usage(
            "no catalogue: give --origin URL (the origin's API) or --catalogue FILE (master playlists, one a line)"
                .into(),
        )),
    }
}

/// The upload storm's set-up, checked before any viewer starts.
async fn storm(options: &RunOptions, scenario: &Scenario) -> Result<Option<(Arc<Storm>, Option<Clip>)>> {
    let Some(config) = &scenario.uploads else { return Ok(None) };
    let origin =
        options.origin.clone().ok_or_else(|| Error::Upload("uploads need --origin (for POST /v1/videos)".into()))?;
    let token = options.creator_token.clone().ok_or_else(|| {
        Error::Upload("uploads need a creator token (--creator-token or LOADTEST_CREATOR_TOKEN)".into())
    })?;
    let given = options.upload_file.clone().or_else(|| config.file.as_ref().map(|f| scenario.resolve(f)));
    let (file, clip) = match given {
        Some(f) => (f, None),
        None => {
            let clip = Clip::generate(&std::env::temp_dir(), config.clip).await?;
            (clip.path().to_owned(), Some(clip))
        }
    };
    let size = std::fs::metadata(&file).map_err(Error::io(&file))?.len();
    if size == 0 {
        return Err(Error::Upload(format!("{} is empty", file.display())));
    }
    let storm = Storm { origin, token, file, size, config: config.clone(), target: options.target.clone() };
    Ok(Some((Arc::new(storm), clip)))
}

/// Starts viewers until the run stops; returns them still running, and the last arrival rate.
async fn release_viewers(audience: &Arc<Audience>, connector: &Connector, seed: u64) -> (JoinSet<()>, Option<f64>) {
    let scenario = &audience.scenario;
    let stop = &audience.stop;
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = audience.catalogue.len();
    let ranks = match scenario.catalogue.order {
        Order::Listed => (0..n).collect(),
        Order::Shuffled => shuffled_ranks(n, &mut rng),
    };
    let flash = scenario.flash_crowd.as_ref().map(|f| Flash {
        title: f.title.min(n - 1),
        share: f.share,
        until: f.window.as_secs_f64(),
    });
    let picker = Picker::new(ranks, scenario.popularity.alpha, flash);
    let burst = scenario.flash_crowd.as_ref().map(|f| (f.window.as_secs_f64(), f.rate_multiplier));
    let mut rate = scenario.arrival_rate();
    let slots = Arc::new(Semaphore::new(scenario.run.viewers));
    let mut viewers = JoinSet::new();
    let start = tokio::time::Instant::now();
    let mut index = 0u64;

    // In playback pace, the run starts in steady state: `viewers` people already watching,
    // each somewhere in their viewing, spread over the ramp so they do not ask in lockstep.
    // A flash title has no one mid-viewing yet: its viewers start from the beginning.
    let paced = scenario.run.pace == Pace::Playback;
    let ramp = scenario.run.ramp.as_secs_f64();
    let mut t = 0.0;
    if paced {
        for k in 0..scenario.run.viewers {
            let at = ramp * k as f64 / scenario.run.viewers as f64;
            if !wait_until(stop, start, at).await {
                return (viewers, rate);
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else { break };
            let title = picker.pick(at, &mut rng);
            let warm = flash.is_none_or(|f| f.title != title);
            spawn_viewer(&mut viewers, audience, connector, seed, &mut index, title, warm, permit);
        }
        t = ramp;
    }
    t = Arrivals { rate, burst }.next(t, &mut rng);
    loop {
        // The rate may change while waiting (it follows how long viewers stay): look again
        // every second. Poisson arrivals are memoryless, so redrawing from now is exact.
        let now = start.elapsed().as_secs_f64();
        if t > now + RATE_CHECK {
            if !wait_until(stop, start, now + RATE_CHECK).await {
                break;
            }
            let current = current_rate(scenario, &audience.recorder);
            if current != rate {
                rate = current;
                t = Arrivals { rate, burst }.next(start.elapsed().as_secs_f64(), &mut rng);
            }
            continue;
        }
        if !wait_until(stop, start, t).await {
            break;
        }
        let (permit, delayed) = match slots.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => tokio::select! {
                p = slots.clone().acquire_owned() => (p.expect("the semaphore is never closed"), true),
                () = stop.stopped() => break,
            },
        };
        audience.recorder.arrival(delayed);
        let title = picker.pick(start.elapsed().as_secs_f64(), &mut rng);
        spawn_viewer(&mut viewers, audience, connector, seed, &mut index, title, false, permit);
        // Reap finished viewers as we go, so a long fast run does not hoard their results.
        while viewers.try_join_next().is_some() {}
        rate = current_rate(scenario, &audience.recorder);
        t = Arrivals { rate, burst }.next(t, &mut rng);
    }
    (viewers, rate)
}

/// The arrival rate now. Unless the scenario fixes it, it is the population target over how
/// long viewers really stay (Little's law), which only the run can tell: a catalogue of
/// short clips needs far more arrivals than one of films for the same audience.
fn current_rate(scenario: &Scenario, recorder: &Recorder) -> Option<f64> {
    if scenario.run.rate.is_some() || scenario.run.pace == Pace::Fast {
        return scenario.arrival_rate();
    }
    match recorder.mean_stay() {
        Some(stay) => Some(scenario.run.viewers as f64 / stay.max(0.1)),
        None => scenario.arrival_rate(),
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_viewer(
    viewers: &mut JoinSet<()>,
    audience: &Arc<Audience>,
    connector: &Connector,
    seed: u64,
    index: &mut u64,
    title: usize,
    warm: bool,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let i = *index;
    *index += 1;
    let connection = match connector.connection(i) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot make a connection");
            audience.recorder.error("client");
            return;
        }
    };
    // Each viewer's own stream: what it does does not depend on scheduling order.
    let viewer = Viewer::new(audience.clone(), connection, seed ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    viewers.spawn(async move {
        viewer.watch(title, warm).await;
        drop(permit);
    });
}

/// Sleeps until `at` seconds after `start`; `false` if the run stopped first.
async fn wait_until(stop: &Stop, start: tokio::time::Instant, at: f64) -> bool {
    if stop.is_stopped() {
        return false;
    }
    let deadline = start + Duration::from_secs_f64(at.max(0.0));
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => !stop.is_stopped(),
        () = stop.stopped() => false,
    }
}

/// Lets viewers finish the requests they have in flight, then abandons the rest.
async fn drain(mut viewers: JoinSet<()>, grace: Duration) {
    let all = async { while viewers.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!("viewers still busy after {grace:?}; abandoning them");
        viewers.abort_all();
        while viewers.join_next().await.is_some() {}
    }
}
