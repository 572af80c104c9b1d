//! What a PoP does when things break: its disk tier survives a restart; with the origin dead
//! it serves what it has (playlists stale within their grace) and answers the rest with 502
//! and a code; a slow origin costs a viewer a bounded wait and a 504, never a hang.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_hits_survive_a_restart() {
    init();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..6).map(|n| format!("v3/720p/seg_{n:05}.m4s")).collect();
    let bodies: Vec<_> = keys.iter().map(|k| origin.segment(k, 700_000)).collect();
    let once = origin.segment("v3/720p/once.m4s", 10_000);
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    for k in &keys {
        let path = viewer_path("v3", k.trim_start_matches("v3/"));
        // Asked twice: admitted to disk.
        pop.get(&path).await;
        let (_, x_cache, body) = pop.get(&path).await;
        assert_eq!(x_cache, "hit-memory");
        assert_eq!(body.len(), 700_000);
    }
    // Asked once: memory only.
    assert_eq!(pop.get(&viewer_path("v3", "720p/once.m4s")).await.2, once);
    pop.stop().await;

    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    for (k, body) in keys.iter().zip(&bodies) {
        let (status, x_cache, got) = pop.get(&viewer_path("v3", k.trim_start_matches("v3/"))).await;
        assert_eq!((status, x_cache.as_str()), (200, "hit-disk"), "{k}");
        assert!(got == body, "{k}: disk bytes");
    }
    assert!(keys.iter().all(|k| origin.fetches(k) == 1), "no refetch after the restart");
    let (_, x_cache, _) = pop.get(&viewer_path("v3", "720p/once.m4s")).await;
    assert_eq!(x_cache, "miss", "a one-hit object never reached the disk");
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_served_bytes_total", &["tier=\"disk\""]) >= 6.0 * 700_000.0, "{metrics}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_origin_leaves_cached_content_playing() {
    init();
    let mut origin = TestOrigin::start().await;
    let segment = origin.segment("v4/480p/seg_00000.m4s", 200_000);
    let playlist = bytes::Bytes::from_static(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.m4s\n");
    origin.put("v4/480p/index.m3u8", playlist.clone(), "public, max-age=1");
    origin.segment("v4/480p/seg_00001.m4s", 1_000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.cache.playlist_stale = Duration::from_secs(60);
    let pop = Pop::start(cfg).await;
    let seg_path = viewer_path("v4", "480p/seg_00000.m4s");
    let pl_path = viewer_path("v4", "480p/index.m3u8");
    assert_eq!(pop.get(&seg_path).await.2, segment);
    assert_eq!(pop.get(&pl_path).await.2, playlist);

    // While fresh, the playlist is a plain hit; once stale, the origin is asked again.
    assert_eq!(pop.get(&pl_path).await.1, "hit-memory");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(pop.get(&pl_path).await.1, "miss", "revalidated after max-age");
    assert_eq!(origin.fetches("v4/480p/index.m3u8"), 2);

    origin.kill().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, x_cache, body) = pop.get(&seg_path).await;
    assert_eq!((status, x_cache.as_str(), body), (200, "hit-memory", segment));
    let (status, x_cache, body) = pop.get(&pl_path).await;
    assert_eq!((status, x_cache.as_str(), body), (200, "stale", playlist), "stale-if-error playlist");

    let started = Instant::now();
    let r = pop.h1.get(pop.https(&viewer_path("v4", "480p/seg_00001.m4s"))).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    let err: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"]["code"], "origin_unavailable");
    // Where the origin is stays in the PoP's logs.
    let port = origin.addr.port().to_string();
    assert!(!text.contains(&port) && !text.contains("127.0.0.1") && !text.contains("http"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());

    // Back up: served and cached again.
    origin.restart().await;
    let (status, x_cache, _) = pop.get(&viewer_path("v4", "480p/seg_00001.m4s")).await;
    assert_eq!((status, x_cache.as_str()), (200, "miss"));
    assert_eq!(pop.get(&pl_path).await.1, "miss");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_costs_a_bounded_wait_and_a_504() {
    init();
    let origin = TestOrigin::start().await;
    origin.segment("v5/240p/seg_00000.m4s", 5_000);
    let cached = origin.segment("v5/240p/seg_00001.m4s", 5_000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.origin.request_timeout = Duration::from_millis(500);
    let pop = Pop::start(cfg).await;
    assert_eq!(pop.get(&viewer_path("v5", "240p/seg_00001.m4s")).await.2, cached);

    origin.slow(Duration::from_secs(4));
    let started = Instant::now();
    let r = pop.h1.get(pop.https(&viewer_path("v5", "240p/seg_00000.m4s"))).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(3), "waited {:?}", started.elapsed());
    let err: serde_json::Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "origin_timeout");
    // Meanwhile cached objects are unaffected: served well inside the origin's 4 s stall
    // (the bound is loose so that a busy test machine does not matter).
    let started = Instant::now();
    assert_eq!(pop.get(&viewer_path("v5", "240p/seg_00001.m4s")).await.1, "hit-memory");
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());

    // Not found at the origin: 404 with a code.
    origin.slow(Duration::ZERO);
    let r = pop.h1.get(pop.https(&viewer_path("v5", "240p/missing.m4s"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let err: serde_json::Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
    pop.stop().await;
}
