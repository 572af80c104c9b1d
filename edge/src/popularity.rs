//! Regional popularity and the heartbeat: the PoP counts requests per video over a sliding
//! window, reports its top videos to the origin on every heartbeat, and applies the answer:
//! purge what was taken down (within one heartbeat) and prefetch the first segments of what
//! is popular in its region before viewers ask.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Edge;

/// Requests per video over a sliding window, in buckets.
#[derive(Debug)]
pub struct Popularity {
    window: Duration,
    bucket: Duration,
    counts: Mutex<Counts>,
}

/// Both counts, behind one lock: every viewer request bumps both.
#[derive(Debug, Default)]
struct Counts {
    buckets: VecDeque<(Instant, HashMap<String, u64>)>,
    /// Requests since the last heartbeat the origin acknowledged: its demand counts add these
    /// up, while the window's totals rank what to prefetch.
    since_beat: HashMap<String, u64>,
}

/// Adds `n` to `video`'s count, allocating its name only the first time.
fn bump(map: &mut HashMap<String, u64>, video: &str, n: u64) {
    match map.get_mut(video) {
        Some(c) => *c += n,
        None => {
            map.insert(video.to_owned(), n);
        }
    }
}

impl Popularity {
    /// Counts over `window`, in ten buckets.
    pub fn new(window: Duration) -> Self {
        Self { window, bucket: window / 10, counts: Mutex::default() }
    }

    /// One request of `video`.
    pub fn count(&self, video: &str) {
        let now = Instant::now();
        let mut c = self.counts.lock().expect("popularity lock");
        bump(&mut c.since_beat, video, 1);
        let b = &mut c.buckets;
        if b.back().is_none_or(|(start, _)| now.duration_since(*start) >= self.bucket) {
            b.push_back((now, HashMap::new()));
        }
        while b.front().is_some_and(|(start, _)| now.duration_since(*start) > self.window) {
            b.pop_front();
        }
        bump(&mut b.back_mut().expect("a bucket").1, video, 1);
    }

    /// Takes the requests counted since the last call (for the next heartbeat).
    pub fn take_since_beat(&self) -> HashMap<String, u64> {
        std::mem::take(&mut self.counts.lock().expect("popularity lock").since_beat)
    }

    /// Gives back counts a failed heartbeat could not deliver.
    pub fn restore_since_beat(&self, counts: HashMap<String, u64>) {
        let mut c = self.counts.lock().expect("popularity lock");
        for (video, n) in counts {
            *c.since_beat.entry(video).or_default() += n;
        }
    }

    /// The `n` most requested videos in the window.
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let now = Instant::now();
        let c = self.counts.lock().expect("popularity lock");
        let b = &c.buckets;
        let mut totals: HashMap<&str, u64> = HashMap::new();
        for (_, counts) in b.iter().filter(|(s, _)| now.duration_since(*s) <= self.window) {
            for (v, c) in counts {
                *totals.entry(v).or_default() += c;
            }
        }
        let mut top: Vec<(String, u64)> = totals.into_iter().map(|(v, c)| (v.to_owned(), c)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(n);
        top
    }
}

/// Requests answered since the last heartbeat the origin acknowledged, and how many failed
/// (5xx): the origin's steering moves viewers off a PoP that fails.
#[derive(Debug, Default)]
pub struct BeatCounts {
    requests: AtomicU64,
    failed: AtomicU64,
}

impl BeatCounts {
    /// One answered request, `failed` or not.
    pub fn count(&self, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn take(&self) -> (u64, u64) {
        (self.requests.swap(0, Ordering::Relaxed), self.failed.swap(0, Ordering::Relaxed))
    }

    fn restore(&self, (requests, failed): (u64, u64)) {
        self.requests.fetch_add(requests, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
    }
}

/// What a PoP tells the origin.
#[derive(Debug, Serialize)]
struct Report<'a> {
    pop: &'a str,
    /// The region this PoP believes it serves; the origin goes by its registry's.
    region: &'a str,
    top: Vec<Popular>,
    /// Requests per video since the previous heartbeat.
    delta: Vec<Popular>,
    purges_after: i64,
    /// Where viewers reach this PoP (steering sends them there), if it is steered to.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    /// This heartbeat's interval: a PoP silent for two of them is taken out of steering.
    every_ms: u64,
    /// Viewer connections held over the cap, 0 to 1.
    load: f64,
    /// Requests answered and failed (5xx) since the previous acknowledged heartbeat.
    requests: u64,
    failed: u64,
    /// Whether it takes tus uploads (creators are steered to it).
    uploads: bool,
    /// Whether it prefetches: if not, the answer need not list what to prefetch.
    prefetch: bool,
    /// The version of the children's verifiers it holds: the list comes again only when changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    tiers_version: Option<String>,
}

/// One popular video.
#[derive(Debug, Serialize)]
struct Popular {
    video: String,
    requests: u64,
}

/// What the origin answers.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    prefetch: Vec<String>,
    #[serde(default)]
    purges: Vec<Purge>,
    next: i64,
    /// Verifiers of the PoPs that may fetch objects here as children; absent when unchanged
    /// (or not available this beat): the ones held stay.
    #[serde(default)]
    tiers: Option<Vec<Tier>>,
    #[serde(default)]
    tiers_version: Option<String>,
    /// The PoPs steering may move this PoP's viewers to (for the pages' policy); absent: kept.
    #[serde(default)]
    pops: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Tier {
    pop: String,
    verifier: String,
    #[serde(default)]
    partner: bool,
}

/// A child PoP this PoP may serve as a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// `pop_config::tier::verifier` of its tier credential.
    pub verifier: String,
    /// Run by a partner: given nothing clear.
    pub partner: bool,
}

/// The children's verifiers, and the version of the list they came in.
#[derive(Debug, Default)]
pub struct Children {
    by_id: HashMap<String, Child>,
    version: Option<String>,
}

impl Children {
    /// The child `id`, if the origin vouches for it.
    pub fn get(&self, id: &str) -> Option<&Child> {
        self.by_id.get(id)
    }
}

#[derive(Debug, Deserialize)]
struct Purge {
    #[serde(default)]
    seq: i64,
    video: String,
}

/// Beats until `shutdown`: report, purge, prefetch. The first beat is [`catch_up`]'s.
pub async fn heartbeat(
    edge: Arc<Edge>,
    every: Duration,
    top_n: usize,
    prefetch: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        // A failed beat is tried again within a second: a PoP cut off from its control plane
        // hears of takedowns as soon as it is back, not a whole interval later.
        wait = if once(&edge, top_n, prefetch).await { every } else { every.min(RETRY_BEAT) };
    }
}

/// The longest wait before a failed heartbeat is tried again.
const RETRY_BEAT: Duration = Duration::from_secs(1);

/// The first beat after a start, waited for (no longer than `limit`) before viewers are
/// served: until its takedowns are applied, the disk tier is not served.
pub async fn catch_up(edge: &Arc<Edge>, top_n: usize, prefetch: bool, limit: Duration) {
    if tokio::time::timeout(limit, once(edge, top_n, prefetch)).await.is_err() {
        tracing::warn!("the origin did not answer the first heartbeat; the disk tier waits for the next one");
    }
}

/// One beat: report, apply and persist takedowns, start prefetches; whether the origin
/// answered.
async fn once(edge: &Arc<Edge>, top_n: usize, prefetch: bool) -> bool {
    let purges = edge.cache.purges();
    // The answer says which takedowns there were when the origin got the beat, not when the
    // answer arrived: one held up by a partition (TCP resends it once the link heals) is that
    // old. Caught up as of the asking, so a PoP cut off meanwhile stays behind and refuses
    // objects until a beat sent after the takedown says so.
    let asked_at = crate::now_ms();
    let answer = match beat(edge, purges.cursor(), top_n, prefetch).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::info!(error = %e, detail = ?e.detail(), "heartbeat failed; retrying");
            return false;
        }
    };
    let taken_down: Vec<(i64, String)> = answer.purges.into_iter().map(|p| (p.seq, p.video)).collect();
    for (seq, video) in &taken_down {
        tracing::info!(seq, video = ?video, "purged");
    }
    match purges.record(&taken_down, answer.next, crate::now_ms()).await {
        Ok(wrote) => {
            if wrote {
                edge.metrics.purge_writes.get_or_create(&vec![("outcome", "ok")]).inc();
            }
        }
        Err(e) => {
            edge.metrics.purge_writes.get_or_create(&vec![("outcome", "failed")]).inc();
            tracing::error!(error = %e, "takedowns not persisted: held in memory, the cursor stays; retried next beat");
        }
    }
    edge.metrics.purges_not_durable.set(i64::from(purges.durable().is_err()));
    // In memory they hold from now on, whatever the disk said.
    purges.set_caught_up(asked_at);
    if let Some(tiers) = answer.tiers {
        let by_id = tiers.into_iter().map(|t| (t.pop, Child { verifier: t.verifier, partner: t.partner })).collect();
        *edge.children.write().expect("children lock") = Children { by_id, version: answer.tiers_version };
    }
    if let (Some(pages), Some(pops)) = (&edge.pages, &answer.pops) {
        pages.set_peers(pops);
    }
    if prefetch {
        for key in &answer.prefetch {
            crate::fetch::start_unless_cached(edge, crate::fetch::Want::object(key), true);
        }
    }
    true
}

async fn beat(edge: &Edge, cursor: i64, top_n: usize, prefetch: bool) -> Result<Answer, crate::error::EdgeError> {
    let delta = edge.popularity.take_since_beat();
    let counts = edge.beat_counts.take();
    let answer = send_beat(edge, cursor, top_n, &delta, counts, prefetch).await;
    if answer.is_err() {
        edge.popularity.restore_since_beat(delta);
        edge.beat_counts.restore(counts);
    }
    answer
}

async fn send_beat(
    edge: &Edge,
    cursor: i64,
    top_n: usize,
    delta: &HashMap<String, u64>,
    (requests, failed): (u64, u64),
    prefetch: bool,
) -> Result<Answer, crate::error::EdgeError> {
    let cap = edge.connections.limits().max_connections.max(1) as f64;
    let report = Report {
        pop: &edge.pop_id,
        region: &edge.region,
        top: edge.popularity.top(top_n).into_iter().map(|(video, requests)| Popular { video, requests }).collect(),
        delta: delta.iter().map(|(video, &requests)| Popular { video: video.clone(), requests }).collect(),
        purges_after: cursor,
        url: edge.public_url.as_deref(),
        every_ms: edge.heartbeat_every.as_millis() as u64,
        load: (edge.metrics.connections_open.get() as f64 / cap).clamp(0.0, 1.0),
        requests,
        failed,
        uploads: edge.uploads.is_some(),
        prefetch,
        tiers_version: edge.children.read().expect("children lock").version.clone(),
    };
    let body = serde_json::to_vec(&report).unwrap_or_default();
    let response = edge
        .upstream
        .send(crate::upstream::Route::Heartbeat, |base| {
            edge.upstream
                .client()
                .post(format!("{base}/v1/pops/heartbeat"))
                .bearer_auth(edge.upstream.credential())
                .header("content-type", "application/json")
                .body(body.clone())
        })
        .await?;
    if !response.status().is_success() {
        return Err(crate::error::EdgeError::OriginUnavailable(format!("heartbeat answered {}", response.status())));
    }
    response.json().await.map_err(|e| crate::error::EdgeError::OriginUnavailable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_videos_in_the_window() {
        let p = Popularity::new(Duration::from_secs(60));
        for _ in 0..5 {
            p.count("a");
        }
        p.count("b");
        for _ in 0..3 {
            p.count("c");
        }
        assert_eq!(p.top(2), vec![("a".to_owned(), 5), ("c".to_owned(), 3)]);
    }
}
