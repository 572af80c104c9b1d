//! PoP heartbeats (P16, P19): a PoP reports what its viewers ask for; the origin answers with
//! the takedowns it must purge and the first segments of what is popular in its region, so
//! the PoP can fetch them before its viewers do.

use std::collections::HashMap;
use std::sync::Arc;

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

/// A count halves in this many minutes.
const HALF_LIFE_MINUTES: f64 = 15.0;
/// Counts older than this (eight half-lives: under 0.4% of their weight) are dropped.
const HORIZON_MINUTES: i64 = 120;
/// The most requests one report counts for one title.
const MAX_REPORTED_REQUESTS: u64 = 1 << 32;
/// Titles of one report that are counted.
const REPORTED_VIDEOS: usize = 100;
/// Videos a PoP is told to warm per heartbeat.
const PREFETCH_VIDEOS: usize = 10;
/// Leading segments warmed per rendition: enough to start playback and survive the first switch.
const PREFETCH_SEGMENTS: usize = 2;

/// A region's most popular videos at `minute`, best first: each minute's counts weigh by
/// their age (halving every `HALF_LIFE_MINUTES`). Pure, over the database's rows, so every
/// API node ranks the same.
fn rank(counts: &[(String, i64, u64)], minute: i64, n: usize) -> Vec<String> {
    let mut scores: HashMap<&str, f64> = HashMap::new();
    for (video, at, requests) in counts {
        let age = (minute - at).max(0) as f64;
        *scores.entry(video).or_default() += *requests as f64 * 0.5f64.powf(age / HALF_LIFE_MINUTES);
    }
    let mut ranked: Vec<(&str, f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.into_iter().take(n).map(|(v, _)| v.to_owned()).collect()
}

/// Records a region's report and answers its ranking, in the database every node shares.
async fn popular(app: &App, region: &str, top: &[Popular], now: i64) -> Result<Vec<String>> {
    let minute = now / 60_000;
    let counts: Vec<(String, u64)> = top
        .iter()
        .filter(|p| crate::sign::is_safe_name(&p.video))
        .take(REPORTED_VIDEOS)
        // A PoP's report cannot overflow a region's count.
        .map(|p| (p.video.clone(), p.requests.min(MAX_REPORTED_REQUESTS)))
        .collect();
    app.pops.add_popularity(region, minute, &counts).await?;
    app.pops.forget_popularity(region, minute - HORIZON_MINUTES).await?;
    let rows = app.pops.popularity(region, minute - HORIZON_MINUTES).await?;
    Ok(rank(&rows, minute, PREFETCH_VIDEOS))
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
    for video in popular {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn count(video: &str, minute: i64, requests: u64) -> (String, i64, u64) {
        (video.to_owned(), minute, requests)
    }

    #[test]
    fn recent_requests_outweigh_old_ones_and_ties_go_by_id() {
        // 100 requests 30 minutes ago weigh 25; 30 now weigh 30.
        let counts = [count("old", 70, 100), count("new", 100, 30), count("b", 100, 5), count("a", 100, 5)];
        assert_eq!(rank(&counts, 100, 4), ["new", "old", "a", "b"]);
        assert_eq!(rank(&counts, 100, 1), ["new"]);
    }

    #[test]
    fn counts_of_one_video_add_up_across_minutes_and_pops() {
        let counts = [count("x", 100, 10), count("x", 100, 10), count("y", 100, 15)];
        assert_eq!(rank(&counts, 100, 2), ["x", "y"]);
        assert!(rank(&[], 100, 3).is_empty());
    }
}
