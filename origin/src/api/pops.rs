//! PoP heartbeats (P16, P19): a PoP reports what its viewers ask for; the origin answers with
//! the takedowns it must purge and the first segments of what is popular in its region, so
//! the PoP can fetch them before its viewers do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use serde::Deserialize;

use super::require_pop;
use crate::app::App;
use crate::error::Result;
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
}

#[derive(Deserialize)]
struct Popular {
    video: String,
    requests: u64,
}

/// Per video: a score and when it was last updated (Unix ms).
type Scores = HashMap<String, (f64, i64)>;

/// Popularity by region: a decaying score per video.
#[derive(Debug, Default)]
pub struct RegionalPopularity {
    regions: Mutex<HashMap<String, Scores>>,
}

/// A score halves over this many milliseconds without new requests.
const HALF_LIFE_MS: f64 = 15.0 * 60.0 * 1000.0;
/// Videos a PoP is told to warm per heartbeat.
const PREFETCH_VIDEOS: usize = 10;
/// Leading segments warmed per rendition: enough to start playback and survive the first switch.
const PREFETCH_SEGMENTS: usize = 2;

impl RegionalPopularity {
    fn add(&self, region: &str, top: &[Popular], now: i64) {
        let mut regions = self.regions.lock().expect("popularity lock");
        let scores = regions.entry(region.to_owned()).or_default();
        for p in top {
            let (score, at) = scores.entry(p.video.clone()).or_insert((0.0, now));
            *score = *score * decay(now - *at) + p.requests as f64;
            *at = now;
        }
    }

    /// The region's most popular videos now, best first.
    pub fn top(&self, region: &str, n: usize, now: i64) -> Vec<String> {
        let regions = self.regions.lock().expect("popularity lock");
        let Some(scores) = regions.get(region) else { return Vec::new() };
        let mut ranked: Vec<(&String, f64)> = scores.iter().map(|(v, (s, at))| (v, s * decay(now - at))).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked.into_iter().take(n).map(|(v, _)| v.clone()).collect()
    }
}

fn decay(elapsed_ms: i64) -> f64 {
    0.5f64.powf(elapsed_ms.max(0) as f64 / HALF_LIFE_MS)
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
    app.popularity.add(&region, &report.top, now);
    for p in report.delta.iter().filter(|p| crate::sign::is_safe_name(&p.video)).take(10_000) {
        app.jit.demand.count(&p.video, p.requests);
    }
    let mut prefetch = Vec::new();
    for video in app.popularity.top(&region, PREFETCH_VIDEOS, now) {
        prefetch.extend(first_segments(app, &video).await?);
    }
    let purges = app.meta.purges_after(report.purges_after).await?;
    let next = purges.last().map_or(report.purges_after, |p| p.0);
    tracing::debug!(pop = %pop.id, %region, prefetch = prefetch.len(), purges = purges.len(), "heartbeat");
    let purges: Vec<_> =
        purges.into_iter().map(|(seq, video)| serde_json::json!({ "seq": seq, "video": video })).collect();
    let answer = serde_json::json!({
        "prefetch": prefetch, "purges": purges, "next": next, "region": region, "partner": pop.partner,
    });
    Ok(web::json(StatusCode::OK, &answer))
}

/// Cache keys (`{video}/{path}`) of the objects a player needs first.
async fn first_segments(app: &App, video: &str) -> Result<Vec<String>> {
    let Some(v) = crate::cache::video(app.cache.as_ref(), app.meta.as_ref(), video).await? else {
        return Ok(Vec::new());
    };
    if !v.state.is_servable() {
        return Ok(Vec::new());
    }
    let protection = app.config.protection;
    let openings = app.config.on_demand.opening_segments as usize;
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
            let stored = if r.on_demand { openings.min(PREFETCH_SEGMENTS) } else { PREFETCH_SEGMENTS };
            keys.extend((0..stored).map(|n| format!("{at}{}/{}", r.name, encoder::layout::segment_name(n))));
        }
    }
    Ok(keys)
}
