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
    buckets: Mutex<VecDeque<(Instant, HashMap<String, u64>)>>,
}

impl Popularity {
    /// Counts over `window`, in ten buckets.
    pub fn new(window: Duration) -> Self {
        Self { window, bucket: window / 10, buckets: Mutex::new(VecDeque::new()) }
    }

    /// One request of `video`.
    pub fn count(&self, video: &str) {
        let now = Instant::now();
        let mut b = self.buckets.lock().expect("popularity lock");
        if b.back().is_none_or(|(start, _)| now.duration_since(*start) >= self.bucket) {
            b.push_back((now, HashMap::new()));
        }
        while b.front().is_some_and(|(start, _)| now.duration_since(*start) > self.window) {
            b.pop_front();
        }
        *b.back_mut().expect("a bucket").1.entry(video.to_owned()).or_default() += 1;
    }

    /// The `n` most requested videos in the window.
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let now = Instant::now();
        let b = self.buckets.lock().expect("popularity lock");
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
    region: &'a str,
    top: Vec<Popular>,
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
    video: String,
}

/// Beats until `shutdown`: report, purge, prefetch.
pub async fn heartbeat(
    edge: Arc<Edge>,
    every: Duration,
    top_n: usize,
    prefetch: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let cursor_file = edge.state_dir.join("purge-cursor");
    let mut cursor: i64 = std::fs::read_to_string(&cursor_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match beat(&edge, cursor, top_n).await {
            Ok(answer) => {
                let now = crate::now_ms();
                for p in &answer.purges {
                    edge.cache.purge(&p.video, now);
                    tracing::info!(video = %p.video, "purged");
                }
                if answer.next != cursor {
                    cursor = answer.next;
                    let _ = std::fs::write(&cursor_file, cursor.to_string());
                }
                if prefetch {
                    for key in &answer.prefetch {
                        if !edge.cache.contains(key) {
                            crate::flow::start_fetch(&edge, key, true);
                        }
                    }
                }
            }
            Err(e) => tracing::info!(error = %e, "heartbeat failed; retrying next beat"),
        }
    }
}

async fn beat(edge: &Edge, cursor: i64, top_n: usize) -> Result<Answer, crate::error::EdgeError> {
    let report = Report {
        pop: &edge.pop_id,
        region: &edge.region,
        top: edge.popularity.top(top_n).into_iter().map(|(video, requests)| Popular { video, requests }).collect(),
        purges_after: cursor,
    };
    let body = serde_json::to_vec(&report).unwrap_or_default();
    let response = edge
        .upstream
        .send(|base| {
            edge.upstream
                .client()
                .post(format!("{base}/v1/pops/heartbeat"))
                .bearer_auth(edge.upstream.token())
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
