//! One virtual viewer, playing one title the way a player does: the multivariant playlist,
//! a rung picked by ABR and its media playlist (and the audio rendition's), the key once
//! when the PoP serves it (a key service elsewhere is not the PoP's load),
//! each init section once, then segment after segment; switching rungs as throughput
//! changes, seeking now and then, leaving when its planned watch time is used up. In
//! playback pace it keeps a bounded buffer ahead of a real-time playhead and its stalls
//! are measured; in fast pace it fetches as fast as the PoP answers.
//!
//! When the multivariant playlist carries `EXT-X-CONTENT-STEERING` and steering is on, the
//! viewer follows it as hls.js does (`steering`): every request goes to the current pathway,
//! a media playlist is loaded again when the pathway changes, and a request that fails at
//! the network level or with a 5xx is sent again at once on the next pathway. A title from
//! the origin's API whose multivariant playlist cannot be loaded is asked for again, once,
//! from a new grant, as a page would.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use reqwest::Url;
use tokio::time::Instant;

use crate::abr::Abr;
use crate::buffer::Buffer;
use crate::catalogue::Catalogue;
use crate::client::{Connection, Fetched, Get};
use crate::hls::{self, Master, Media, Playlist, Resource, Variant};
use crate::record::{Kind, Recorder, SessionSample, SteeringEvent};
use crate::scenario::{Pace, Scenario};
use crate::session::Plan;
use crate::steering::{self, Steerer};
use crate::stop::Stop;

/// How long a page waits before asking for a new grant when the multivariant playlist
/// failed (hls.js's first manifest retry comes after a second).
const REGRANT_DELAY: Duration = Duration::from_secs(1);
/// Most times one request is sent to another pathway after failing.
const MAX_FAILOVERS: usize = 8;

/// What every viewer of a run shares.
#[derive(Debug)]
pub struct Audience {
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// The titles.
    pub catalogue: Arc<Catalogue>,
    /// Measurements.
    pub recorder: Arc<Recorder>,
    /// The stop signal and request budget.
    pub stop: Arc<Stop>,
    /// Follow content steering (the scenario's switch; never over HTTP/3).
    pub steering: bool,
    /// The client steering manifests and new grants are asked with (the steering server is
    /// not the PoP under test).
    pub control: reqwest::Client,
}

/// The simulated player's clock and buffer; the clock starts at the master request.
struct Playhead {
    t0: Option<Instant>,
    buffer: Buffer,
}

/// Why a viewing ended before its plan did.
enum Halt {
    Stopped,
    /// An error of this kind; `outage`: the server could not be reached or answered 5xx.
    Failed {
        kind: String,
        outage: bool,
    },
}

impl Halt {
    fn failed(kind: impl Into<String>) -> Self {
        Self::Failed { kind: kind.into(), outage: false }
    }
}

/// One viewer.
pub struct Viewer {
    audience: Arc<Audience>,
    connection: Connection,
    rng: SmallRng,
    /// Keys and init sections already fetched: a player asks for each once.
    keys: HashSet<Url>,
    maps: HashSet<Resource>,
    /// Media playlists by URL, with the pathway each was loaded on.
    playlists: HashMap<Url, (Option<String>, Arc<Media>)>,
    /// Content steering, when the multivariant playlist asked for it and it is on.
    steerer: Option<Steerer>,
}

impl Viewer {
    /// A viewer with its own connection and random stream.
    pub fn new(audience: Arc<Audience>, connection: Connection, seed: u64) -> Self {
        Self {
            audience,
            connection,
            rng: SmallRng::seed_from_u64(seed),
            keys: HashSet::new(),
            maps: HashSet::new(),
            playlists: HashMap::new(),
            steerer: None,
        }
    }

    /// Watches catalogue title `title` and records the viewing. `warm`: the viewer was
    /// already mid-viewing when the run started, so it begins at a random point of it.
    pub async fn watch(mut self, title: usize, warm: bool) {
        let recorder = self.audience.recorder.clone();
        recorder.viewer_started();
        let mut sample = SessionSample { started: recorder.elapsed() as f32, ..SessionSample::default() };
        let plan = Plan::draw(&self.audience.scenario.session, &mut self.rng);
        sample.abandoned = plan.abandons;
        let mut playhead = Playhead { t0: None, buffer: Buffer::new() };
        match self.play(title, warm, &plan, &mut sample, &mut playhead).await {
            Ok(()) => sample.completed = true,
            Err(Halt::Stopped) => {}
            Err(Halt::Failed { kind, .. }) => sample.failed = Some(kind),
        }
        // The manifest reloads end with the viewing.
        self.steerer = None;
        // However the viewing ended, what played and what stalled until now counts.
        if let Some(t0) = playhead.t0 {
            let b = &mut playhead.buffer;
            b.finish(t0.elapsed().as_secs_f64());
            (sample.played, sample.stalled, sample.stalls) = (b.played as f32, b.stalled as f32, b.stalls);
        }
        recorder.session(sample);
    }

    async fn play(
        &mut self,
        title: usize,
        warm: bool,
        plan: &Plan,
        sample: &mut SessionSample,
        playhead: &mut Playhead,
    ) -> Result<(), Halt> {
        let scenario = self.audience.scenario.clone();
        let paced = scenario.run.pace == Pace::Playback;
        sample.paced = paced;
        let master_url = self.audience.catalogue.master_url(title).await.map_err(|e| {
            tracing::debug!(title, error = %e, "no master URL");
            self.audience.recorder.error("catalogue");
            Halt::failed("catalogue")
        })?;

        let t0 = Instant::now();
        playhead.t0 = Some(t0);
        let buffer = &mut playhead.buffer;
        let (master, master_url) = self.open(title, master_url).await?;
        let mut abr = Abr::new(&scenario.abr);
        if let Some(tag) = master.steering.as_ref().filter(|_| self.audience.steering) {
            let context = steering::Context {
                client: self.audience.control.clone(),
                recorder: self.audience.recorder.clone(),
                penalty: scenario.steering.penalty,
                timeout: scenario.run.request_timeout,
            };
            self.steerer = Some(Steerer::start(tag, &master, &master_url, abr.estimate(), context));
            self.audience.recorder.steering(SteeringEvent::Viewing);
        }
        let bandwidths: Vec<u64> = master.variants.iter().map(|v| v.bandwidth).collect();
        let mut rung = abr.choose(&bandwidths);
        let mut media = self.media(&master.variants[rung].uri).await?;
        let audio_uri = master.audio_for(&master.variants[rung]).and_then(|a| a.uri.clone());
        let mut audio = match &audio_uri {
            Some(uri) => Some(self.media(uri).await?),
            None => None,
        };
        let mut pathway = self.pathway();
        let mut last_audio = None;

        let duration = media.duration();
        let planned = plan.watch.min(duration);
        self.audience.recorder.planned(planned);
        let skipped = if warm { self.rng.random::<f64>() * planned } else { 0.0 };
        let mut position = skipped;
        let to_watch = planned - skipped;
        let mut watched = 0.0;
        let mut waiting_since = Some(t0);
        let max_buffer = scenario.abr.max_buffer.as_secs_f64();

        while watched < to_watch && position < duration {
            let want = abr.choose(&bandwidths);
            let moved = self.pathway() != pathway;
            if want != rung || moved {
                // A new pathway's playlists are loaded from it, as hls.js reloads the levels
                // it moves to.
                media = self.media(&master.variants[want].uri).await?;
                if moved && let Some(uri) = &audio_uri {
                    audio = Some(self.media(uri).await?);
                }
                pathway = self.pathway();
                if want != rung {
                    rung = want;
                    sample.switches += 1;
                }
            }
            let i = media.index_at(position);
            let segment = media.segments[i].clone();
            if paced {
                let wait = buffer.wait_for_room(t0.elapsed().as_secs_f64(), segment.duration, max_buffer);
                self.sleep(Duration::from_secs_f64(wait)).await?;
            }
            if let Some(k) = segment.key {
                let key = media.keys[k].clone();
                // Keys served by the PoP under test are fetched (nginx or an older PoP); a key
                // service on its own host is not the PoP's load, and needs a key token the
                // harness, playing from playlists alone, does not have.
                if !self.keys.contains(&key) && same_host(&key, &master_url) {
                    self.fetch(Kind::Key, &key, None, false, None).await?;
                }
                self.keys.insert(key);
            }
            if let Some(m) = segment.map {
                let map = media.maps[m].clone();
                if !self.maps.contains(&map) {
                    self.fetch(Kind::Init, &map.uri, map.range_header().as_deref(), false, None).await?;
                    self.maps.insert(map);
                }
            }
            let label = master.variants[rung].label();
            let video = self.fetch_retrying(Kind::Segment, &segment.resource, &label);
            let got = match &audio {
                Some(a) if last_audio != Some(a.index_at(position)) => {
                    let j = a.index_at(position);
                    last_audio = Some(j);
                    let init = a.segments[j].map.map(|m| a.maps[m].clone()).filter(|m| !self.maps.contains(m));
                    let audio = audio_segment(&self.connection, &self.audience, self.steerer.as_ref(), a, j, init);
                    let (video, audio) = tokio::join!(video, audio);
                    if let Some(init) = audio? {
                        self.maps.insert(init);
                    }
                    video?
                }
                _ => video.await?,
            };
            abr.observe(got.bytes, got.total);
            if let Some(s) = &self.steerer {
                s.set_throughput(abr.estimate());
            }
            let now = t0.elapsed().as_secs_f64();
            if let Some(since) = waiting_since.take() {
                let waited = since.elapsed().as_secs_f32();
                if sample.startup.is_none() { sample.startup = Some(waited) } else { sample.seek_waits.push(waited) }
            }
            buffer.add(now, segment.duration);
            sample.segments += 1;
            watched += segment.duration;
            position = media.start_of(i) + segment.duration;
            if plan.seeks_after(segment.duration, &mut self.rng) {
                position = self.rng.random::<f64>() * duration;
                buffer.seek(now);
                waiting_since = Some(Instant::now());
                last_audio = None;
                sample.seeks += 1;
            }
            if self.audience.stop.is_stopped() {
                return Err(Halt::Stopped);
            }
        }
        // A viewer is still watching while its buffer plays out, and holds its slot.
        let rest = if paced { buffer.level(t0.elapsed().as_secs_f64()) } else { 0.0 };
        self.sleep(Duration::from_secs_f64(rest)).await
    }

    /// The multivariant playlist at `url`. With steering on and the catalogue from the
    /// origin, one that cannot be reached (its PoP is down) is asked for again from a new
    /// grant after [`REGRANT_DELAY`], where the origin's steering sends the viewer now.
    async fn open(&mut self, title: usize, url: Url) -> Result<(Master, Url), Halt> {
        match self.master(&url).await {
            Err(Halt::Failed { outage: true, .. }) if self.audience.steering && self.audience.catalogue.has_api() => {
                self.sleep(REGRANT_DELAY).await?;
                let fresh = self.audience.catalogue.regrant(title, &url).await.map_err(|e| {
                    tracing::debug!(title, error = %e, "no new grant");
                    self.audience.recorder.error("catalogue");
                    Halt::failed("catalogue")
                })?;
                self.audience.recorder.steering(SteeringEvent::Regrant);
                let master = self.master(&fresh).await?;
                Ok((master, fresh))
            }
            other => other.map(|m| (m, url)),
        }
    }

    async fn master(&mut self, url: &Url) -> Result<Master, Halt> {
        let body = self.fetch(Kind::Master, url, None, true, None).await?.body.unwrap_or_default();
        match hls::parse(&String::from_utf8_lossy(&body), url) {
            Ok(Playlist::Master(m)) => Ok(m),
            // A media playlist given as the title: one rung, already parsed.
            Ok(Playlist::Media(media)) => {
                self.playlists.insert(url.clone(), (None, Arc::new(media)));
                let only = Variant {
                    uri: url.clone(),
                    bandwidth: 0,
                    resolution: None,
                    audio: None,
                    pathway: hls::DEFAULT_PATHWAY.into(),
                };
                Ok(Master {
                    variants: vec![only],
                    audio: Vec::new(),
                    steering: None,
                    pathway: hls::DEFAULT_PATHWAY.into(),
                })
            }
            Err(e) => Err(self.bad_playlist(url, &e)),
        }
    }

    /// The pathway requests go to now (`None` without steering).
    fn pathway(&self) -> Option<String> {
        self.steerer.as_ref().map(Steerer::current)
    }

    /// The media playlist `url` (as the ladder names it), loaded once per pathway. Parsed
    /// against `url` wherever it came from, so its segments are named as the ladder would
    /// and moved to the pathway when fetched.
    async fn media(&mut self, url: &Url) -> Result<Arc<Media>, Halt> {
        let pathway = self.pathway();
        if let Some((on, m)) = self.playlists.get(url)
            && *on == pathway
        {
            return Ok(m.clone());
        }
        let body = self.fetch(Kind::Playlist, url, None, true, None).await?.body.unwrap_or_default();
        match hls::parse(&String::from_utf8_lossy(&body), url) {
            Ok(Playlist::Media(m)) => {
                let m = Arc::new(m);
                self.playlists.insert(url.clone(), (self.pathway(), m.clone()));
                Ok(m)
            }
            Ok(Playlist::Master(_)) => Err(self.bad_playlist(url, "a multivariant playlist where a media one belongs")),
            Err(e) => Err(self.bad_playlist(url, &e)),
        }
    }

    fn bad_playlist(&self, url: &Url, error: &str) -> Halt {
        tracing::warn!(%url, error, "unusable playlist");
        self.audience.recorder.error("playlist");
        Halt::failed("playlist")
    }

    /// A segment, tried twice: players retry a failed segment before giving up.
    async fn fetch_retrying(&self, kind: Kind, resource: &Resource, rung: &str) -> Result<Fetched, Halt> {
        let range = resource.range_header();
        match self.fetch(kind, &resource.uri, range.as_deref(), false, Some(rung)).await {
            Err(Halt::Failed { .. }) => self.fetch(kind, &resource.uri, range.as_deref(), false, Some(rung)).await,
            other => other,
        }
    }

    async fn fetch(
        &self,
        kind: Kind,
        url: &Url,
        range: Option<&str>,
        keep_body: bool,
        rung: Option<&str>,
    ) -> Result<Fetched, Halt> {
        fetch_on(&self.connection, &self.audience, self.steerer.as_ref(), kind, url, range, keep_body, rung).await
    }

    async fn sleep(&self, d: Duration) -> Result<(), Halt> {
        if d.is_zero() {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            () = self.audience.stop.stopped() => Err(Halt::Stopped),
        }
    }
}

/// One request against the budget, recorded whatever happens. With `steering`, it goes to
/// the current pathway, and one that fails at the network level or with a 5xx penalises that
/// pathway and is sent again at once on the next (each attempt is a request of its own).
#[allow(clippy::too_many_arguments)]
async fn fetch_on(
    connection: &Connection,
    audience: &Audience,
    steering: Option<&Steerer>,
    kind: Kind,
    url: &Url,
    range: Option<&str>,
    keep_body: bool,
    rung: Option<&str>,
) -> Result<Fetched, Halt> {
    let limit = audience.scenario.run.request_timeout;
    let mut pathway = steering.map(Steerer::current);
    let mut failovers = 0;
    loop {
        if !audience.stop.take_request() {
            return Err(Halt::Stopped);
        }
        let target = match (steering, &pathway) {
            (Some(s), Some(p)) => Cow::Owned(s.locate(p, url, kind == Kind::Playlist)),
            _ => Cow::Borrowed(url),
        };
        let result = connection.get(Get { url: &target, range, keep_body }, limit).await;
        let server = steering::authority(&target);
        audience.recorder.request(kind, &server, &result, rung);
        audience.recorder.trace(&server, &target, &result);
        let outage = result.as_ref().map_or(true, |f| f.status >= 500);
        if outage
            && failovers < MAX_FAILOVERS
            && let (Some(s), Some(p)) = (steering, &pathway)
            && let Some(next) = s.failed(p)
        {
            tracing::debug!(url = %target, from = p, to = next, "request failed; sent again on another pathway");
            audience.recorder.steering(SteeringEvent::Failover);
            pathway = Some(next);
            failovers += 1;
            continue;
        }
        return match result {
            Ok(f) if (200..300).contains(&f.status) => Ok(f),
            Ok(f) => {
                tracing::debug!(url = %target, status = f.status, "error status");
                Err(Halt::Failed { kind: format!("http_{}", f.status), outage })
            }
            Err(e) => {
                tracing::debug!(url = %target, kind = e.kind, error = %e.message, "request failed");
                Err(Halt::Failed { kind: e.kind.to_owned(), outage })
            }
        };
    }
}

/// The audio segment `j` of `audio` (and its init section if new), fetched beside the
/// video segment for the same time as players do; returns the init section fetched.
async fn audio_segment(
    connection: &Connection,
    audience: &Audience,
    steering: Option<&Steerer>,
    audio: &Media,
    j: usize,
    init: Option<Resource>,
) -> Result<Option<Resource>, Halt> {
    if let Some(init) = &init {
        let range = init.range_header();
        fetch_on(connection, audience, steering, Kind::Init, &init.uri, range.as_deref(), false, None).await?;
    }
    let segment = &audio.segments[j].resource;
    let range = segment.range_header();
    fetch_on(connection, audience, steering, Kind::Audio, &segment.uri, range.as_deref(), false, None).await?;
    Ok(init)
}

/// Whether two URLs name the same scheme, host and port.
fn same_host(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}
