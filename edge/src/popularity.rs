//! Regional popularity and the heartbeat: the PoP counts requests per video over a sliding
//! window, reports its top videos to the origin on every heartbeat, and applies the answer:
//! purge what was taken down (within one heartbeat) and prefetch the first segments of what
//! is popular in its region before viewers ask.

use std::collections::{HashMap, VecDeque};
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
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        once(&edge, top_n, prefetch).await;
    }
}

/// The first beat after a start, waited for (no longer than `limit`) before viewers are
/// served: until its takedowns are applied, the disk tier is not served.
pub async fn catch_up(edge: &Arc<Edge>, top_n: usize, prefetch: bool, limit: Duration) {
    if tokio::time::timeout(limit, once(edge, top_n, prefetch)).await.is_err() {
        tracing::warn!("the origin did not answer the first heartbeat; the disk tier waits for the next one");
    }
}

/// One beat: report, apply and persist takedowns, start prefetches.
async fn once(edge: &Arc<Edge>, top_n: usize, prefetch: bool) {
    let purges = edge.cache.purges();
    let answer = match beat(edge, purges.cursor(), top_n).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::info!(error = %e, detail = ?e.detail(), "heartbeat failed; retrying next beat");
            return;
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
    purges.set_caught_up();
    if prefetch {
        for key in &answer.prefetch {
            if !edge.cache.contains(key) {
                crate::fetch::start(edge, crate::fetch::Want::object(key), true);
            }
        }
    }
}

async fn beat(edge: &Edge, cursor: i64, top_n: usize) -> Result<Answer, crate::error::EdgeError> {
    let delta = edge.popularity.take_since_beat();
    let answer = send_beat(edge, cursor, top_n, &delta).await;
    if answer.is_err() {
        edge.popularity.restore_since_beat(delta);
    }
    answer
}

async fn send_beat(
    edge: &Edge,
    cursor: i64,
    top_n: usize,
    delta: &HashMap<String, u64>,
) -> Result<Answer, crate::error::EdgeError> {
    let report = Report {
        pop: &edge.pop_id,
        region: &edge.region,
        top: edge.popularity.top(top_n).into_iter().map(|(video, requests)| Popular { video, requests }).collect(),
        delta: delta.iter().map(|(video, &requests)| Popular { video: video.clone(), requests }).collect(),
        purges_after: cursor,
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
