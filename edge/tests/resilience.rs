//! What a PoP does when things break: its disk tier survives a restart; with the origin dead
//! it serves what it has (playlists stale within their grace) and answers the rest with 502
//! and a code; a slow origin costs a viewer a bounded wait and a 504, never a hang. With one
//! of several origin URLs down, objects, API calls and uploads go on to the next, but nothing
//! that may have reached the dead one is sent again.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use pop_config::token::UploadGrant;

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
    let playlist = Bytes::from_static(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.m4s\n");
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

/// A pre-signed upload query for `video`, as the origin hands it to a creator.
fn upload_query(video: &str) -> String {
    let grant = UploadGrant { video: video.into(), max_bytes: 1 << 20, expires: edge::now_secs() + 60 };
    pop_config::token::sign_upload(&key(), &grant)
}

/// `edge_origin_failovers_total` for `route`.
fn failovers(metrics: &str, route: &str) -> f64 {
    metric(metrics, "edge_origin_failovers_total", &[&format!("route=\"{route}\"")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_origin_url_is_passed_over_for_every_route() {
    init();
    let origin = TestOrigin::start().await;
    let segment = origin.segment("v60/720p/seg_00000.m4s", 50_000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.origin.urls = vec![refusing_origin(), origin.url()];
    cfg.uploads.max_size = 1 << 20;
    let pop = Pop::start(cfg).await;
    assert_eq!(pop.get(&viewer_path("v60", "720p/seg_00000.m4s")).await.2, segment);

    // The video API: a creation with its JSON, and a body without a length (HTTP/1.1 chunked),
    // which the attempt that got no connection never read.
    let created = serde_json::json!({ "title": "failover" }).to_string();
    let r = pop
        .h1
        .post(pop.https("/v1/videos"))
        .header("authorization", "Bearer creator")
        .header("content-type", "application/json")
        .body(created.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let chunks = futures_util::stream::iter(["{\"title\":", "\"t\"}"].map(|s| Ok::<_, std::io::Error>(s.to_owned())));
    let r = pop.h1.patch(pop.https("/v1/videos/v60")).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = origin.api_requests();
    let seen: Vec<(&str, &str, &[u8])> = seen.iter().map(|(m, p, b)| (m.as_str(), p.as_str(), b.as_ref())).collect();
    assert_eq!(
        seen,
        [("POST", "/v1/videos", created.as_bytes()), ("PATCH", "/v1/videos/v60", b"{\"title\":\"t\"}".as_slice())]
    );

    // A tus upload, start to end; the PATCH body streamed over h2 without a length.
    let r = pop
        .h1
        .post(pop.https(&format!("/v1/uploads?{}", upload_query("v60"))))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "300000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let here = format!("https://localhost:{}/v1/uploads/u1?", pop.running.https.port());
    assert!(location.starts_with(&here), "the answering origin's Location points at the PoP: {location}");
    let upload = origin::pattern("failover-upload", 300_000);
    let pieces: Vec<_> = upload.chunks(64 << 10).map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c))).collect();
    let r = pop
        .h2
        .patch(&location)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], "300000");
    let r = pop.h1.head(&location).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(r.status(), 204);
    let uploads = origin.upload_requests();
    let methods: Vec<&str> = uploads.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["POST", "PATCH", "HEAD"]);
    assert!(uploads[1].1 == upload, "the upload body arrived whole and in order");

    let metrics = pop.metrics().await;
    assert_eq!(failovers(&metrics, "object"), 1.0, "{metrics}");
    assert_eq!(failovers(&metrics, "passthrough"), 5.0, "{metrics}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_body_cut_off_at_one_origin_is_not_sent_to_the_next() {
    init();
    let mut first = TestOrigin::start().await;
    let second = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &first.url());
    cfg.origin.urls = vec![first.url(), second.url()];
    cfg.uploads.max_size = 1 << 20;
    let pop = Pop::start(cfg).await;
    let r = pop
        .h1
        .post(pop.https(&format!("/v1/uploads?{}", upload_query("v61"))))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "200000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();

    // The first origin takes part of the body, then dies.
    let (more, rest) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = futures_util::stream::unfold(rest, |mut rest| async move {
        rest.recv().await.map(|piece| (Ok::<_, std::io::Error>(piece), rest))
    });
    let patch = pop
        .h2
        .patch(&location)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let patch = tokio::spawn(patch);
    more.send(origin::pattern("cut-off", 64 << 10)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.upload_bytes() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(first.upload_bytes() > 0, "the first origin was taking the body");
    first.kill().await;
    let answer = tokio::time::timeout(Duration::from_secs(5), patch).await.expect("the PATCH is answered").unwrap();
    drop(more);
    // The client hears of it (a 502, or its request broken off), and nothing went on.
    if let Ok(r) = answer {
        assert_eq!(r.status(), 502);
        let err: serde_json::Value = r.json().await.unwrap();
        assert_eq!(err["error"]["code"], "origin_unavailable");
    }
    assert!(second.upload_requests().is_empty() && second.upload_bytes() == 0, "not replayed");

    // It asks where to resume: the dead origin refuses, the next one answers.
    let r = pop.h1.head(&location).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().contains_key("upload-offset"));
    let methods: Vec<String> = second.upload_requests().into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["HEAD"]);
    assert_eq!(failovers(&pop.metrics().await, "passthrough"), 1.0);
    pop.stop().await;
}
