//! The materialisation policy: what viewers ask for (PoP heartbeats and the origin's own
//! object requests, counted per minute in the database so the window survives restarts and
//! is shared by every API node), promotion of a video in demand to its whole ladder in the
//! background at the lowest priority, eviction of what a cold video does not need, operators'
//! pins, and the accounting of stored bytes by kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use tokio::sync::watch;

use super::segment_key;
use super::task::{Reason, SegmentTask};
use crate::app::App;
use crate::error::{Error, Result};
use crate::meta::ondemand::{Pin, RungState};
use crate::meta::{self, Millis, VideoState};
use crate::storage;

/// Requests counted in memory between flushes, so serving a segment never waits on a write.
#[derive(Debug, Default)]
pub struct Demand {
    counts: Mutex<HashMap<String, u64>>,
}

impl Demand {
    /// Counts `n` requests of `video`.
    pub fn count(&self, video: &str, n: u64) {
        *self.counts.lock().expect("demand").entry(video.to_owned()).or_default() += n;
    }

    /// Writes what was counted.
    pub async fn flush(&self, app: &App) -> Result<()> {
        let counts = std::mem::take(&mut *self.counts.lock().expect("demand"));
        let now = meta::now();
        for (video, n) in counts {
            app.ondemand.add_demand(&video, n, now).await?;
        }
        Ok(())
    }
}

/// The video may be encoded and served (`api::objects::refusal`), by its state read from the
/// database rather than the cache: a takedown must stop an encode at once.
pub async fn check_servable(app: &App, video: &str) -> Result<()> {
    let v = app.meta.video(video).await?.ok_or_else(|| Error::not_found("video"))?;
    crate::api::objects::refusal(v.state).map_or(Ok(()), Err)
}

/// Runs the policy every `on_demand.policy_interval` until `shutdown`.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(app.config.on_demand.policy_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                let _ = app.jit.demand.flush(&app).await;
                return;
            }
        }
        if let Err(e) = tick_once(&app).await {
            tracing::warn!(error = %e, "materialisation policy round failed");
        }
    }
}

/// One round: flush demand, promote, settle, evict, account.
pub async fn tick_once(app: &Arc<App>) -> Result<()> {
    app.jit.demand.flush(app).await?;
    let od = &app.config.on_demand;
    let now = meta::now();
    let since = now - od.promote_window.as_millis() as Millis;
    for (video, requests) in app.ondemand.in_demand(since, od.promote_requests, 100).await? {
        if app.ondemand.pin(&video).await? != Some(Pin::Floor) {
            let started = promote(app, &video).await?;
            if started > 0 {
                tracing::info!(%video, requests, rungs = started, "promoted to its full ladder");
            }
        }
    }
    settle(app, now).await?;
    evict(app, now).await?;
    app.ondemand.prune_demand(now - (od.evict_after + od.promote_window).as_millis() as Millis).await?;
    // Counting stored bytes lists the whole blob store: far less often than the rest.
    let due = app.jit.accounted.lock().expect("accounted").is_none_or(|t| t.elapsed() >= od.account_interval);
    if due {
        account(app).await?;
        *app.jit.accounted.lock().expect("accounted") = Some(std::time::Instant::now());
    }
    Ok(())
}

/// Starts encoding every missing segment of a video's on-demand rungs at promotion
/// priority; returns the rungs it started.
pub async fn promote(app: &Arc<App>, video: &str) -> Result<usize> {
    check_servable(app, video).await?;
    let Some(plan) = app.jit.plan(app, video).await? else { return Ok(0) };
    let mut started = 0;
    for rung in app.ondemand.rungs(video).await? {
        let now = meta::now();
        let from = [RungState::OnDemand, RungState::Evicted];
        if !app.ondemand.move_rung(video, &rung.name, &from, RungState::Materialising, now).await? {
            continue;
        }
        started += 1;
        app.metrics.on_demand.transitions.get_or_create(&vec![("event", "promoted".to_owned())]).inc();
        // Queued unclaimed: a worker claims each run when it starts on it
        // (`work::claim_and_encode`),
        // so a viewer asking for one of these segments meanwhile is not made to wait.
        let stored = stored_segments(app, video, &rung.name).await?;
        let missing: Vec<u64> = (0..plan.segment_count() as u64).filter(|s| !stored.contains(s)).collect();
        let span = app.config.on_demand.promote_span as usize;
        for run in missing.chunk_by(|a, b| b == &(a + 1)).flat_map(|run| run.chunks(span)) {
            let task = SegmentTask::new(video, &rung.name, run[0], run.len() as u64, Reason::Promotion)?;
            task.publish(app.queue.as_ref()).await?;
        }
    }
    crate::cache::forget_video(app.cache.as_ref(), video).await;
    Ok(started)
}

/// Segment numbers of a rung that are in storage (in the counted tree).
async fn stored_segments(app: &App, video: &str, rung: &str) -> Result<std::collections::HashSet<u64>> {
    let counted = super::trees(app.config.protection)[0];
    let prefix = format!("{}{}{rung}/", storage::published(video), super::tree_prefix(counted));
    let mut out = std::collections::HashSet::new();
    let mut lister = app.blobs.lister(&prefix).await?;
    while let Some(entry) = lister.try_next().await? {
        let name = entry.name().to_owned();
        if let Some((_, _, n)) = super::segment_path(&[rung, &name]) {
            out.insert(n);
        }
    }
    Ok(out)
}

/// Rungs whose every segment is stored become `materialised`; a promotion that stalled
/// (its tasks lost) goes back to `on_demand` so the next round starts it again.
async fn settle(app: &App, now: Millis) -> Result<()> {
    let states = [RungState::Materialising, RungState::OnDemand, RungState::Evicted];
    for (video, rung) in app.ondemand.rungs_in(&states, Millis::MAX, 1000).await? {
        if rung.segments > 0 && rung.stored >= rung.segments {
            let complete = stored_segments(app, &video, &rung.name).await?.len() as u64 >= rung.segments;
            if !complete {
                continue;
            }
            // Measured bandwidths first (idempotent), the state after: a materialised rung's
            // playlists already announce what it measures.
            if let Err(e) = super::bandwidth::publish(app, &video, &rung.name).await {
                tracing::warn!(%video, rung = %rung.name, error = %e, "measured bandwidth not published");
            }
            if app.ondemand.move_rung(&video, &rung.name, &states, RungState::Materialised, now).await? {
                crate::cache::forget_video(app.cache.as_ref(), &video).await;
            }
        } else if rung.state == RungState::Materialising
            && rung.updated_at < now - app.config.on_demand.evict_after.as_millis().min(3_600_000) as Millis
        {
            app.ondemand.move_rung(&video, &rung.name, &[RungState::Materialising], RungState::OnDemand, now).await?;
        }
    }
    Ok(())
}

/// A video nobody asked for within `evict_after` loses the segments of its non-floor rungs
/// (the floor, the playlists, the init segments, the plan and the original stay), unless an
/// operator pinned it to its full ladder. Copies cached at PoPs stay valid: a segment encoded
/// again later is interchangeable with them.
async fn evict(app: &App, now: Millis) -> Result<()> {
    let cold_before = now - app.config.on_demand.evict_after.as_millis() as Millis;
    let states = [RungState::Materialised, RungState::Materialising, RungState::OnDemand, RungState::Evicted];
    for (video, rung) in app.ondemand.rungs_in(&states, cold_before, 1000).await? {
        let openings = u64::from(app.config.on_demand.opening_segments).min(rung.segments);
        if rung.stored <= openings || app.ondemand.pin(&video).await? == Some(Pin::Full) {
            continue;
        }
        if app.ondemand.last_demand(&video).await?.is_some_and(|t| t >= cold_before) {
            continue;
        }
        evict_rung(app, &video, &rung.name, now).await?;
    }
    Ok(())
}

/// Removes a rung's stored segments but its openings (`on_demand.opening_segments`, where
/// viewers start) and marks it `evicted` (when it was materialised).
pub async fn evict_rung(app: &App, video: &str, rung: &str, now: Millis) -> Result<()> {
    let openings = u64::from(app.config.on_demand.opening_segments);
    let mut kept = 0;
    for segment in stored_segments(app, video, rung).await? {
        if segment < openings {
            kept += 1;
            continue;
        }
        for tree in super::trees(app.config.protection) {
            app.blobs.delete(&segment_key(video, *tree, rung, segment)).await?;
        }
    }
    app.ondemand.clear_stored(video, rung, now).await?;
    app.ondemand.add_stored(video, rung, kept, now).await?;
    let from = [RungState::Materialised, RungState::Materialising];
    app.ondemand.move_rung(video, rung, &from, RungState::Evicted, now).await?;
    crate::cache::forget_video(app.cache.as_ref(), video).await;
    app.metrics.on_demand.transitions.get_or_create(&vec![("event", "evicted".to_owned())]).inc();
    tracing::info!(%video, %rung, "cold rung evicted");
    Ok(())
}

/// Sets an operator's pin and applies it at once: `full` promotes now, `floor` evicts now.
/// A pin set before the video is ready takes effect at its encode: `full` encodes the whole
/// ladder at upload.
pub async fn pin(app: &Arc<App>, video: &str, pin: Option<Pin>) -> Result<()> {
    let state = app.meta.video(video).await?.ok_or_else(|| Error::not_found("video"))?.state;
    match crate::api::objects::refusal(state) {
        Some(gone) if state == VideoState::Deleted => return Err(gone),
        Some(_) => return app.ondemand.set_pin(video, pin).await,
        None => app.ondemand.set_pin(video, pin).await?,
    }
    match pin {
        Some(Pin::Full) => {
            promote(app, video).await?;
        }
        Some(Pin::Floor) => {
            let now = meta::now();
            for rung in app.ondemand.rungs(video).await? {
                if rung.state != RungState::Floor && rung.stored > u64::from(app.config.on_demand.opening_segments) {
                    evict_rung(app, video, &rung.name, now).await?;
                }
            }
        }
        None => {}
    }
    Ok(())
}

/// Counts stored bytes by kind and rungs by state, for the metrics the cost model reads.
async fn account(app: &App) -> Result<()> {
    let mut bytes: HashMap<&'static str, i64> = HashMap::new();
    let mut floors: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    let mut states: HashMap<&'static str, i64> = RungState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut videos = std::collections::HashSet::new();
    for (video, rung) in app.ondemand.rungs_in(&RungState::ALL, Millis::MAX, 100_000).await? {
        *states.entry(rung.state.as_str()).or_default() += 1;
        videos.insert(video.clone());
        if rung.state != RungState::Floor {
            floors.entry(video).or_default().insert(rung.name);
        }
    }
    let mut lister = app.blobs.lister_with("").recursive(true).await?;
    while let Some(entry) = lister.try_next().await? {
        let len = i64::try_from(entry.metadata().content_length()).unwrap_or(i64::MAX);
        let path = entry.path();
        let kind = if path.starts_with("originals/") {
            "original"
        } else if path.starts_with("sources/") {
            "encode_index"
        } else if let Some(rest) = path.strip_prefix("videos/") {
            let mut parts = rest.splitn(3, '/');
            let (video, rung, file) = (parts.next(), parts.next(), parts.next());
            let deferred = matches!((video, rung), (Some(v), Some(r)) if floors.get(v).is_some_and(|s| s.contains(r)));
            if deferred && file.is_some_and(|f| f.starts_with("seg_")) { "materialised" } else { "floor" }
        } else {
            continue;
        };
        *bytes.entry(kind).or_default() += len;
    }
    for kind in ["original", "encode_index", "floor", "materialised"] {
        app.metrics
            .on_demand
            .stored_bytes
            .get_or_create(&vec![("kind", kind.to_owned())])
            .set(*bytes.get(kind).unwrap_or(&0));
    }
    app.metrics.on_demand.videos.set(i64::try_from(videos.len()).unwrap_or(i64::MAX));
    for (state, n) in states {
        app.metrics.on_demand.rungs.get_or_create(&vec![("state", state.to_owned())]).set(n);
    }
    Ok(())
}
