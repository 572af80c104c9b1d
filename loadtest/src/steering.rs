//! HLS content steering, followed as hls.js follows it (the HLS Content Steering
//! specification, RFC 8216bis `EXT-X-CONTENT-STEERING`): a player starts on the pathway its
//! multivariant playlist names, loads the steering manifest from SERVER-URI (with
//! `_HLS_pathway` and `_HLS_throughput`), loads it again every TTL from RELOAD-URI, adds the
//! manifest's PATHWAY-CLONES (a pathway's URIs with another HOST, or more PARAMS) and moves
//! to the first pathway of PATHWAY-PRIORITY that is not penalised. A request that fails at
//! the network level or with a 5xx penalises its pathway (five minutes, as hls.js) and is
//! sent again at once on the best pathway left.
//!
//! [`Pathways`] is the pure half: what one player believes, and where a URL goes on a
//! pathway. [`Steerer`] is one viewer's: that state shared by its requests, and the task that
//! reloads the manifest.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::hls::{Master, SteeringTag};
use crate::record::{Recorder, SteeringEvent};

/// How long hls.js avoids a pathway that failed a request.
pub const PENALTY: Duration = Duration::from_secs(300);
/// When a manifest gives no TTL, or none loaded yet, the next load is this far off (hls.js).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The shortest reload interval followed, whatever TTL a manifest gives.
const MIN_TTL: Duration = Duration::from_secs(1);

/// A steering manifest (`VERSION` 1). Unknown keys are ignored, as the specification asks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Manifest {
    /// Must be 1.
    #[serde(rename = "VERSION")]
    pub version: u64,
    /// Seconds until the player should load it again.
    #[serde(rename = "TTL", default)]
    pub ttl: Option<f64>,
    /// Where to load it next, relative to where it was loaded from.
    #[serde(rename = "RELOAD-URI", default)]
    pub reload_uri: Option<String>,
    /// Pathway ids, best first.
    #[serde(rename = "PATHWAY-PRIORITY", default)]
    pub priority: Option<Vec<String>>,
    /// Pathways made from others.
    #[serde(rename = "PATHWAY-CLONES", default)]
    pub clones: Vec<PathwayClone>,
}

/// One `PATHWAY-CLONES` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PathwayClone {
    /// The pathway copied.
    #[serde(rename = "BASE-ID")]
    pub base: String,
    /// The new pathway's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// What changes in the copied URIs.
    #[serde(rename = "URI-REPLACEMENT", default)]
    pub replacement: Replacement,
}

/// `URI-REPLACEMENT` (`PER-VARIANT-URIS` and `PER-RENDITION-URIS` are not followed).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Replacement {
    /// `host[:port]` put in place of the URI's.
    #[serde(rename = "HOST", default)]
    pub host: Option<String>,
    /// Query parameters set on the URI.
    #[serde(rename = "PARAMS", default)]
    pub params: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses a manifest; anything but `VERSION` 1 is refused (hls.js ignores it).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let m: Self = serde_json::from_slice(body).map_err(|e| format!("not a steering manifest: {e}"))?;
        if m.version != 1 {
            return Err(format!("steering manifest VERSION {} (only 1 is known)", m.version));
        }
        Ok(m)
    }

    /// How long until the next load: TTL (at least a second), else [`DEFAULT_TTL`].
    pub fn ttl(&self) -> Duration {
        self.ttl
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map_or(DEFAULT_TTL, |t| Duration::from_secs_f64(t.min(86_400.0)).max(MIN_TTL))
    }

    /// Where to load it next: RELOAD-URI resolved against `loaded_from`, else `uri` again.
    pub fn next_uri(&self, uri: &Url, loaded_from: &Url) -> Url {
        self.reload_uri.as_deref().and_then(|r| loaded_from.join(r).ok()).unwrap_or_else(|| uri.clone())
    }
}

/// The URL a manifest is asked for at: `uri` with `_HLS_pathway` (the pathway the player is
/// on) and `_HLS_throughput` (its bandwidth estimate, bit/s) set.
pub fn request_url(uri: &Url, pathway: &str, throughput: u64) -> Url {
    let mut url = uri.clone();
    set_params(&mut url, [("_HLS_pathway", pathway), ("_HLS_throughput", &throughput.to_string())]);
    url
}

/// Sets query parameters as `URLSearchParams.set` does: the first of a name replaced (the
/// rest of that name dropped), a new name appended.
fn set_params<'a>(url: &mut Url, params: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    for (name, value) in params {
        match pairs.iter().position(|(k, _)| k == name) {
            Some(i) => {
                pairs[i].1 = value.to_owned();
                let mut seen = 0;
                pairs.retain(|(k, _)| {
                    seen += usize::from(k == name);
                    k != name || seen == 1
                });
            }
            None => pairs.push((name.to_owned(), value.to_owned())),
        }
    }
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
}

/// `host[:port]` of a URL, the port only when the URL names one: what a clone's HOST
/// replaces, and how the report names the server that answered.
pub fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    }
}

/// `url` with its host (and port, when `host` has one) taken from `host` (`name[:port]`).
/// WHATWG's `URL.host` setter, which hls.js uses, keeps the port when the new host has none.
fn set_authority(url: &mut Url, host: &str) {
    let Ok(parsed) = Url::parse(&format!("http://{host}")) else { return };
    let Some(name) = parsed.host_str() else { return };
    if url.set_host(Some(name)).is_ok()
        && let Some(port) = parsed.port()
    {
        let _ = url.set_port(Some(port));
    }
}

/// What one player knows of its pathways. Times are passed in, so every rule is testable.
#[derive(Debug, Clone)]
pub struct Pathways {
    /// The pathway the ladder's URIs are on.
    base: String,
    /// Clones by id: the replacements taking the base pathway's URIs to the clone's, in order
    /// (a clone of a clone has two).
    clones: BTreeMap<String, Vec<Replacement>>,
    priority: Vec<String>,
    penalised: HashMap<String, Instant>,
    current: String,
    penalty: Duration,
}

impl Pathways {
    /// On `base`, the pathway of the multivariant playlist's ladder, before any manifest.
    pub fn new(base: &str, penalty: Duration) -> Self {
        Self {
            base: base.to_owned(),
            clones: BTreeMap::new(),
            priority: Vec::new(),
            penalised: HashMap::new(),
            current: base.to_owned(),
            penalty,
        }
    }

    /// The pathway requests go to now.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Whether a pathway has URIs: the base, or a clone made from a known pathway.
    pub fn is_known(&self, id: &str) -> bool {
        id == self.base || self.clones.contains_key(id)
    }

    fn chain(&self, id: &str) -> Option<&[Replacement]> {
        if id == self.base { Some(&[]) } else { self.clones.get(id).map(Vec::as_slice) }
    }

    /// A manifest loaded at `now`: its clones are added (in order, so a clone may copy one
    /// listed before it; an id already known, or a clone of an unknown pathway, is skipped
    /// as hls.js does), and with a PATHWAY-PRIORITY the pathway is chosen again. Returns
    /// whether the current pathway changed.
    pub fn apply(&mut self, manifest: &Manifest, now: Instant) -> bool {
        for clone in &manifest.clones {
            if self.is_known(&clone.id) {
                continue;
            }
            let Some(chain) = self.chain(&clone.base) else { continue };
            let mut chain = chain.to_vec();
            chain.push(clone.replacement.clone());
            self.clones.insert(clone.id.clone(), chain);
        }
        let before = self.current.clone();
        if let Some(priority) = &manifest.priority {
            self.priority.clone_from(priority);
            self.choose(now);
        }
        before != self.current
    }

    /// A request on `pathway` failed at the network level or with a 5xx at `now`: the
    /// pathway is penalised (from its first failure) and, when the manifest lists more than
    /// one, the best one left is chosen. Returns the pathway to send the request to again,
    /// when it is another one.
    pub fn penalise(&mut self, pathway: &str, now: Instant) -> Option<String> {
        self.penalised.entry(pathway.to_owned()).or_insert(now);
        if self.priority.len() > 1 {
            self.choose(now);
        }
        (self.current != pathway && !self.penalised.contains_key(&self.current)).then(|| self.current.clone())
    }

    /// hls.js's `updatePathwayPriority`: penalties older than the penalty time are forgiven;
    /// then the first pathway of the priority that is not penalised is kept if it is the
    /// current one, else moved to when it has URIs. With none, the pathway stays.
    fn choose(&mut self, now: Instant) {
        let penalty = self.penalty;
        self.penalised.retain(|_, at| now.saturating_duration_since(*at) <= penalty);
        for id in &self.priority {
            if self.penalised.contains_key(id) {
                continue;
            }
            if *id == self.current {
                return;
            }
            if self.is_known(id) {
                self.current.clone_from(id);
                return;
            }
        }
    }

    /// Where `url`, as the ladder's pathway has it, is on pathway `id`. A `playlist` (a
    /// variant's or rendition's URI) is rewritten whole, HOST and PARAMS, as hls.js rewrites
    /// a cloned variant's URI. Anything else (segments, init sections, keys) is in practice
    /// relative to its playlist, so it moves with the playlist's host when it is on
    /// `home_host` (the multivariant playlist's) and stays where it is otherwise. An unknown
    /// pathway leaves the URL alone.
    pub fn locate(&self, id: &str, url: &Url, home_host: &str, playlist: bool) -> Url {
        let Some(chain) = self.chain(id) else { return url.clone() };
        let relative = authority(url) == home_host;
        let mut out = url.clone();
        for r in chain {
            if let Some(host) = &r.host
                && (playlist || relative)
            {
                set_authority(&mut out, host);
            }
            if playlist && !r.params.is_empty() {
                set_params(&mut out, r.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
        }
        out
    }
}

/// What a viewer's steering needs from the run.
#[derive(Debug, Clone)]
pub struct Context {
    /// The client manifests are loaded with (the steering server is not the PoP under test).
    pub client: reqwest::Client,
    /// Where failovers, switches and manifest loads are counted.
    pub recorder: Arc<Recorder>,
    /// How long a failed pathway is avoided.
    pub penalty: Duration,
    /// One manifest request's time limit.
    pub timeout: Duration,
}

/// One viewer's steering: the pathway state its requests share, and the task that loads
/// the manifest now and every TTL after (stopped when the viewer drops this).
#[derive(Debug)]
pub struct Steerer {
    state: Arc<Mutex<Pathways>>,
    home_host: String,
    throughput: Arc<AtomicU64>,
    recorder: Arc<Recorder>,
    reloads: JoinHandle<()>,
}

impl Drop for Steerer {
    fn drop(&mut self) {
        self.reloads.abort();
    }
}

impl Steerer {
    /// Starts following `tag` of `master` (loaded from `master_url`): the first manifest load
    /// starts at once, beside the playlists, as in hls.js.
    pub fn start(tag: &SteeringTag, master: &Master, master_url: &Url, throughput: f64, context: Context) -> Self {
        let state = Arc::new(Mutex::new(Pathways::new(&master.pathway, context.penalty)));
        let estimate = Arc::new(AtomicU64::new(throughput.max(0.0) as u64));
        let recorder = context.recorder.clone();
        let reloads = tokio::spawn(reload(tag.server_uri.clone(), state.clone(), estimate.clone(), context));
        Self { state, home_host: authority(master_url), throughput: estimate, recorder, reloads }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pathways> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pathway requests go to now.
    pub fn current(&self) -> String {
        self.lock().current().to_owned()
    }

    /// `url` (as the ladder has it) on `pathway`; see [`Pathways::locate`].
    pub fn locate(&self, pathway: &str, url: &Url, playlist: bool) -> Url {
        self.lock().locate(pathway, url, &self.home_host, playlist)
    }

    /// A request on `pathway` failed: penalise it; the pathway to try the request on next,
    /// when there is another.
    pub fn failed(&self, pathway: &str) -> Option<String> {
        let (before, next, after) = {
            let mut s = self.lock();
            let before = s.current().to_owned();
            let next = s.penalise(pathway, Instant::now());
            (before, next, s.current().to_owned())
        };
        if before != after {
            tracing::debug!(from = before, to = after, "pathway penalised; moved");
            self.recorder.steering(SteeringEvent::Switch);
        }
        next
    }

    /// The player's bandwidth estimate, sent with the next manifest request.
    pub fn set_throughput(&self, bits_per_second: f64) {
        self.throughput.store(bits_per_second.max(0.0) as u64, Ordering::Relaxed);
    }
}

/// Why a manifest load failed.
enum LoadError {
    /// 410: the server ended steering for this player (hls.js stops asking).
    Gone,
    Other(String),
}

/// Loads the manifest, applies it and sleeps its TTL, until the viewer leaves (the task is
/// aborted) or the server answers 410. A failed load keeps the last manifest and waits the
/// last TTL, as hls.js does.
async fn reload(mut uri: Url, state: Arc<Mutex<Pathways>>, throughput: Arc<AtomicU64>, context: Context) {
    let mut ttl = DEFAULT_TTL;
    let lock = || state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let pathway = lock().current().to_owned();
        let url = request_url(&uri, &pathway, throughput.load(Ordering::Relaxed));
        match load(&context, &url).await {
            Ok(manifest) => {
                let changed = lock().apply(&manifest, Instant::now());
                context.recorder.steering(SteeringEvent::Manifest);
                if changed {
                    context.recorder.steering(SteeringEvent::Switch);
                }
                uri = manifest.next_uri(&uri, &url);
                ttl = manifest.ttl();
            }
            Err(LoadError::Gone) => {
                context.recorder.steering(SteeringEvent::ManifestError);
                return;
            }
            Err(LoadError::Other(e)) => {
                tracing::debug!(%url, error = e, "steering manifest not loaded");
                context.recorder.steering(SteeringEvent::ManifestError);
            }
        }
        tokio::time::sleep(ttl).await;
    }
}

async fn load(context: &Context, url: &Url) -> Result<Manifest, LoadError> {
    let response = context
        .client
        .get(url.clone())
        .timeout(context.timeout)
        .send()
        .await
        .map_err(|e| LoadError::Other(e.to_string()))?;
    let status = response.status().as_u16();
    if status == 410 {
        return Err(LoadError::Gone);
    }
    let body = response.bytes().await.map_err(|e| LoadError::Other(e.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(LoadError::Other(format!("status {status}")));
    }
    Manifest::parse(&body).map_err(LoadError::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// What the origin answers a viewer of region r1 (`origin::steering::manifest`).
    const ORIGIN: &str = r#"{"VERSION":1,"TTL":4,"RELOAD-URI":"http://10.77.0.1:8080/v1/steering/vid",
        "PATHWAY-PRIORITY":["r1-pop-a","r1-pop-b","r2-pop-a","home"],
        "PATHWAY-CLONES":[
            {"BASE-ID":"home","ID":"r1-pop-a","URI-REPLACEMENT":{"HOST":"10.77.0.3:8081"}},
            {"BASE-ID":"home","ID":"r1-pop-b","URI-REPLACEMENT":{"HOST":"10.77.0.4:8081"}},
            {"BASE-ID":"home","ID":"r2-pop-a","URI-REPLACEMENT":{"HOST":"10.77.0.7:8081"}}]}"#;

    #[test]
    fn manifests_parse_with_their_defaults() {
        let m = Manifest::parse(ORIGIN.as_bytes()).unwrap();
        assert_eq!(m.ttl(), Duration::from_secs(4));
        assert_eq!(m.priority.as_ref().unwrap()[0], "r1-pop-a");
        assert_eq!(m.clones[1].replacement.host.as_deref(), Some("10.77.0.4:8081"));
        let from = url("http://10.77.0.1:8080/v1/steering/vid?_HLS_pathway=home&_HLS_throughput=1");
        assert_eq!(m.next_uri(&from, &from).as_str(), "http://10.77.0.1:8080/v1/steering/vid");

        // Relative RELOAD-URI, no TTL, unknown keys: all fine.
        let m = Manifest::parse(br#"{"VERSION":1,"RELOAD-URI":"next?s=2","X-NEW":true}"#).unwrap();
        assert_eq!(m.ttl(), DEFAULT_TTL);
        assert_eq!(m.next_uri(&from, &from).as_str(), "http://10.77.0.1:8080/v1/steering/next?s=2");
        assert!(m.priority.is_none() && m.clones.is_empty());
        let m = Manifest::parse(br#"{"VERSION":1}"#).unwrap();
        assert_eq!(m.next_uri(&from, &url("http://x/y")), from, "no RELOAD-URI: the same URI again");
        assert_eq!(Manifest::parse(br#"{"VERSION":1,"TTL":0}"#).unwrap().ttl(), MIN_TTL);

        assert!(Manifest::parse(br#"{"VERSION":2}"#).unwrap_err().contains("VERSION 2"));
        assert!(Manifest::parse(b"<html>").is_err());
    }

    #[test]
    fn manifest_requests_carry_pathway_and_throughput() {
        let u = request_url(&url("http://o:8080/v1/steering/vid"), "home", 1_500_000);
        assert_eq!(u.as_str(), "http://o:8080/v1/steering/vid?_HLS_pathway=home&_HLS_throughput=1500000");
        // Set, not appended: a reload URI that already has them gets them replaced.
        let u = request_url(&url("http://o/s?a=1&_HLS_pathway=x&_HLS_pathway=y"), "r1-pop-b", 7);
        assert_eq!(u.as_str(), "http://o/s?a=1&_HLS_pathway=r1-pop-b&_HLS_throughput=7");
    }

    #[test]
    fn the_first_usable_pathway_of_the_priority_is_chosen() {
        let now = Instant::now();
        let mut p = Pathways::new("home", PENALTY);
        assert_eq!(p.current(), "home");
        assert!(p.apply(&Manifest::parse(ORIGIN.as_bytes()).unwrap(), now));
        assert_eq!(p.current(), "r1-pop-a");
        // The same manifest again: no move.
        assert!(!p.apply(&Manifest::parse(ORIGIN.as_bytes()).unwrap(), now));

        // A pathway without URIs (no clone, not the base) is passed over.
        let m = Manifest {
            version: 1,
            priority: Some(vec!["nowhere".into(), "r1-pop-b".into(), "home".into()]),
            ..Manifest::default()
        };
        assert!(p.apply(&m, now));
        assert_eq!(p.current(), "r1-pop-b", "clones from earlier manifests are kept");

        // The current pathway dropped from the priority: the first usable one.
        let m = Manifest { version: 1, priority: Some(vec!["home".into()]), ..Manifest::default() };
        assert!(p.apply(&m, now));
        assert_eq!(p.current(), "home");
        // A manifest without priority moves nothing.
        assert!(!p.apply(&Manifest { version: 1, ..Manifest::default() }, now));
    }

    #[test]
    fn clones_replace_the_host_and_set_params() {
        let now = Instant::now();
        let mut p = Pathways::new("home", PENALTY);
        let m = Manifest::parse(
            br#"{"VERSION":1,"PATHWAY-PRIORITY":["b"],"PATHWAY-CLONES":[
                {"BASE-ID":"home","ID":"a","URI-REPLACEMENT":{"HOST":"pop-a.example:8443","PARAMS":{"cdn":"a"}}},
                {"BASE-ID":"a","ID":"b","URI-REPLACEMENT":{"HOST":"pop-b.example"}},
                {"BASE-ID":"unknown","ID":"c","URI-REPLACEMENT":{"HOST":"c"}},
                {"BASE-ID":"home","ID":"a","URI-REPLACEMENT":{"HOST":"again"}}]}"#,
        )
        .unwrap();
        p.apply(&m, now);
        assert!(p.is_known("a") && p.is_known("b") && !p.is_known("c"), "a clone of nothing has no URIs");
        let home = "pop.example:8081";
        let playlist = url("http://pop.example:8081/p/tok/vid/360p/index.m3u8?t=1");
        let segment = url("http://pop.example:8081/p/tok/vid/360p/seg_00001.m4s");
        let elsewhere = url("https://keys.example/v1/keys/vid");

        // `a` was added once: the later entry with the same id did not replace it.
        assert_eq!(
            p.locate("a", &playlist, home, true).as_str(),
            "http://pop-a.example:8443/p/tok/vid/360p/index.m3u8?t=1&cdn=a"
        );
        // Segments follow the host, not the params (they are relative to the playlist).
        assert_eq!(
            p.locate("a", &segment, home, false).as_str(),
            "http://pop-a.example:8443/p/tok/vid/360p/seg_00001.m4s"
        );
        // A clone of a clone: both replacements, and a HOST without a port keeps the port.
        assert_eq!(
            p.locate("b", &playlist, home, true).as_str(),
            "http://pop-b.example:8443/p/tok/vid/360p/index.m3u8?t=1&cdn=a"
        );
        // A URL on another host stays there unless it is a playlist; the base and unknown
        // pathways leave every URL alone.
        assert_eq!(p.locate("a", &elsewhere, home, false), elsewhere);
        assert_eq!(p.locate("home", &playlist, home, true), playlist);
        assert_eq!(p.locate("c", &segment, home, false), segment);
    }

    #[test]
    fn a_failed_pathway_is_penalised_until_the_penalty_expires() {
        let t0 = Instant::now();
        let mut p = Pathways::new("home", Duration::from_secs(300));
        p.apply(&Manifest::parse(ORIGIN.as_bytes()).unwrap(), t0);
        assert_eq!(p.current(), "r1-pop-a");

        // r1-pop-a fails: retry on r1-pop-b at once.
        assert_eq!(p.penalise("r1-pop-a", t0).as_deref(), Some("r1-pop-b"));
        assert_eq!(p.current(), "r1-pop-b");
        // The audio request that failed on r1-pop-a at the same time goes to r1-pop-b too,
        // and the first failure's time is kept.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.penalise("r1-pop-a", later).as_deref(), Some("r1-pop-b"));
        // A manifest reload within the penalty does not bring r1-pop-a back.
        p.apply(&Manifest::parse(ORIGIN.as_bytes()).unwrap(), t0 + Duration::from_secs(299));
        assert_eq!(p.current(), "r1-pop-b");
        // After it, the next reload does (hls.js forgives at reload time, not on a timer).
        assert!(p.apply(&Manifest::parse(ORIGIN.as_bytes()).unwrap(), t0 + Duration::from_secs(301)));
        assert_eq!(p.current(), "r1-pop-a");
    }

    #[test]
    fn with_every_pathway_penalised_the_request_is_not_retried() {
        let t0 = Instant::now();
        let mut p = Pathways::new("home", PENALTY);
        let m = Manifest::parse(
            br#"{"VERSION":1,"PATHWAY-PRIORITY":["a","home"],
                "PATHWAY-CLONES":[{"BASE-ID":"home","ID":"a","URI-REPLACEMENT":{"HOST":"a"}}]}"#,
        )
        .unwrap();
        p.apply(&m, t0);
        assert_eq!(p.penalise("a", t0).as_deref(), Some("home"));
        assert_eq!(p.penalise("home", t0), None, "nowhere left: the failure stands");
        assert_eq!(p.current(), "home", "and the pathway stays");

        // Before any manifest there is nowhere to go either.
        let mut fresh = Pathways::new("home", PENALTY);
        assert_eq!(fresh.penalise("home", t0), None);
        // Nor with a one-pathway priority (hls.js only re-chooses with more than one).
        let mut single = Pathways::new("home", PENALTY);
        single.apply(&Manifest { version: 1, priority: Some(vec!["home".into()]), ..Manifest::default() }, t0);
        assert_eq!(single.penalise("home", t0), None);
    }

    #[test]
    fn authorities_name_the_port_only_when_the_url_does() {
        assert_eq!(authority(&url("http://10.77.0.3:8081/x")), "10.77.0.3:8081");
        assert_eq!(authority(&url("https://pop.example/x")), "pop.example");
        assert_eq!(authority(&url("http://[::1]:80/x")), "[::1]");
        let mut u = url("http://a:1/p");
        set_authority(&mut u, "[2001:db8::1]:9");
        assert_eq!(u.as_str(), "http://[2001:db8::1]:9/p");
    }
}
