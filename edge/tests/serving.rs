//! Serving: the same bytes over HTTP/1.1, HTTP/2 and HTTP/3; byte ranges from the cache and
//! on a miss; one origin fetch however many viewers ask at once; a body that streams to the
//! first viewer while the origin is still sending it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_h2_and_h3_return_identical_bytes() {
    init();
    let origin = TestOrigin::start().await;
    let segment = origin.segment("v1/720p/seg_00000.m4s", 1_500_000);
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    let path = viewer_path("v1", "720p/seg_00000.m4s");

    let first = pop.h1.get(pop.https(&path)).send().await.unwrap();
    assert_eq!(first.version(), http::Version::HTTP_11);
    assert_eq!(first.headers()["x-cache"], "miss");
    let alt_svc = first.headers()["alt-svc"].to_str().unwrap().to_owned();
    assert_eq!(alt_svc, format!("h3=\":{}\"; ma=86400", pop.running.h3.unwrap().port()));
    assert_eq!(first.bytes().await.unwrap(), segment);

    let second = pop.h2.get(pop.https(&path)).send().await.unwrap();
    assert_eq!(second.version(), http::Version::HTTP_2);
    assert_eq!(second.headers()["x-cache"], "hit-memory");
    assert_eq!(second.headers()["content-type"], "video/iso.segment");
    assert_eq!(second.bytes().await.unwrap(), segment);

    let (h3_head, h3_body) = pop.get_h3(&path).await;
    assert_eq!(h3_head.status(), 200);
    assert_eq!(h3_head.headers()["x-cache"], "hit-memory");
    assert_eq!(h3_body, segment, "HTTP/3 bytes");

    let plain = reqwest::get(pop.http(&path)).await.unwrap().bytes().await.unwrap();
    assert_eq!(plain, segment);
    assert_eq!(origin.fetches("v1/720p/seg_00000.m4s"), 1);

    // The cold path over HTTP/3 too.
    let other = origin.segment("v1/720p/seg_00001.m4s", 300_000);
    let (head, body) = pop.get_h3(&viewer_path("v1", "720p/seg_00001.m4s")).await;
    assert_eq!((head.headers()["x-cache"].to_str().unwrap(), body), ("miss", other.to_vec()));

    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_cache_lookups_total", &["result=\"hit\"", "tier=\"memory\""]) >= 3.0, "{metrics}");
    assert!(metric(&metrics, "edge_origin_fetches_total", &["outcome=\"ok\""]) == 2.0, "{metrics}");
    assert!(metrics.contains("edge_origin_fetch_duration_seconds_bucket"), "{metrics}");
    assert!(metric(&metrics, "edge_served_bytes_total", &["tier=\"memory\""]) >= 3.0 * 1_500_000.0, "{metrics}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_conditional_requests_and_heads() {
    init();
    let origin = TestOrigin::start().await;
    let segment = origin.segment("v1/360p/seg_00003.m4s", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    let url = pop.https(&viewer_path("v1", "360p/seg_00003.m4s"));

    // A range on a miss comes from the flight, with the right headers.
    let r = pop.h1.get(&url).header("range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["x-cache"], "miss");
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(r.bytes().await.unwrap(), segment.slice(1000..2000));
    // The whole object was still cached.
    let mut hit = false;
    for _ in 0..50 {
        let r = pop.h1.get(&url).header("range", "bytes=-10").send().await.unwrap();
        if r.headers()["x-cache"] == "hit-memory" {
            assert_eq!(r.status(), 206);
            assert_eq!(r.headers()["content-range"], "bytes 99990-99999/100000");
            assert_eq!(r.bytes().await.unwrap(), segment.slice(99_990..));
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "the ranged miss cached the object");
    let r = pop.h1.get(&url).header("range", "bytes=99000-").send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.bytes().await.unwrap()), (206, segment.slice(99_000..)));

    let r = pop.h1.get(&url).header("range", "bytes=100000-").send().await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    let err: serde_json::Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "range_not_satisfiable");

    // A range past the end on a cold object: 416 too.
    origin.segment("v1/360p/seg_00004.m4s", 10);
    let cold = pop.https(&viewer_path("v1", "360p/seg_00004.m4s"));
    let r = pop.h1.get(&cold).header("range", "bytes=50-60").send().await.unwrap();
    assert_eq!(r.status(), 416);

    let etag = pop.h1.get(&url).send().await.unwrap().headers()["etag"].clone();
    let r = pop.h1.get(&url).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = pop.h1.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "100000");
    assert_eq!(origin.fetches("v1/360p/seg_00003.m4s"), 1);
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_viewers_of_a_cold_segment_cost_one_origin_fetch() {
    init();
    let origin = TestOrigin::start().await;
    let segment = origin.segment("v9/1080p/seg_00000.m4s", 2_000_000);
    // Slow headers make sure all 200 are waiting at once.
    origin.slow(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let pop = Arc::new(Pop::start(config(dir.path(), &origin.url())).await);
    let path = viewer_path("v9", "1080p/seg_00000.m4s");
    let viewers: Vec<_> = (0..200)
        .map(|i| {
            let pop = pop.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let client = if i % 2 == 0 { &pop.h1 } else { &pop.h2 };
                fetch(client, &pop.https(&path), &[]).await
            })
        })
        .collect();
    let mut misses = 0;
    for v in viewers {
        let (status, x_cache, body) = v.await.unwrap();
        assert_eq!(status, 200);
        assert!(body == segment, "a viewer got a wrong body ({} bytes)", body.len());
        misses += usize::from(x_cache == "miss");
    }
    assert_eq!(origin.fetches("v9/1080p/seg_00000.m4s"), 1, "exactly one origin fetch");
    assert!(misses >= 100, "most viewers joined the one flight ({misses} misses)");

    // A fast origin: viewers keep arriving while the flight lands and the cache takes over.
    origin.slow(Duration::ZERO);
    for n in 1..=10 {
        let key = format!("v9/240p/seg_{n:05}.m4s");
        let small = origin.segment(&key, 20_000);
        let path = viewer_path("v9", key.trim_start_matches("v9/"));
        let viewers: Vec<_> = (0..200)
            .map(|_| {
                let (pop, path) = (pop.clone(), path.clone());
                tokio::spawn(async move { fetch(&pop.h2, &pop.https(&path), &[]).await })
            })
            .collect();
        for v in viewers {
            assert!(v.await.unwrap().2 == small);
        }
        assert_eq!(origin.fetches(&key), 1, "{key}: exactly one origin fetch");
    }
    Arc::into_inner(pop).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_streams_before_the_origin_finishes() {
    init();
    let origin = TestOrigin::start().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let body = origin::pattern("v2/720p/seg_00000.m4s", 4 << 20);
    origin.put_stored(
        "v2/720p/seg_00000.m4s",
        origin::Stored {
            body: body.clone(),
            cache_control: "public, max-age=31536000, immutable",
            content_type: "video/iso.segment",
            hold: Some(gate.clone()),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    let url = pop.https(&viewer_path("v2", "720p/seg_00000.m4s"));
    let first = pop.h1.get(&url).send().await.unwrap();
    assert_eq!(first.headers()["content-length"], (4u64 << 20).to_string());
    let mut stream = first.bytes_stream();
    let mut received = Vec::new();
    // The origin has sent half and is waiting: the viewer gets that half now.
    while received.len() < (2 << 20) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the first half streams while the origin holds the rest")
            .unwrap()
            .unwrap();
        received.extend_from_slice(&chunk);
    }
    // A second viewer joins mid-flight and also starts from byte 0.
    let second = tokio::spawn({
        let (client, url) = (pop.h2.clone(), url.clone());
        async move { fetch(&client, &url, &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.notify_one();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(received == body, "first viewer's bytes");
    let (status, x_cache, second_body) = second.await.unwrap();
    assert_eq!((status, x_cache.as_str()), (200, "miss"));
    assert!(second_body == body, "second viewer's bytes");
    assert_eq!(origin.fetches("v2/720p/seg_00000.m4s"), 1);
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_larger_than_a_disk_block_are_kept_in_chunks() {
    init();
    let origin = TestOrigin::start().await;
    let key = "v3/2160p/seg_00000.m4s";
    let big = origin.segment(key, 3 << 20);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.cache.block = 1 << 20;
    let pop = Pop::start(cfg.clone()).await;
    let path = viewer_path("v3", "2160p/seg_00000.m4s");
    let (status, x_cache, body) = pop.get(&path).await;
    assert_eq!((status, x_cache.as_str()), (200, "miss"));
    assert!(body == big, "whole and correct");
    // Asked again: from the cache, and admitted to disk.
    let (status, x_cache, body) = fetch(&pop.h2, &pop.https(&path), &[]).await;
    assert_eq!((status, x_cache.as_str()), (200, "hit-memory"));
    assert!(body == big, "whole and correct from chunks");
    let r = pop.h1.get(pop.https(&path)).header("range", "bytes=2097152-").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], format!("bytes 2097152-{}/{}", (3 << 20) - 1, 3 << 20));
    assert_eq!(r.bytes().await.unwrap(), big.slice(2 << 20..));
    let chunk = (1 << 20) - (8 << 10);
    let chunks = (3u64 << 20).div_ceil(chunk);
    assert_eq!(origin.fetches(key), chunks, "each chunk fetched once");
    assert_eq!(origin.bytes_sent(), 3 << 20, "the object's bytes, once");
    pop.stop().await;

    let pop = Pop::start(cfg).await;
    let (status, x_cache, body) = pop.get(&path).await;
    assert_eq!((status, x_cache.as_str()), (200, "hit-disk"));
    assert!(body == big, "from disk, in chunks");
    let (head, h3_body) = pop.get_h3(&path).await;
    assert!(head.status() == 200 && h3_body == big, "HTTP/3 too");
    assert_eq!(origin.fetches(key), chunks, "nothing fetched again after the restart");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_compares_weakly_on_misses_and_hits() {
    init();
    let origin = TestOrigin::start().await;
    let key = "v60/360p/seg_00000.m4s";
    origin.segment(key, 5_000);
    let etag = format!("\"5000-{}\"", key.len());
    let dir = tempfile::tempdir().unwrap();
    let pop = Pop::start(config(dir.path(), &origin.url())).await;
    let url = pop.https(&viewer_path("v60", "360p/seg_00000.m4s"));
    let ask = async |value: &str| {
        let r = pop.h1.get(&url).header("if-none-match", value).send().await.unwrap();
        let x_cache = r.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let tag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), x_cache, tag, r.bytes().await.unwrap().len())
    };
    // On a miss the flight's head has the ETag already.
    assert_eq!(ask(&format!("W/{etag}")).await, (304, "miss".into(), Some(etag.clone()), 0));
    // On hits: lists, weak tags, `*`; anything else gets the object. (The 304 can be answered
    // before the flight has landed the body in the cache.)
    let edge = pop.running.edge.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !edge.cache.contains(key) {
        assert!(tokio::time::Instant::now() < deadline, "the miss was cached");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for matching in [format!("\"nope\", W/{etag}"), format!("{etag},\"x\""), "*".to_owned(), etag.clone()] {
        let (status, x_cache, tag, _) = ask(&matching).await;
        assert_eq!((status, x_cache.as_str(), tag.as_deref()), (304, "hit-memory", Some(etag.as_str())), "{matching}");
    }
    for other in ["\"5000\"", "W/\"nope\"", "5000-22"] {
        assert_eq!(ask(other).await.0, 200, "{other}");
    }
    // Before any Range.
    let r = pop.h1.get(&url).header("if-none-match", &etag).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(origin.fetches(key), 1);
    pop.stop().await;
}
