//! One virtual viewer, playing one title the way a player does: the multivariant playlist,
//! a rung picked by ABR and its media playlist (and the audio rendition's), the key once
//! when the PoP serves it (a key service elsewhere is not the PoP's load),
//! each init section once, then segment after segment; switching rungs as throughput
//! changes, seeking now and then, leaving when its planned watch time is used up. In
//! playback pace it keeps a bounded buffer ahead of a real-time playhead and its stalls
//! are measured; in fast pace it fetches as fast as the PoP answers.

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
use crate::record::{Kind, Recorder, SessionSample};
use crate::scenario::{Pace, Scenario};
use crate::session::Plan;
use crate::stop::Stop;

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
}

/// The simulated player's clock and buffer; the clock starts at the master request.
struct Playhead {
    t0: Option<Instant>,
    buffer: Buffer,
}

/// Why a viewing ended before its plan did.
enum Halt {
    Stopped,
    Failed(String),
}

/// One viewer.
pub struct Viewer {
    audience: Arc<Audience>,
    connection: Connection,
    rng: SmallRng,
    /// Keys and init sections already fetched: a player asks for each once.
    keys: HashSet<Url>,
    maps: HashSet<Resource>,
    playlists: HashMap<Url, Arc<Media>>,
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
            Err(Halt::Failed(kind)) => sample.failed = Some(kind),
        }
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
            Halt::Failed("catalogue".into())
        })?;

        let t0 = Instant::now();
        playhead.t0 = Some(t0);
        let buffer = &mut playhead.buffer;
        let master = self.master(&master_url).await?;
        let bandwidths: Vec<u64> = master.variants.iter().map(|v| v.bandwidth).collect();
        let mut abr = Abr::new(&scenario.abr);
        let mut rung = abr.choose(&bandwidths);
        let mut media = self.media(&master.variants[rung].uri).await?;
        let audio = match master.audio_for(&master.variants[rung]).and_then(|a| a.uri.clone()) {
            Some(uri) => Some(self.media(&uri).await?),
            None => None,
        };
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
            if want != rung {
                media = self.media(&master.variants[want].uri).await?;
                rung = want;
                sample.switches += 1;
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
                    let audio = audio_segment(self.connection.clone(), self.audience.clone(), a.clone(), j, init);
                    let (video, audio) = tokio::join!(video, audio);
                    if let Some(init) = audio? {
                        self.maps.insert(init);
                    }
                    video?
                }
                _ => video.await?,
            };
            abr.observe(got.bytes, got.total);
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

    async fn master(&mut self, url: &Url) -> Result<Master, Halt> {
        let body = self.fetch(Kind::Master, url, None, true, None).await?.body.unwrap_or_default();
        match hls::parse(&String::from_utf8_lossy(&body), url) {
            Ok(Playlist::Master(m)) => Ok(m),
            // A media playlist given as the title: one rung, already parsed.
            Ok(Playlist::Media(media)) => {
                self.playlists.insert(url.clone(), Arc::new(media));
                let only = Variant { uri: url.clone(), bandwidth: 0, resolution: None, audio: None };
                Ok(Master { variants: vec![only], audio: Vec::new() })
            }
            Err(e) => Err(self.bad_playlist(url, &e)),
        }
    }

    async fn media(&mut self, url: &Url) -> Result<Arc<Media>, Halt> {
        if let Some(m) = self.playlists.get(url) {
            return Ok(m.clone());
        }
        let body = self.fetch(Kind::Playlist, url, None, true, None).await?.body.unwrap_or_default();
        match hls::parse(&String::from_utf8_lossy(&body), url) {
            Ok(Playlist::Media(m)) => {
                let m = Arc::new(m);
                self.playlists.insert(url.clone(), m.clone());
                Ok(m)
            }
            Ok(Playlist::Master(_)) => Err(self.bad_playlist(url, "a multivariant playlist where a media one belongs")),
            Err(e) => Err(self.bad_playlist(url, &e)),
        }
    }

    fn bad_playlist(&self, url: &Url, error: &str) -> Halt {
        tracing::warn!(%url, error, "unusable playlist");
        self.audience.recorder.error("playlist");
        Halt::Failed("playlist".into())
    }

    /// A segment, tried twice: players retry a failed segment before giving up.
    async fn fetch_retrying(&self, kind: Kind, resource: &Resource, rung: &str) -> Result<Fetched, Halt> {
        let range = resource.range_header();
        match self.fetch(kind, &resource.uri, range.as_deref(), false, Some(rung)).await {
            Err(Halt::Failed(_)) => self.fetch(kind, &resource.uri, range.as_deref(), false, Some(rung)).await,
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
        fetch_on(&self.connection, &self.audience, kind, url, range, keep_body, rung).await
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

/// One request against the budget, recorded whatever happens.
async fn fetch_on(
    connection: &Connection,
    audience: &Audience,
    kind: Kind,
    url: &Url,
    range: Option<&str>,
    keep_body: bool,
    rung: Option<&str>,
) -> Result<Fetched, Halt> {
    if !audience.stop.take_request() {
        return Err(Halt::Stopped);
    }
    let limit = audience.scenario.run.request_timeout;
    let result = connection.get(Get { url, range, keep_body }, limit).await;
    audience.recorder.request(kind, &result, rung);
    match result {
        Ok(f) if (200..300).contains(&f.status) => Ok(f),
        Ok(f) => {
            tracing::debug!(%url, status = f.status, "error status");
            Err(Halt::Failed(format!("http_{}", f.status)))
        }
        Err(e) => {
            tracing::debug!(%url, kind = e.kind, error = %e.message, "request failed");
            Err(Halt::Failed(e.kind.to_owned()))
        }
    }
}

/// The audio segment `j` of `audio` (and its init section if new), fetched beside the
/// video segment for the same time as players do; returns the init section fetched.
async fn audio_segment(
    connection: Connection,
    audience: Arc<Audience>,
    audio: Arc<Media>,
    j: usize,
    init: Option<Resource>,
) -> Result<Option<Resource>, Halt> {
    if let Some(init) = &init {
        fetch_on(&connection, &audience, Kind::Init, &init.uri, init.range_header().as_deref(), false, None).await?;
    }
    let segment = &audio.segments[j].resource;
    fetch_on(&connection, &audience, Kind::Audio, &segment.uri, segment.range_header().as_deref(), false, None).await?;
    Ok(init)
}

/// Whether two URLs name the same scheme, host and port.
fn same_host(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}
