//! Cache policy: a scan of one-hit objects ten times the cache's size does not flush the hot
//! set (admission keeps one-hit wonders off the disk, S3-FIFO keeps them from the memory
//! tier's main queue); takedowns reach every PoP within a heartbeat and survive a restart;
//! what is popular in the region is fetched before viewers ask.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;

const OBJECT: usize = 128 << 10;

/// Requests `keys` of video `v` (8 at a time over HTTP/2); how many were hits.
async fn play(pop: &Pop, keys: impl Iterator<Item = String>) -> (usize, usize) {
    let results: Vec<(u16, String, bytes::Bytes)> = futures_util::stream::iter(keys)
        .map(|k| {
            let url = pop.https(&viewer_path("v", &k));
            let client = pop.h2.clone();
            async move { fetch(&client, &url, &[]).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(results.iter().all(|r| r.0 == 200 && r.2.len() == OBJECT));
    (results.iter().filter(|r| r.1.starts_with("hit")).count(), results.len())
}

/// Plays the hot set between slices of a scan `factor` times `cache_bytes`; the hot set's
/// hit ratio over the scan.
async fn hot_ratio_under_scan(pop: &Pop, hot: usize, cache_bytes: u64, factor: u64) -> f64 {
    let hot_keys = || (0..hot).map(|n| format!("gen/{OBJECT}/hot{n}"));
    // Twice: the second request earns each object its place.
    play(pop, hot_keys()).await;
    play(pop, hot_keys()).await;
    let scan_objects = (cache_bytes * factor) as usize / OBJECT;
    let rounds = 20;
    let (mut hits, mut total) = (0, 0);
    for round in 0..rounds {
        let slice = (round * scan_objects / rounds)..((round + 1) * scan_objects / rounds);
        let (scan_hits, _) = play(pop, slice.map(|n| format!("gen/{OBJECT}/scan{n}"))).await;
        assert_eq!(scan_hits, 0, "scan objects are asked once");
        let (h, t) = play(pop, hot_keys()).await;
        hits += h;
        total += t;
    }
    hits as f64 / total as f64
}

/// A PoP with an 8 MiB memory tier and a `disk`-byte disk tier (1 MiB blocks), over an origin
/// that generates objects.
async fn small_pop(disk: u64) -> (Pop, TestOrigin, tempfile::TempDir) {
    init();
    let origin = TestOrigin::start().await;
    origin.generate();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.cache.memory = 8 << 20;
    cfg.cache.disk = disk;
    cfg.cache.block = 1 << 20;
    (Pop::start(cfg).await, origin, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tail_scan_does_not_flush_the_hot_set_from_disk() {
    let (pop, _origin, _dir) = small_pop(32 << 20).await;
    // 12 MiB of hot objects: more than the memory tier holds, so hits come from both tiers.
    let ratio = hot_ratio_under_scan(&pop, 96, 40 << 20, 10).await;
    assert!(ratio > 0.9, "hot-set hit ratio {ratio:.3} under a 10x scan");
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_cache_lookups_total", &["result=\"hit\"", "tier=\"disk\""]) > 0.0, "{metrics}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tail_scan_does_not_flush_the_hot_set_from_memory() {
    let (pop, _origin, _dir) = small_pop(0).await;
    let ratio = hot_ratio_under_scan(&pop, 24, 8 << 20, 10).await;
    assert!(ratio > 0.9, "hot-set hit ratio {ratio:.3} under a 10x scan");
    pop.stop().await;
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takedowns_reach_every_pop_within_a_heartbeat() {
    init();
    let origin = TestOrigin::start().await;
    let key = "v12/720p/seg_00000.m4s";
    origin.segment(key, 50_000);
    let beat = Duration::from_millis(300);
    let mut pops = Vec::new();
    for n in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), &origin.url());
        cfg.pop.id = format!("pop-{n}");
        cfg.prefetch.heartbeat = beat;
        let pop = Pop::start(cfg).await;
        // Twice: cached on disk too.
        pop.get(&viewer_path("v12", "720p/seg_00000.m4s")).await;
        assert_eq!(pop.get(&viewer_path("v12", "720p/seg_00000.m4s")).await.1, "hit-memory");
        pops.push((pop, dir));
    }
    let fetched = origin.fetches(key);
    origin.beats().purges.push((1, "v12".into()));
    for (pop, _) in &pops {
        let edge = pop.running.edge.clone();
        wait_for("purge", beat * 2, async || !edge.cache.contains(key) || edge.cache.lookup(key).await.is_none()).await;
    }
    let (pop, dir) = pops.pop().unwrap();
    pop.stop().await;
    // The purge (and the cursor) outlive a restart: the disk copy is not served again.
    let mut cfg = config(dir.path(), &origin.url());
    cfg.prefetch.heartbeat = beat;
    let pop = Pop::start(cfg).await;
    assert_eq!(pop.get(&viewer_path("v12", "720p/seg_00000.m4s")).await.1, "miss");
    assert_eq!(origin.fetches(key), fetched + 1);
    // Fetched after the takedown (the origin decides whether to serve it): cached normally.
    assert_eq!(pop.get(&viewer_path("v12", "720p/seg_00000.m4s")).await.1, "hit-memory");
    pop.stop().await;
    let cursors: Vec<i64> = origin
        .beats()
        .reports
        .iter()
        .filter(|r| r["pop"] == "pop-local")
        .map(|r| r["purges_after"].as_i64().unwrap())
        .collect();
    assert!(cursors.iter().all(|&c| c == 1), "the restarted PoP resumed from its cursor: {cursors:?}");
    for (pop, _) in pops {
        pop.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popular_videos_are_reported_and_prefetched() {
    init();
    let origin = TestOrigin::start().await;
    origin.segment("v13/360p/seg_00000.m4s", 1_000);
    let warm = origin.segment("v14/720p/seg_00000.m4s", 80_000);
    origin.beats().prefetch = vec!["v14/720p/seg_00000.m4s".into()];
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.prefetch.enabled = true;
    cfg.prefetch.heartbeat = Duration::from_millis(200);
    cfg.pop.region = "kr-seoul".into();
    let pop = Arc::new(Pop::start(cfg).await);
    for _ in 0..3 {
        pop.get(&viewer_path("v13", "360p/seg_00000.m4s")).await;
    }
    wait_for("a report with v13", Duration::from_secs(3), async || {
        origin
            .beats()
            .reports
            .iter()
            .any(|r| r["region"] == "kr-seoul" && r["top"][0]["video"] == "v13" && r["top"][0]["requests"] == 3)
    })
    .await;
    wait_for("the prefetch", Duration::from_secs(3), async || origin.fetches("v14/720p/seg_00000.m4s") == 1).await;
    let edge = pop.running.edge.clone();
    wait_for("the prefetched object cached", Duration::from_secs(3), async || {
        edge.cache.contains("v14/720p/seg_00000.m4s")
    })
    .await;
    let (status, x_cache, body) = pop.get(&viewer_path("v14", "720p/seg_00000.m4s")).await;
    assert_eq!((status, x_cache.starts_with("hit"), body), (200, true, warm), "{x_cache}");
    // Prefetched once, not on every beat.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin.fetches("v14/720p/seg_00000.m4s"), 1);
    Arc::into_inner(pop).unwrap().stop().await;
}

/// Asks until `key`'s takedown shows; the status it shows with.
async fn purged_status(pop: &Pop, video: &str, path: &str) -> u16 {
    let edge = pop.running.edge.clone();
    let key = format!("{video}/{path}");
    wait_for("the purge", Duration::from_secs(3), async || edge.cache.lookup(&key).await.is_none()).await;
    pop.get(&viewer_path(video, path)).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takedown_that_cannot_be_written_is_never_served_from_disk_again() {
    init();
    let mut origin = TestOrigin::start().await;
    let (gone, kept) = ("v20/720p/seg_00000.m4s", "v21/720p/seg_00000.m4s");
    origin.segment(gone, 60_000);
    let kept_body = origin.segment(kept, 60_000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.prefetch.heartbeat = Duration::from_millis(200);
    let pop = Pop::start(cfg.clone()).await;
    for key in [gone, kept] {
        // Twice: on disk too.
        let (video, path) = key.split_once('/').unwrap();
        pop.get(&viewer_path(video, path)).await;
        assert_eq!(pop.get(&viewer_path(video, path)).await.1, "hit-memory");
    }
    // The disk fails where the takedowns are written.
    let state = dir.path().join("purged.json");
    let _ = std::fs::remove_file(&state);
    std::fs::create_dir(&state).unwrap();
    origin.take_down("v20");
    assert_eq!(purged_status(&pop, "v20", "720p/seg_00000.m4s").await, 410, "held in memory");
    let admin = format!("http://{}/healthz", pop.running.metrics.unwrap());
    let health = reqwest::get(&admin).await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(health.json::<serde_json::Value>().await.unwrap()["error"]["code"], "purges_not_durable");
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_purge_writes_total", &["outcome=\"failed\""]) >= 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "edge_purges_not_durable", &[]), 1.0, "{metrics}");
    let beats = origin.beats().reports.len();
    wait_for("two more beats", Duration::from_secs(2), async || origin.beats().reports.len() >= beats + 2).await;
    let cursor = origin.beats().reports.last().unwrap()["purges_after"].as_i64().unwrap();
    assert_eq!(cursor, 0, "the cursor did not move past what is not on disk");
    pop.stop().await;

    // Restarted with the disk still failing and the origin down: nothing from disk at all.
    origin.kill().await;
    let pop = Pop::start(cfg.clone()).await;
    for (video, status) in [("v20", 502), ("v21", 502)] {
        let (got, x_cache, _) = pop.get(&viewer_path(video, "720p/seg_00000.m4s")).await;
        assert_eq!((got, x_cache.as_str()), (status, ""), "{video}: the disk tier waits for the takedowns");
    }
    // The origin is back: the takedown is sent again and holds, the rest is served from disk.
    origin.restart().await;
    assert_eq!(purged_status(&pop, "v20", "720p/seg_00000.m4s").await, 410);
    let edge = pop.running.edge.clone();
    wait_for("the catch-up", Duration::from_secs(3), async || edge.cache.purges().caught_up()).await;
    let fetched = origin.fetches(kept);
    let (status, x_cache, body) = pop.get(&viewer_path("v21", "720p/seg_00000.m4s")).await;
    // The gated look-up above already copied it from disk to memory.
    assert!(status == 200 && x_cache.starts_with("hit") && body == kept_body, "{status} {x_cache}");
    assert_eq!(origin.fetches(kept), fetched, "served from what the disk kept");
    assert_eq!(pop.get(&viewer_path("v20", "720p/seg_00000.m4s")).await.0, 410);

    // The disk is repaired: the next beat writes the takedown, and health is back.
    std::fs::remove_dir(&state).unwrap();
    wait_for("the write", Duration::from_secs(3), async || edge.cache.purges().durable().is_ok()).await;
    assert_eq!(reqwest::get(format!("http://{}/healthz", pop.running.metrics.unwrap())).await.unwrap().status(), 200);
    pop.stop().await;
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["cursor"], 1);
    assert!(saved["tombstones"]["v20"].is_i64(), "{saved}");

    // Restarted again: the tombstone on disk holds by itself (the origin sends it no more).
    let pop = Pop::start(cfg).await;
    let (status, x_cache, _) = pop.get(&viewer_path("v20", "720p/seg_00000.m4s")).await;
    assert_eq!((status, x_cache.as_str()), (410, ""));
    assert_eq!(pop.get(&viewer_path("v21", "720p/seg_00000.m4s")).await.1, "hit-disk");
    pop.stop().await;
    let cursors: Vec<i64> =
        origin.beats().reports.iter().rev().take(1).map(|r| r["purges_after"].as_i64().unwrap()).collect();
    assert_eq!(cursors, [1], "resumed from the cursor on disk");
}

/// A complete media playlist of `n` segments at `{video}/720p/index.m3u8`, and its segments.
fn vod(origin: &TestOrigin, video: &str, n: u32) {
    let mut playlist = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n");
    for i in 0..n {
        playlist.push_str(&format!("#EXTINF:2.000,\nseg_{i:05}.m4s\n"));
        origin.segment(&format!("{video}/720p/seg_{i:05}.m4s"), 20_000);
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    origin.put(&format!("{video}/720p/index.m3u8"), playlist.into(), "public, max-age=2");
}

fn readahead_pop_config(dir: &std::path::Path, origin: &TestOrigin) -> pop_config::PopConfig {
    let mut cfg = config(dir, &origin.url());
    cfg.prefetch.readahead = 1;
    cfg.prefetch.readahead_continue_percent = 50;
    cfg.prefetch.heartbeat = Duration::from_millis(200);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_read_ahead_for_videos_watched_on_and_never_past_the_last() {
    init();
    let origin = TestOrigin::start().await;
    vod(&origin, "ra", 12);
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(readahead_pop_config(dir.path(), &origin)).await;
    let edge = pop.running.edge.clone();
    assert_eq!(pop.get(&viewer_path("ra", "720p/index.m3u8")).await.0, 200);
    let seg = |i: u32| format!("ra/720p/seg_{i:05}.m4s");
    // Ten requests teach the PoP that this video's viewers go on; until then each is a miss.
    for i in 0..10 {
        let (status, x_cache, _) = pop.get(&viewer_path("ra", &format!("720p/seg_{i:05}.m4s"))).await;
        assert_eq!((status, x_cache.as_str()), (200, "miss"), "segment {i}");
    }
    // The tenth request read the eleventh ahead.
    wait_for("segment 10 read ahead", Duration::from_secs(3), async || edge.cache.contains(&seg(10))).await;
    for i in 10..12 {
        if i == 11 {
            wait_for("segment 11 read ahead", Duration::from_secs(3), async || edge.cache.contains(&seg(11))).await;
        }
        let (status, x_cache, _) = pop.get(&viewer_path("ra", &format!("720p/seg_{i:05}.m4s"))).await;
        assert_eq!((status, x_cache.as_str()), (200, "hit-memory"), "segment {i}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(origin.fetches("ra/720p/seg_00012.m4s"), 0, "nothing past the playlist's last segment");
    assert!((0..12).all(|i| origin.fetches(&seg(i)) == 1), "each segment fetched once");
    let metrics = pop.metrics().await;
    assert_eq!(metric(&metrics, "edge_read_ahead_total", &[]), 2.0);
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_and_taken_down_videos_are_not_read_ahead_until_restored() {
    init();
    let origin = TestOrigin::start().await;
    vod(&origin, "tail", 4);
    vod(&origin, "gone", 30);
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(readahead_pop_config(dir.path(), &origin)).await;
    // Thirty viewers of "tail" each leave after the first segment.
    pop.get(&viewer_path("tail", "720p/index.m3u8")).await;
    for _ in 0..30 {
        pop.get(&viewer_path("tail", "720p/seg_00000.m4s")).await;
    }
    // "gone" is watched on, until it is taken down.
    pop.get(&viewer_path("gone", "720p/index.m3u8")).await;
    for i in 0..12 {
        pop.get(&viewer_path("gone", &format!("720p/seg_{i:05}.m4s"))).await;
    }
    let edge = pop.running.edge.clone();
    wait_for("read ahead", Duration::from_secs(3), async || edge.cache.contains("gone/720p/seg_00012.m4s")).await;
    origin.take_down("gone");
    wait_for("the takedown", Duration::from_secs(3), async || edge.cache.purges().taken_down("gone")).await;
    // The segment read ahead before the takedown is purged with the rest; the viewer who asks
    // for it is refused, and nothing further is read ahead.
    let (status, ..) = pop.get(&viewer_path("gone", "720p/seg_00012.m4s")).await;
    assert_eq!(status, 410);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(origin.fetches("tail/720p/seg_00001.m4s"), 0, "abandoners are not read ahead");
    assert_eq!(origin.fetches("gone/720p/seg_00013.m4s"), 0, "a taken-down video is not read ahead");

    // Restored: its viewers are served afresh, and read ahead for again.
    origin.restore("gone");
    pop.get(&viewer_path("gone", "720p/index.m3u8")).await;
    let (status, ..) = pop.get(&viewer_path("gone", "720p/seg_00012.m4s")).await;
    assert_eq!(status, 200);
    wait_for("read ahead after the restore", Duration::from_secs(3), async || {
        edge.cache.contains("gone/720p/seg_00013.m4s")
    })
    .await;
    pop.stop().await;
}
