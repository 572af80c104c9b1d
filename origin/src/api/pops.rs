//! PoP heartbeats (P16, P19): a PoP reports what its viewers ask for and how it is doing (its
//! public URL, load, errors, whether it takes uploads: what content steering ranks by); the
//! origin answers with the takedowns it must purge, the first segments of what is popular in
//! its region and the opening minute of what is rising there (`placement`: so the PoP can
//! fetch them before its viewers do), the tier verifiers of every enabled PoP (so a parent
//! PoP can check its children) and the URLs of the live PoPs (so its pages let players follow
//! steering to them).

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use futures_util::TryStreamExt;
use http::StatusCode;
use serde::Deserialize;

use super::{require_pop, steering};
use crate::app::App;
use crate::error::Result;
use crate::meta::Video;
use crate::meta::ondemand::RungState;
use crate::meta::pops::PopStatus;
use crate::placement::{self, Openings, Pick, Shape, Stored};
use crate::web::{self, Request, Response};

#[derive(Deserialize)]
struct Report {
    pop: String,
    #[serde(default)]
    top: Vec<Popular>,
    /// Requests per video since the PoP's previous heartbeat: what demand adds up.
    #[serde(default)]
    delta: Vec<Popular>,
    #[serde(default)]
    purges_after: i64,
    /// The PoP's public base URL for viewers (`scheme://host[:port]`).
    #[serde(default)]
    url: Option<String>,
    /// Its heartbeat interval: how soon a missing beat means it is gone.
    #[serde(default)]
    every_ms: u64,
    /// Its utilisation (open connections / cap), 0 to 1.
    #[serde(default)]
    load: f64,
    /// Viewer requests since its previous acknowledged heartbeat.
    #[serde(default)]
    requests: u64,
    /// Of those, answered with a 5xx.
    #[serde(default)]
    failed: u64,
    /// Whether it takes tus uploads.
    #[serde(default)]
    uploads: bool,
    /// Whether it prefetches (PoPs that do not say so do).
    #[serde(default = "prefetches")]
    prefetch: bool,
    /// The version of the tier list it holds: the list is sent only when it changed.
    #[serde(default)]
    tiers_version: Option<String>,
}

fn prefetches() -> bool {
    true
}

#[derive(Deserialize)]
struct Popular {
    video: String,
    requests: u64,
}

/// The most requests one report counts for one title.
const MAX_REPORTED_REQUESTS: u64 = 1 << 32;
/// Titles of one report that are counted.
const REPORTED_VIDEOS: usize = 100;
/// The longest heartbeat interval a PoP may claim: it bounds how long a dead PoP can stay
/// steered to (two intervals), so a PoP cannot keep its viewers with a huge one.
const MAX_EVERY_MS: u64 = 60_000;

/// Records a region's report and picks what its PoPs warm (`placement::choose`: the rising
/// titles, then the decayed ranking), from the database every node shares, so every node
/// picks the same.
async fn popular(app: &App, region: &str, top: &[Popular], now: i64) -> Result<Vec<Pick>> {
    let minute = now / 60_000;
    let counts: Vec<(String, u64)> = top
        .iter()
        .filter(|p| crate::sign::is_safe_name(&p.video))
        .take(REPORTED_VIDEOS)
        // A PoP's report cannot overflow a region's count.
        .map(|p| (p.video.clone(), p.requests.min(MAX_REPORTED_REQUESTS)))
        .collect();
    app.pops.add_popularity(region, minute, &counts).await?;
    app.pops.forget_popularity(region, minute - placement::HORIZON_MINUTES).await?;
    let rows = app.pops.popularity(region, minute - placement::HORIZON_MINUTES).await?;
    // Without openings nothing is told apart as rising: the decayed ranking, as before.
    let rising = if app.config.steering.prefetch_opening_secs == 0 { 0 } else { placement::RISING_TITLES };
    Ok(placement::choose(&rows, placement::Clock::at(now), rising))
}

/// `POST /v1/pops/heartbeat`
pub async fn heartbeat(app: &Arc<App>, req: Request) -> Result<Response> {
    let pop = require_pop(app, &req).await?;
    let report: Report = web::read_json(req).await?;
    if report.pop != pop.id {
        return Err(crate::error::Error::forbidden("wrong_pop", "a PoP reports under its own id only"));
    }
    let now = crate::meta::now();
    // The registry's region, not the report's: a PoP cannot steer another region's prefetch.
    let region = pop.region.clone();
    for p in report.delta.iter().filter(|p| crate::sign::is_safe_name(&p.video)).take(10_000) {
        app.jit.demand.count(&p.video, p.requests);
    }
    let mut prefetch = Vec::new();
    // Popularity is an optimisation: without it the PoP still gets its purges.
    let popular = popular(app, &region, &report.top, now).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, %region, "regional popularity unavailable");
        Vec::new()
    });
    // A PoP that does not prefetch is not sent the list: at a beat every few seconds per PoP,
    // it would be most of the origin's egress while nobody watches.
    let mut budget = placement::OPENING_KEYS_PER_BEAT;
    for pick in popular.into_iter().filter(|_| report.prefetch) {
        let Some(video) = warmable(app, &pick.video).await? else { continue };
        prefetch.extend(first_segments(app, &video));
        if pick.rising {
            // Openings are an optimisation on top: without one the PoP still gets the rest.
            let page = opening(app, &pop.id, &video, budget).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, video = %video.id, "opening left out of the heartbeat answer");
                Vec::new()
            });
            budget -= page.len();
            prefetch.extend(page);
        }
    }
    // Steering is an optimisation too: a status not recorded leaves the PoP's previous one.
    if let Err(e) = app.pops.record_status(&status(&pop.id, &report, now)).await {
        tracing::warn!(error = %e, pop = %pop.id, "PoP status not recorded");
    }
    let purges = app.meta.purges_after(report.purges_after).await?;
    let next = purges.last().map_or(report.purges_after, |p| p.0);
    // What placement added to this answer, beside the short lists.
    let opening_keys = placement::OPENING_KEYS_PER_BEAT - budget;
    tracing::debug!(pop = %pop.id, %region, prefetch = prefetch.len(), opening_keys, purges = purges.len(), "heartbeat");
    let purges: Vec<_> =
        purges.into_iter().map(|(seq, video)| serde_json::json!({ "seq": seq, "video": video })).collect();
    let mut answer = serde_json::json!({
        "prefetch": prefetch, "purges": purges, "next": next, "region": region, "partner": pop.partner,
    });
    // Tiers and peers are best effort like popularity: without them the PoP keeps what it has
    // and still gets its purges, which decide whether it may serve at all.
    match app.steering.inputs(app).await {
        Ok(inputs) => {
            let tiers = steering::tiers(&inputs.registry);
            let version = steering::tiers_version(&tiers);
            if report.tiers_version.as_deref() != Some(version.as_str()) {
                answer["tiers"] = serde_json::json!(tiers);
            }
            answer["tiers_version"] = serde_json::json!(version);
            answer["pops"] = serde_json::json!(steering::page_urls(app, &inputs));
        }
        Err(e) => tracing::warn!(error = %e, pop = %pop.id, "tiers and peers left out of the heartbeat answer"),
    }
    Ok(web::json(StatusCode::OK, &answer))
}

/// What a report says about its PoP, bounded: a PoP is trusted with its own numbers, not
/// with values that would break the ranking or the database.
fn status(pop: &str, report: &Report, now: i64) -> PopStatus {
    let url = report.url.as_deref().and_then(|url| match base_url(url) {
        Ok(url) => Some(url),
        Err(why) => {
            // The reason, not the URL: a URL with user info would put a password in the logs.
            tracing::warn!(pop, why, "PoP reported an unusable URL; it is not steered to");
            None
        }
    });
    let requests = report.requests.min(MAX_REPORTED_REQUESTS);
    PopStatus {
        pop: pop.to_owned(),
        url,
        every_ms: report.every_ms.min(MAX_EVERY_MS),
        load: if report.load.is_finite() { report.load.clamp(0.0, 1.0) } else { 1.0 },
        requests,
        failed: report.failed.min(requests),
        uploads: report.uploads,
        beat_at: now,
    }
}

/// A PoP's public base URL as `scheme://host[:port]`: http(s), a host, and nothing else (no
/// path, query, fragment or user info), since it is spliced into playback URLs and
/// steering manifests.
fn base_url(raw: &str) -> std::result::Result<String, &'static str> {
    let url = url::Url::parse(raw).map_err(|_| "not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("not http or https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("user info");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("a path, query or fragment");
    }
    Ok(url.origin().ascii_serialization())
}

/// A video that may be warmed: ready, so never one still processing, failed or taken down
/// (a takedown forgets the cached metadata, so the next beat sees it).
async fn warmable(app: &App, video: &str) -> Result<Option<Video>> {
    let v = crate::cache::video(app.cache.as_ref(), app.meta.as_ref(), video).await?;
    Ok(v.filter(|v| v.state.is_servable()))
}

/// Cache keys (`{video}/{path}`) of the objects a player needs first.
fn first_segments(app: &App, v: &Video) -> Vec<String> {
    let video = &v.id;
    let protection = app.config.protection;
    let openings = u64::from(app.config.on_demand.opening_segments);
    let mut keys = vec![format!("{video}/{}", encoder::layout::MASTER_PLAYLIST)];
    if protection.writes_cbcs() {
        keys.push(format!("{video}/{}", encoder::layout::DASH_MANIFEST));
    }
    for &tree in crate::ondemand::trees(protection) {
        let at = format!("{video}/{}", crate::ondemand::tree_prefix(tree));
        if protection == encoder::task::Protection::Both && tree == encoder::layout::Tree::Cbcs {
            keys.push(format!("{at}{}", encoder::layout::MASTER_PLAYLIST));
        }
        for r in &v.renditions {
            keys.push(format!("{at}{}/{}", r.name, encoder::layout::MEDIA_PLAYLIST));
            keys.push(format!("{at}{}/{}", r.name, encoder::layout::INIT_SEGMENT));
            // An on-demand rung's stored opening, not more: a prefetch must not cost encodes.
            let stored = if r.on_demand { openings.min(placement::SHORT_SEGMENTS) } else { placement::SHORT_SEGMENTS };
            keys.extend((0..stored).map(|n| format!("{at}{}/{}", r.name, encoder::layout::segment_name(n as usize))));
        }
    }
    keys
}

/// This process's memo of openings sent and videos' shapes.
fn memo() -> MutexGuard<'static, Openings> {
    static MEMO: LazyLock<Mutex<Openings>> = LazyLock::new(Mutex::default);
    MEMO.lock().expect("placement memo")
}

/// The next page of `video`'s opening for `pop`, at most `budget` keys; empty once the PoP
/// has been sent all of it (until it is due again).
async fn opening(app: &App, pop: &str, video: &Video, budget: usize) -> Result<Vec<String>> {
    let now = Instant::now();
    let Some(shape) = shape(app, video, now).await? else { return Ok(Vec::new()) };
    let from = memo().from(pop, &video.id, now);
    if shape.done(from) {
        return Ok(Vec::new());
    }
    let (keys, next) = shape.page(&video.id, from, budget);
    memo().record(pop, &video.id, from, next, now);
    Ok(keys)
}

/// What `video`'s opening is made of (`None`: nothing past the short list), looked up at
/// most once per `placement::SHAPE_TTL` in this process: every PoP of a crowd's region beats
/// every few seconds.
async fn shape(app: &App, video: &Video, now: Instant) -> Result<Option<Arc<Shape>>> {
    if let Some(shape) = memo().shape(&video.id, now) {
        return Ok(shape);
    }
    let shape = look_up_shape(app, video).await?.map(Arc::new);
    memo().keep_shape(&video.id, shape.clone(), now);
    Ok(shape)
}

/// The segment count (every ready video's rungs record it), the segment duration (the
/// on-demand plan's, else derived from the duration) and what each on-demand rung has stored.
async fn look_up_shape(app: &App, video: &Video) -> Result<Option<Shape>> {
    let rungs = app.ondemand.rungs(&video.id).await?;
    let segments = rungs.iter().map(|r| r.segments).max().unwrap_or(0);
    let planned = app.jit.plan(app, &video.id).await?.map(|p| p.segment_seconds);
    let Some(seconds) = placement::segment_seconds(planned, video.duration, segments) else { return Ok(None) };
    let opening = placement::opening_segments(seconds, app.config.steering.prefetch_opening_secs, segments);
    if opening <= placement::SHORT_SEGMENTS {
        return Ok(None);
    }
    let mut renditions = Vec::new();
    for r in &video.renditions {
        let state = rungs.iter().find(|s| s.name == r.name).map(|s| s.state);
        let stored = match state {
            _ if !r.on_demand => Stored::All,
            Some(RungState::Floor | RungState::Materialised) => Stored::All,
            _ => Stored::Only(stored_segments(app, &video.id, &r.name, opening).await?),
        };
        renditions.push((r.name.clone(), stored));
    }
    let trees = crate::ondemand::trees(app.config.protection).iter().map(|&t| crate::ondemand::tree_prefix(t));
    Ok(Some(Shape { trees: trees.collect(), renditions, opening }))
}

/// Segment numbers under `opening` of a rung that are in storage (in the tree whose segments
/// are counted: one encode seals every tree).
async fn stored_segments(app: &App, video: &str, rung: &str, opening: u64) -> Result<BTreeSet<u64>> {
    let counted = crate::ondemand::trees(app.config.protection)[0];
    let prefix = format!("{}{}{rung}/", crate::storage::published(video), crate::ondemand::tree_prefix(counted));
    let mut lister = app.blobs.lister(&prefix).await?;
    let mut stored = BTreeSet::new();
    while let Some(entry) = lister.try_next().await? {
        match crate::ondemand::segment_path(&[rung, entry.name()]) {
            Some((_, _, n)) if n < opening => {
                stored.insert(n);
            }
            _ => {}
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pop_url_is_scheme_host_and_port_only() {
        assert_eq!(base_url("https://10.77.0.3:8443").unwrap(), "https://10.77.0.3:8443");
        assert_eq!(base_url("https://10.77.0.3:8443/").unwrap(), "https://10.77.0.3:8443");
        assert_eq!(base_url("HTTPS://Pop.Example:443").unwrap(), "https://pop.example", "default port dropped");
        assert_eq!(base_url("http://[2001:db8::1]:8080").unwrap(), "http://[2001:db8::1]:8080");
        for (bad, why) in [
            ("ftp://pop.example", "not http or https"),
            ("https://pop.example/videos", "a path, query or fragment"),
            ("https://pop.example/?a=1", "a path, query or fragment"),
            ("https://pop.example/#x", "a path, query or fragment"),
            ("https://user:pw@pop.example", "user info"),
            ("pop.example:8443", "not http or https"),
            ("not a url", "not a URL"),
        ] {
            assert_eq!(base_url(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn a_report_is_bounded_before_it_is_recorded() {
        let report: Report = serde_json::from_value(serde_json::json!({
            "pop": "p", "url": "https://p.example/x", "every_ms": 999_999_999u64, "load": 7.5,
            "requests": 10, "failed": 50, "uploads": true,
        }))
        .unwrap();
        let s = status("p", &report, 42);
        assert_eq!((s.url, s.every_ms, s.load, s.requests, s.failed), (None, MAX_EVERY_MS, 1.0, 10, 10));
        assert!(s.uploads && s.beat_at == 42);
        let old: Report = serde_json::from_value(serde_json::json!({"pop": "p"})).unwrap();
        let s = status("p", &old, 1);
        assert_eq!((s.url, s.every_ms, s.load, s.requests, s.uploads), (None, 0, 0.0, 0, false), "an older PoP");
    }
}
